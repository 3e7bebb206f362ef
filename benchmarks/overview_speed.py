"""Render the overview pages (``home`` and the cohort overview, ``dashboards/views/cohort.py``) with Streamlit's
AppTest and time them: the first view with every cache cleared before each run, the second view (another session
opening the page once the caches are warm), and, for the cohort page, both views again while another user writes
continuously; the pages' reads are also timed alone so a miss can be explained. ``--page NAME`` times one page only.

Each run is a fresh AppTest (a new browser session). AppTest discovers Streamlit's installed components on its first
run (a scan of every installed package's metadata, about 0.4 s here) and compiles the page scripts on every run
(Streamlit's magic AST pass: about 15 ms for app.py, 35-50 ms for a page); the Streamlit server does both once, so
every run here shares one discovered registry and one script bytecode cache, and the figures are the page's time,
not the harness's.

The writer (the cohort page only) is a separate process recording pathology QC (tumour cellularity) on tissue
specimens of one donor through ``biobank.services.specimens.record_qc``, one committed unit of work after another
as fast as it can, audited like any user's write: it adds no specimen and changes nothing the cohort figures read
(the cohort generation does not move; the figure's note says whether it did). It writes into the database it is
given: at 1,000,000 specimens that is the shared cohort, so only the final check runs it there.

Targets (at 1,000,000 specimens): home ≤ 2 s (caches cleared); cohort overview ≤ 1 s with caches cleared and
≤ 1 s cached, each also while another user writes.

    python benchmarks/overview_speed.py --url sqlite:////tmp/cohort.db --specimens 20000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import figure  # noqa: E402

DATASETS = "all"
TARGET_AT = 1_000_000
#: Target per page (seconds at 1,000,000 specimens).
TARGETS = {"home": 2.0, "cohort": 1.0}
#: Overview pages timed when present.
PAGES = ("home", "cohort")
#: The page timed under a concurrent writer.
WRITTEN_PAGE = "cohort"
APP = ROOT / "dashboards" / "app.py"
#: Tissue specimens the writer cycles through.
WRITER_SPECIMENS = 50

_components: Any = None
_scripts: Any = None


def _quiet() -> None:
    import logging

    for name in ("streamlit", "streamlit.runtime", "streamlit.elements", "streamlit.runtime.caching.cache_data_api",
                 "streamlit.runtime.scriptrunner_utils.script_run_context"):  # bare-mode warnings on every run
        logging.getLogger(name).setLevel(logging.ERROR)


def _fresh_app(url: str, page: str, username: str | None, *, clear: bool = True, keep_engine: bool = False) -> Any:
    """A new AppTest session on ``page`` signed in as ``username``; with ``clear``, every cache dropped first (the
    engine too: the first view after a start), or with ``keep_engine`` only the ``st.cache_data`` reads (a server
    that has been up: its engine and connection pool stay)."""
    import streamlit as st

    _quiet()
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import AppTest

    from biobank.config import get_settings
    from biobank.db.engine import dispose_engines

    os.environ["BIOBANK_DATABASE_URL"] = url
    get_settings.cache_clear()
    if clear and keep_engine:
        st.cache_data.clear()
    elif clear:
        dispose_engines()
        st.cache_data.clear()
        st.cache_resource.clear()
    global _components, _scripts
    if getattr(app_test, "ScriptCache", None) is ScriptCache:  # one bytecode cache for every run, as the server has
        _scripts = ScriptCache()
        app_test.ScriptCache = lambda: _scripts  # type: ignore[assignment,misc]  # AppTest makes one per run
    at = AppTest.from_file(str(APP), default_timeout=600)
    if hasattr(at, "_bidi_component_manager"):  # share one discovered component registry, as the server does
        if _components is None:
            from streamlit.components.v2.component_manager import BidiComponentManager

            _components = BidiComponentManager()
            _components.discover_and_register_components(start_file_watching=False)
        at._bidi_component_manager = _components
    if username:
        at.session_state["username"] = username
    if page != "home":
        at.switch_page(str(APP.parent / "views" / f"{page}.py"))
    return at


def render_seconds(url: str, page: str, username: str | None, *, clear: bool = True) -> float:
    at = _fresh_app(url, page, username, clear=clear)
    started = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"page {page} raised: {[e.value for e in at.exception]}")
    return seconds


def query_seconds(url: str, page: str = "home") -> dict[str, float]:
    """The page's reads (unfiltered), each on its own, as its loaders call them."""
    from sqlmodel import Session

    from biobank.db.engine import make_engine
    from biobank.queries import cohort as queries_cohort
    from biobank.queries import core as queries

    everything = queries_cohort.CohortFilter()
    recent: list[str] = []
    pages: dict[str, dict[str, Any]] = {
        "home": {
            "cohort_counts": queries.cohort_counts,
            "pmi_histogram": lambda s: queries_cohort.pmi_histogram(s, everything),
            "donor_rows": queries.donor_rows,
        },
        "cohort": {
            "generation": queries_cohort.generation,
            "filter_options": queries_cohort.filter_options,
            "cohort_overview": lambda s: queries_cohort.cohort_overview(s, everything),
            "pmi_histogram": lambda s: queries_cohort.pmi_histogram(s, everything),
            "case_pmi_summary": lambda s: queries_cohort.case_pmi_summary(s, everything),
            "models": lambda s: (queries_cohort.has_models(s), queries_cohort.model_counts(s, everything),
                                 queries_cohort.model_outcomes(s, everything)),
            "donor_site_page": lambda s: queries_cohort.donor_site_page(s, everything, limit=50, offset=0),
            "case_specimen_pmis": lambda s: queries_cohort.case_specimen_pmis(s, recent, everything),
        },
    }
    reads = pages.get(page, {})
    engine = make_engine(url)
    timings: dict[str, float] = {}
    try:
        with Session(engine) as session:
            session.exec(queries.select(queries.Donor.id).limit(1)).all()  # connect first
            if page == "cohort":  # the page's default choice of cases: the eight most recent deaths
                recent[:] = [c["case"] for c in queries_cohort.case_pmi_summary(session, everything)][-8:]
            for name, read in reads.items():
                started = time.perf_counter()
                read(session)
                timings[name] = time.perf_counter() - started
    finally:
        engine.dispose()
    return timings


