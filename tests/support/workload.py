"""Workloads the resilience tests run in child processes (``python -m tests.support.workload collect ...``).

``collect`` records regions of one lesion through :func:`biobank.services.collection.collect_region`: each region
makes a sampling site and :data:`SPECIMENS_PER_REGION` specimens with their custody events and audit rows. With
``--single-transaction`` everything goes into one transaction (a crash must leave none of it); otherwise each region
commits on its own. After each region the child prints ``progress N`` (``committed N`` once it is durable).
"""

from __future__ import annotations

import argparse
import string
import sys
import time
from datetime import timedelta

from sqlmodel import Session

from biobank.db.engine import make_engine, session_scope
from biobank.services.auth import get_user
from biobank.services.collection import collect_region
from biobank.services.inputs import FormatRequest, RegionCollect
from tests.conftest import DEATH

SPECIMENS_PER_REGION = 3
CUSTODY_PER_SPECIMEN = 2  # collected + stabilised


def region_label(index: int) -> str:
    """Distinct labels matching ``^[A-Z]{1,2}\\d?$``: A0, A1, ... Z9, AA0, ... (6,760 of them)."""
    letters = string.ascii_uppercase
    if index < 260:
        return f"{letters[index // 10]}{index % 10}"
    index -= 260
    return f"{letters[index // 260 % 26]}{letters[index // 10 % 26]}{index % 10}"


def _collect_one(session: Session, username: str, case: str, lesion: str, site: str, index: int) -> None:
    excised = DEATH + timedelta(hours=3, seconds=index)
    collect_region(
        session,
        actor=get_user(session, username),
        data=RegionCollect(case_code=case, kind="tumour_region", site_code=site, excised_at=excised, lesion_code=lesion, region_label=region_label(index), formats=[
            FormatRequest("snap_frozen", 50, "mg", count=2, stabilised_at=excised + timedelta(minutes=5)),
            FormatRequest("ffpe", 1, "blocks", stabilised_at=excised + timedelta(minutes=6),
                          fixation_end_at=excised + timedelta(hours=24)),
        ]),
    )


def collect(url: str, *, username: str, case: str, lesion: str, site: str, start: int, count: int,
            single_transaction: bool, pause: float) -> None:
    engine = make_engine(url)
    try:
        if single_transaction:
            with session_scope(engine) as session:
                for index in range(start, start + count):
                    _collect_one(session, username, case, lesion, site, index)
                    session.flush()
                    print(f"progress {index - start + 1}", flush=True)
                    if pause:
                        time.sleep(pause)
            print(f"committed {count}", flush=True)
        else:
            for index in range(start, start + count):
                with session_scope(engine) as session:
                    _collect_one(session, username, case, lesion, site, index)
                print(f"committed {index - start + 1}", flush=True)
                if pause:
                    time.sleep(pause)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.workload")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="collect regions of one lesion")
    c.add_argument("--url", required=True)
    c.add_argument("--user", default="tech")
    c.add_argument("--case", default="RAP-1")
    c.add_argument("--lesion", default="L02")
    c.add_argument("--site", default="LIVER")
    c.add_argument("--start", type=int, default=0)
    c.add_argument("--count", type=int, default=10)
    c.add_argument("--single-transaction", action="store_true")
    c.add_argument("--pause", type=float, default=0.0)
    args = parser.parse_args(argv)
    collect(args.url, username=args.user, case=args.case, lesion=args.lesion, site=args.site, start=args.start,
            count=args.count, single_transaction=args.single_transaction, pause=args.pause)
    return 0


if __name__ == "__main__":
    sys.exit(main())
