"""Render dashboard pages with Streamlit's AppTest, every cache cleared before each run, and time them; also time the
home page's queries alone so a miss can be explained. Pages: ``home`` and, once it exists, the cohort overview
(``dashboards/views/cohort.py``); ``--page NAME`` times one page only.

Target: ≤ 2 s at 1,000,000 specimens.

    python benchmarks/overview_speed.py --url sqlite:///benchmarks/.data/cohort-20000.db
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
TARGET_SECONDS = 2.0
TARGET_AT = 1_000_000
#: Overview pages timed when present (the cohort page comes with the full dashboard).
PAGES = ("home", "cohort")
APP = ROOT / "dashboards" / "app.py"


def _fresh_app(url: str, page: str, username: str | None) -> Any:
    import logging

    import streamlit as st

    for name in ("streamlit", "streamlit.runtime", "streamlit.elements"):  # bare-mode warnings on every run
        logging.getLogger(name).setLevel(logging.ERROR)
    from streamlit.testing.v1 import AppTest

    from biobank.config import get_settings
    from biobank.db.engine import dispose_engines

    os.environ["BIOBANK_DATABASE_URL"] = url
    get_settings.cache_clear()
    dispose_engines()
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(APP), default_timeout=600)
    if username:
        at.session_state["username"] = username
    if page != "home":
        at.switch_page(str(APP.parent / "views" / f"{page}.py"))
    return at


def render_seconds(url: str, page: str, username: str | None) -> float:
    at = _fresh_app(url, page, username)
    started = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"page {page} raised: {[e.value for e in at.exception]}")
    return seconds


#: The reads behind each page, timed alone so a miss can be explained.
PAGE_QUERIES = {
    "home": ("cohort_counts", "pmi_distribution", "donor_rows"),
    "cohort": ("cohort_counts", "pmi_histogram", "case_pmi_summary", "donor_site_matrix", "format_site_matrix",
               "stock_by_format"),
}


def query_seconds(url: str, page: str = "home") -> dict[str, float]:
    """The page's reads (unfiltered), each on its own."""
    from sqlmodel import Session

    from biobank.db.engine import make_engine
    from biobank.queries import cohort as queries_cohort
    from biobank.queries import core as queries

    engine = make_engine(url)
    timings: dict[str, float] = {}
    try:
        with Session(engine) as session:
            session.exec(queries.select(queries.Donor.id).limit(1)).all()  # connect first
            for name in PAGE_QUERIES.get(page, ()):
                started = time.perf_counter()
                if page == "cohort":
                    getattr(queries_cohort, name)(session, queries_cohort.CohortFilter((), None, None, None))
                else:
                    getattr(queries, name)(session)
                timings[name] = time.perf_counter() - started
    finally:
        engine.dispose()
    return timings


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Time a dashboard page rendered with AppTest, caches cleared.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--specimens", type=int, required=True, help="specimens in the cohort (for the target)")
    parser.add_argument("--page", help="one page (module in dashboards/views); default: every overview page present")
    parser.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up; the median counts")
    parser.add_argument("--user", default="bench", help="set as the signed-in user (the synthetic loader's account)")
    args = parser.parse_args(argv)

    pages = [args.page] if args.page else [p for p in PAGES if (APP.parent / "views" / f"{p}.py").exists()]
    at_target_scale = args.specimens >= TARGET_AT
    figures = []
    for page in pages:
        render_seconds(args.url, page, args.user)  # warm-up: imports, altair, first connection
        runs = [render_seconds(args.url, page, args.user) for _ in range(args.runs)]
        median = statistics.median(runs)
        queries = query_seconds(args.url, page)
        breakdown = ", ".join(f"{k} {v:.2f} s" for k, v in queries.items())
        figures.append(figure(
            f"'{page}' page render (AppTest, caches cleared), {args.specimens:,} specimens", round(median, 2), "s",
            target=f"≤ {TARGET_SECONDS:g} s at 1 M" if at_target_scale else "—",
            met=(median <= TARGET_SECONDS) if at_target_scale else None,
            note=f"median of {args.runs}: {', '.join(f'{r:.2f}' for r in runs)}"
                 + (f"; queries alone: {breakdown}" if breakdown else ""),
        ))
    for line in figures:
        print(f"  {line['figure']}: {line['value']} {line['unit']} (target {line['target']}) {line['note']}")
    return {"name": "overview_speed", "specimens": args.specimens, "figures": figures}


if __name__ == "__main__":
    main()