# --- the concurrent writer ---------------------------------------------------------------------------------------


def writer_codes(url: str) -> list[str]:
    """Tissue specimens of the middle donor (consent not withdrawn): what the writer records QC on."""
    from sqlalchemy import text

    from biobank.db.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            donors = list(conn.execute(text("SELECT id FROM donor WHERE status <> 'withdrawn' ORDER BY id")).scalars())
            return list(conn.execute(text(
                "SELECT code FROM specimen WHERE donor_id = :d AND material_type = 'tissue' "
                "AND storage_format = 'snap_frozen' ORDER BY code LIMIT :n"),
                {"d": donors[len(donors) // 2], "n": WRITER_SPECIMENS}).scalars())
    finally:
        engine.dispose()


def generation(url: str) -> int:
    from sqlmodel import Session

    from biobank.db.engine import make_engine
    from biobank.queries.cohort import generation as read_generation

    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return read_generation(session)
    finally:
        engine.dispose()


def write_qc(url: str, codes: list[str], username: str, stop: Path) -> None:
    """The writer process: record QC through the service, one unit of work after another, until ``stop`` exists;
    says "ready" after its first commit and prints its count and time as JSON at the end."""
    from sqlmodel import select

    from biobank.db.engine import make_engine, session_scope
    from biobank.models import User
    from biobank.services.specimens import record_qc

    engine = make_engine(url)
    writes = 0
    started = time.perf_counter()
    try:
        while not stop.exists():
            code = codes[writes % len(codes)]
            with session_scope(engine) as session:
                actor = session.exec(select(User).where(User.username == username)).one()
                record_qc(session, actor=actor, code=code, tumour_cellularity_pct=20 + writes % 70,
                          pathology_reviewer="benchmark writer")
            writes += 1
            if writes == 1:
                print("ready", flush=True)
    finally:
        engine.dispose()
    print(json.dumps({"writes": writes, "seconds": time.perf_counter() - started}), flush=True)


class Writer:
    """The writer process, started and stopped around the timed views."""

    def __init__(self, url: str, codes: list[str], username: str) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="biobank-writer-")
        self.stop = Path(self.folder.name) / "stop"
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--write-qc", "--url", url, "--user", username,
             "--codes", ",".join(codes), "--stop", str(self.stop), "--specimens", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            raise RuntimeError(f"the QC writer did not start: {line} {self.process.stderr.read()[-2000:] if self.process.stderr else ''}")

    def finish(self) -> dict[str, Any]:
        self.stop.touch()
        try:
            out, err = self.process.communicate(timeout=120)
        finally:
            self.folder.cleanup()
        if self.process.returncode != 0:
            raise RuntimeError(f"the QC writer failed: {err[-2000:]}")
        return dict(json.loads(out.strip().splitlines()[-1]))


# --- figures ------------------------------------------------------------------------------------------------------


def _views(url: str, page: str, username: str, runs: int) -> tuple[list[float], list[float]]:
    """``runs`` first views (caches cleared), then ``runs`` second views (caches warm from the view before)."""
    cold = [render_seconds(url, page, username) for _ in range(runs)]
    render_seconds(url, page, username, clear=False)  # the caches are warm from here
    warm = [render_seconds(url, page, username, clear=False) for _ in range(runs)]
    return cold, warm


def _line(name: str, seconds: list[float], page: str, at_scale: bool, note: str = "") -> dict[str, Any]:
    median = statistics.median(seconds)
    target = TARGETS.get(page)
    return figure(name, round(median, 3), "s",
                  target=f"≤ {target:g} s at 1 M" if at_scale and target else "—",
                  met=(median <= target) if at_scale and target else None,
                  note=f"median of {len(seconds)}: {', '.join(f'{r:.3f}' for r in seconds)}" + (f"; {note}" if note else ""))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Time the overview pages rendered with AppTest.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--specimens", type=int, required=True, help="specimens in the cohort (for the target)")
    parser.add_argument("--page", help="one page (module in dashboards/views); default: every overview page present")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each view after one warm-up; the median counts")
    parser.add_argument("--user", default="bench", help="set as the signed-in user (the synthetic loader's account)")
    parser.add_argument("--no-writer", action="store_true", help="skip the views under a concurrent writer")
    parser.add_argument("--write-qc", action="store_true", help=argparse.SUPPRESS)  # the writer process
    parser.add_argument("--codes", help=argparse.SUPPRESS)
    parser.add_argument("--stop", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.write_qc:
        write_qc(args.url, args.codes.split(","), args.user, Path(args.stop))
        return {}

    pages = [args.page] if args.page else [p for p in PAGES if (APP.parent / "views" / f"{p}.py").exists()]
    at_scale = args.specimens >= TARGET_AT
    n = f"{args.specimens:,} specimens"
    figures = []
    for page in pages:
        render_seconds(args.url, page, args.user)  # warm-up: imports, altair, components, first connection
        cold, warm = _views(args.url, page, args.user, args.runs)
        queries = query_seconds(args.url, page)
        breakdown = ", ".join(f"{k} {v:.3f} s" for k, v in queries.items())
        figures.append(_line(f"'{page}' page render (AppTest, caches cleared), {n}", cold, page, at_scale,
                             f"queries alone: {breakdown}" if breakdown else ""))
        figures.append(_line(f"'{page}' page render, second view (AppTest, caches warm), {n}", warm, page, at_scale,
                             f"baseline: the same page with caches cleared {statistics.median(cold):.3f} s"))
        if page != WRITTEN_PAGE or args.no_writer:
            continue
        before = generation(args.url)
        writer = Writer(args.url, writer_codes(args.url), args.user)
        try:
            cold_w, warm_w = _views(args.url, page, args.user, args.runs)
            queries_w = query_seconds(args.url, page)
        finally:
            wrote = writer.finish()
        moved = generation(args.url) != before
        rate = f"{wrote['writes']:,} QC writes committed meanwhile ({wrote['writes'] / wrote['seconds']:.0f}/s)"
        moved_note = "the cohort generation moved: cached figures were read again" if moved else \
            "the cohort generation did not move"
        breakdown_w = ", ".join(f"{k} {v:.3f} s" for k, v in queries_w.items())
        figures.append(_line(f"'{page}' page render while another user writes (caches cleared), {n}", cold_w, page,
                             at_scale, f"baseline without the writer {statistics.median(cold):.3f} s; {rate}; "
                                       f"queries alone under the writer: {breakdown_w}"))
        figures.append(_line(f"'{page}' page render while another user writes (second view, caches warm), {n}",
                             warm_w, page, at_scale,
                             f"baseline without the writer {statistics.median(warm):.3f} s; {rate}; {moved_note}"))
    for line in figures:
        print(f"  {line['figure']}: {line['value']} {line['unit']} (target {line['target']}) {line['note']}")
    return {"name": "overview_speed", "specimens": args.specimens, "figures": figures}


if __name__ == "__main__":
    main()
