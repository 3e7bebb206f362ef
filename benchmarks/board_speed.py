"""The live autopsy board for one case of 250 specimens, beside the raw SELECT of that case's specimens taken in the
same run: the board's reads for the case (``dashboards.data.board.case_state``: ``case_material`` and its checklist,
``case_header``, ``autopsy_summary``, ``case_lesions``, ``case_specimens``, each also timed alone), and the page
itself rendered with Streamlit's AppTest (as ``overview_speed.py`` does), its cached reads cleared before each run
(``st.cache_data``: every board read, cached ten seconds), the engine kept (a server that has been up).

The board lists only cases in progress, and the synthetic cohort's autopsies are all complete (nothing may be
written into the shared cohorts): for the render, ``biobank.queries.board.running_cases`` is replaced in this
process by one returning the chosen case, so the page draws that case exactly as it would while it runs (its one
cheap query, the list of running cases, is timed on its own against the real database). The case is the middle
donor's, so its rows sit in the middle of every table.

Target (at 1,000,000 specimens): the board for a case of 250 specimens ≤ 0.3 s.

    python benchmarks/board_speed.py --url sqlite:////tmp/cohort.db --specimens 20000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import figure  # noqa: E402

DATASETS = "all"
TARGET_AT = 1_000_000
TARGET_SECONDS = 0.3
APP = ROOT / "dashboards" / "app.py"
PAGE = APP.parent / "views" / "board.py"
#: The baseline: every specimen of the case, by hand (sampling sites carry the case).
RAW_SQL = """
SELECT s.* FROM autopsy a
JOIN sampling_site ss ON ss.autopsy_id = a.id
JOIN specimen s ON s.sampling_site_id = ss.id
WHERE a.case_code = :case
"""


def pick_case(url: str) -> tuple[str, int]:
    """The middle donor's case and how many specimens it has."""
    from sqlalchemy import text

    from biobank.db.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            cases = list(conn.execute(text("SELECT case_code FROM autopsy ORDER BY donor_id")).scalars())
            case = str(cases[len(cases) // 2])
            count = len(conn.execute(text(RAW_SQL), {"case": case}).all())
    finally:
        engine.dispose()
    return case, count


def query_seconds(url: str, case: str, runs: int) -> dict[str, list[float]]:
    """The board's reads for ``case``, each alone, then all of them as ``case_state`` reads them (its cache cleared),
    and the raw SELECT; ``runs`` times each after one untimed round."""
    import logging

    from sqlalchemy import text

    for name in ("streamlit", "streamlit.runtime", "streamlit.runtime.caching.cache_data_api"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from biobank.config import get_settings
    from biobank.db.engine import dispose_engines
    from biobank.queries import board as queries_board
    from biobank.queries import core as queries
    from biobank.services.checklist import case_material, checklist
    from dashboards.data import board as data_board
    from dashboards.data.core import read_session

    os.environ["BIOBANK_DATABASE_URL"] = url
    get_settings.cache_clear()
    dispose_engines()
    reads = {
        "case_material+checklist": lambda s: checklist(case_material(s, case)),
        "case_header": lambda s: queries_board.case_header(s, case),
        "autopsy_summary": lambda s: queries.autopsy_summary(s, case),
        "case_lesions": lambda s: queries_board.case_lesions(s, case),
        "case_specimens": lambda s: queries_board.case_specimens(s, case),
        "running_cases": queries_board.running_cases,
        "raw": lambda s: s.connection().execute(text(RAW_SQL), {"case": case}).all(),
    }
    timings: dict[str, list[float]] = {name: [] for name in [*reads, "case_state"]}
    for round_ in range(runs + 1):
        with read_session(url) as session:
            for name, read in reads.items():
                started = time.perf_counter()
                read(session)
                if round_:
                    timings[name].append(time.perf_counter() - started)
        data_board.case_state.clear()
        started = time.perf_counter()
        state = data_board.case_state(url, case)
        if round_:
            timings["case_state"].append(time.perf_counter() - started)
    assert len(state["specimens"]) > 0, f"case {case} shows no specimens"
    dispose_engines()
    return timings


def render_seconds(url: str, case: str, username: str) -> float:
    """One AppTest run of the board with ``case`` listed as running, its cached reads cleared (``st.cache_data``,
    which holds every board read, for ten seconds): the board of a server that has been up, whose engine and
    connection pool stay."""
    from benchmarks.overview_speed import _fresh_app
    from biobank.queries import board as queries_board

    real = queries_board.running_cases

    def running(session: Any) -> list[dict[str, Any]]:
        from biobank.services.collection import get_autopsy

        autopsy = get_autopsy(session, case)
        donor = session.get(queries_board.Donor, autopsy.donor_id)
        return [{"case": case, "donor": donor.code, "death_at": autopsy.death_at, "start_at": autopsy.start_at}]

    queries_board.running_cases = running  # for this render only, restored below
    try:
        at = _fresh_app(url, "board", username, keep_engine=True)
        started = time.perf_counter()
        at.run()
        seconds = time.perf_counter() - started
    finally:
        queries_board.running_cases = real
    if at.exception:
        raise RuntimeError(f"the board raised: {[e.value for e in at.exception]}")
    if not any(case in str(box.value) for box in at.selectbox):
        raise RuntimeError(f"the board did not show case {case}: {[m.value for m in at.markdown][:3]}")
    return seconds


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Time the live board for one case of 250 specimens.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--specimens", type=int, required=True, help="specimens in the cohort (for the target)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs after one warm-up; the median counts")
    parser.add_argument("--user", default="bench", help="the signed-in user (the synthetic loader's account, admin)")
    parser.add_argument("--no-render", action="store_true", help="time the reads only")
    args = parser.parse_args(argv)

    case, count = pick_case(args.url)
    at_scale = args.specimens >= TARGET_AT
    target = f"≤ {TARGET_SECONDS:g} s at 1 M" if at_scale else "—"
    timings = query_seconds(args.url, case, args.runs)
    median = {k: statistics.median(v) for k, v in timings.items()}
    raw_ms = median["raw"] * 1000
    alone = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in median.items() if k not in ("raw", "case_state"))
    figures = [figure(
        f"Live board reads for one case of {count} specimens (case_state, cache cleared), {args.specimens:,} specimens",
        round(median["case_state"], 3), "s", target=target, met=(median["case_state"] <= TARGET_SECONDS) if at_scale else None,
        baseline=round(median["raw"], 4),
        note=f"case {case}, median of {args.runs}; each read alone: {alone}; baseline raw SELECT of the case's "
             f"specimens {raw_ms:.1f} ms",
    )]
    if not args.no_render:
        render_seconds(args.url, case, args.user)  # warm-up: imports, first connection
        runs = [render_seconds(args.url, case, args.user) for _ in range(args.runs)]
        page = statistics.median(runs)
        figures.append(figure(
            f"Live board page render for one case of {count} specimens (AppTest, cached reads cleared), "
            f"{args.specimens:,} specimens",
            round(page, 3), "s", target=target, met=(page <= TARGET_SECONDS) if at_scale else None,
            baseline=round(median["raw"], 4),
            note=f"median of {args.runs}: {', '.join(f'{r:.3f}' for r in runs)}; of which the reads "
                 f"{median['case_state']:.3f} s; baseline raw SELECT of the case's specimens {raw_ms:.1f} ms",
        ))
    figures.append(figure(f"Baseline: raw SELECT of one case's {count} specimens, {args.specimens:,} specimens",
                          round(raw_ms, 2), "ms", note=f"median of {args.runs}"))
    for line in figures:
        print(f"  {line['figure']}: {line['value']} {line['unit']} (target {line['target']}) {line['note']}")
    return {"name": "board_speed", "specimens": args.specimens, "figures": figures}


if __name__ == "__main__":
    main()
