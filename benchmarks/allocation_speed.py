"""Storage auto-allocation: 10,000 snap-frozen specimens put into 9x9 boxes of a -80 °C freezer through
``biobank.services.storage.store`` without a position (the first free consecutive run), as a technician would after
a long autopsy: one call (one transaction) per batch of 9 tubes, the next box taken when the current one is full.

Each call locks the box, checks every specimen (status, temperature compatibility, not already stored), finds the
free run, writes the locations with their audit rows and a ``stored`` custody event per specimen. Timed: all the
calls; reported: specimens per second and milliseconds per call. The data is built in a fresh scratch database.

    python benchmarks/allocation_speed.py --url sqlite:///unused.db [--count 10000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from benchmarks.common import backend_of, figure, scratch_url  # noqa: E402
from biobank.db.engine import make_engine, session_scope  # noqa: E402
from biobank.domain.errors import ConflictError  # noqa: E402
from biobank.models import Autopsy, Consent, Donor, SamplingSite, Specimen, SpecimenLocation, User  # noqa: E402
from biobank.services import storage  # noqa: E402

DATASETS = "largest"  # run once per database by run_all.py: it builds its own specimens
BATCH = 9  # one row of a 9x9 box per call


def build(url: str, count: int) -> list[str]:
    engine = make_engine(url)
    death = datetime(2025, 1, 1, 3, 0, tzinfo=UTC)
    codes = [f"AL0001-S{i:05d}" for i in range(count)]
    with session_scope(engine) as s:
        tech = User(username="alloc", role="technician")
        s.add(tech)
        donor = Donor(code="AL-0001", sex="female", status="autopsy_done", primary_site_code="BREAST")
        s.add(donor)
        s.flush()
        s.add(Consent(donor_id=donor.id, given_by="donor", consented_on=date(2024, 12, 1), genomic_sequencing=True))
        autopsy = Autopsy(donor_id=donor.id, case_code="AL-CASE-1", death_at=death, start_at=death + timedelta(hours=2),
                          status="in_progress")
        s.add(autopsy)
        s.flush()
        site = SamplingSite(donor_id=donor.id, autopsy_id=autopsy.id, code="N1", kind="normal_tissue",
                            tissue_status="normal", site_code="LIVER", excised_at=death + timedelta(hours=3))
        s.add(site)
        s.flush()
        at = death + timedelta(hours=3)
        s.add_all([Specimen(code=code, donor_id=donor.id, sampling_site_id=site.id, lineage="primary",
                            material_type="tissue", storage_format="snap_frozen", collected_at=at,
                            stabilised_at=at + timedelta(minutes=5), quantity=50, quantity_remaining=50, unit="mg")
                   for code in codes])
        add = storage.add_container
        add(s, actor=tech, code="SITE", kind="site")
        add(s, actor=tech, code="ROOM", kind="room", parent_code="SITE")
        add(s, actor=tech, code="FRZ", kind="freezer", parent_code="ROOM")
        boxes = -(-count // 81)
        for rack in range(-(-boxes // 20)):
            add(s, actor=tech, code=f"R{rack:02d}", kind="rack", parent_code="FRZ")
            for b in range(20):
                if rack * 20 + b < boxes:
                    add(s, actor=tech, code=f"BX{rack * 20 + b:03d}", kind="box_9x9", parent_code=f"R{rack:02d}")
    engine.dispose()
    return codes


def allocate(url: str, codes: list[str]) -> tuple[float, list[float], int]:
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as s:
        tech = s.exec(select(User).where(User.username == "alloc")).one()
    box, calls, full = 0, [], 0
    started = time.perf_counter()
    for i in range(0, len(codes), BATCH):
        batch = codes[i:i + BATCH]
        while True:
            t0 = time.perf_counter()
            try:
                with session_scope(engine) as s:
                    storage.store(s, actor=tech, codes=batch, box_code=f"BX{box:03d}")
                calls.append(time.perf_counter() - t0)
                break
            except ConflictError:  # this box has no run of free positions left: take the next one
                full += 1
                box += 1
    elapsed = time.perf_counter() - started
    with Session(engine) as s:
        stored = s.exec(select(func.count()).select_from(SpecimenLocation)).one()
    engine.dispose()
    if stored != len(codes):
        raise RuntimeError(f"{stored} of {len(codes)} specimens stored")
    return elapsed, calls, full


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default="sqlite:///unused.db", help="a database of the backend to measure")
    parser.add_argument("--specimens", type=int, help="ignored: the benchmark builds --count specimens")
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args(argv)
    with scratch_url(args.url) as url:
        codes = build(url, args.count)
        elapsed, calls, full = allocate(url, codes)
    rate = args.count / elapsed
    per_call = statistics.median(calls) * 1000
    print(f"{backend_of(args.url)}: {args.count:,} specimens auto-allocated in {elapsed:.1f} s ({rate:,.0f}/s), "
          f"median {per_call:.1f} ms per call of {BATCH}")
    note = (f"{len(calls):,} calls of {BATCH} tubes, one transaction each, median {per_call:.1f} ms per call "
            f"(p95 {sorted(calls)[int(len(calls) * 0.95)] * 1000:.1f} ms); {full} full-box refusals moved on to the "
            f"next of {-(-args.count // 81)} boxes")
    return {"name": "allocation_speed", "figures": [
        figure(f"Auto-allocation of {args.count:,} specimens into 9x9 boxes (storage service)", round(elapsed, 1), "s",
               note=note),
        figure("Auto-allocation rate", round(rate), "specimens/s"),
    ]}


if __name__ == "__main__":
    main()
