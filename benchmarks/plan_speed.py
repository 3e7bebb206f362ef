"""Suggestion + rule check + budget for one synthetic donor with 1,000 specimens (target: well under 200 ms).

Prints figures; not a test. Run: ``.venv/bin/python benchmarks/plan_speed.py [--url URL]`` (a fresh scratch
database of URL's backend; default SQLite), or through ``benchmarks/run_all.py``. Rows are inserted directly (fast set-up); the timed part is the library code the planner
page and ``biobank plan`` run: two queries, then Python.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlmodel import Session  # noqa: E402

from benchmarks.common import backend_of, figure, scratch_url  # noqa: E402
from biobank.db.engine import make_engine  # noqa: E402
from biobank.models import Autopsy, Consent, Donor, Lesion, SamplingSite, Specimen  # noqa: E402
from biobank.services import budget  # noqa: E402
from biobank.services.planning import suggest, suggest_and_check  # noqa: E402

SITES = ["LIVER", "LUNG", "VERTEBRA_T12", "RIB", "PELVIS", "BRAIN", "ADRENAL", "LYMPH_NODE", "PLEURA", "FEMUR"]


def build(url: str, specimens_wanted: int = 1000) -> int:
    engine = make_engine(url)
    death = datetime(2025, 1, 1, 3, 0, tzinfo=UTC)
    with Session(engine) as s:
        donor = Donor(code="BM-0001", sex="female", status="autopsy_done", primary_site_code="BREAST")
        s.add(donor)
        s.flush()
        s.add(Consent(donor_id=donor.id, given_by="donor", consented_on=death.date(), genomic_sequencing=True))
        autopsy = Autopsy(donor_id=donor.id, case_code="BM-CASE-1", death_at=death, start_at=death + timedelta(hours=2), status="in_progress")
        s.add(autopsy)
        s.flush()
        blood = SamplingSite(donor_id=donor.id, autopsy_id=autopsy.id, code="GB1", kind="germline_blood", tissue_status="normal",
                             site_code="BLOOD", excised_at=death + timedelta(hours=2))
        s.add(blood)
        s.flush()
        s.add(Specimen(code="BM0001-GB1-FZ1", donor_id=donor.id, sampling_site_id=blood.id, lineage="primary", material_type="whole_blood",
                       storage_format="frozen", collected_at=blood.excised_at, quantity=1000, quantity_remaining=1000, unit="ul"))
        made, lesion_no = 1, 0
        while made < specimens_wanted:
            lesion_no += 1
            kind = "primary" if lesion_no == 1 else "metastasis"
            site = "BREAST" if lesion_no == 1 else SITES[lesion_no % len(SITES)]
            lesion = Lesion(donor_id=donor.id, code=f"L{lesion_no:02d}", site_code=site, kind=kind,
                            laterality="left" if site in ("BREAST", "LUNG", "FEMUR") else "not_applicable")
            s.add(lesion)
            s.flush()
            for r in "ABCD":
                at = death + timedelta(hours=2, minutes=3 * made // 10)
                region = SamplingSite(donor_id=donor.id, autopsy_id=autopsy.id, lesion_id=lesion.id, code=f"L{lesion_no:02d}-{r}",
                                      region_label=r, kind="tumour_region", tissue_status="tumour", site_code=site,
                                      laterality=lesion.laterality, excised_at=at)
                s.add(region)
                s.flush()
                base = f"BM0001-L{lesion_no:02d}{r}"
                frozen = [Specimen(code=f"{base}-SF{i}", donor_id=donor.id, sampling_site_id=region.id, lineage="primary",
                                   material_type="tissue", storage_format="snap_frozen", collected_at=at,
                                   stabilised_at=at + timedelta(minutes=5), quantity=50, quantity_remaining=30, unit="mg",
                                   tumour_cellularity_pct=float(20 + (made + i) % 70)) for i in (1, 2, 3)]
                others = [Specimen(code=f"{base}-{fmt}1", donor_id=donor.id, sampling_site_id=region.id, lineage="primary",
                                   material_type="tissue", storage_format=name, collected_at=at, stabilised_at=at + timedelta(minutes=6),
                                   fixative="nbf" if name == "ffpe" else None, quantity=1, quantity_remaining=1, unit="blocks")
                          for fmt, name in (("OC", "oct"), ("FF", "ffpe"), ("RL", "rnalater"))]
                s.add_all(frozen + others)
                s.flush()
                dna = [Specimen(code=f"{p.code}-DNA1", donor_id=donor.id, sampling_site_id=region.id, lineage="derivative", parent_id=p.id,
                                material_type="dna", storage_format="frozen", collected_at=at, stabilised_at=p.stabilised_at,
                                quantity=4000 + 100 * i, quantity_remaining=4000, unit="ng", yield_ng=4000, a260_280=1.9, din=7.5)
                       for i, p in enumerate(frozen)]
                s.add_all(dna)
                made += len(frozen) + len(others) + len(dna)
                if made >= specimens_wanted:
                    break
        s.commit()
    engine.dispose()
    return made


DATASETS = "largest"  # run once per database by run_all.py: it builds its own donor of 1,000 specimens
TARGET_MS = 200.0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("url", nargs="?", help="(legacy) a database to build into; default: a scratch SQLite file")
    parser.add_argument("--url", dest="like", help="a database of the backend to measure (a fresh scratch one is used)")
    parser.add_argument("--specimens", type=int, help="ignored: the donor always has --donor-specimens")
    parser.add_argument("--donor-specimens", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    like = args.like or args.url or "sqlite:///unused.db"
    with scratch_url(like) as url:
        count = build(url, args.donor_specimens)
        engine = make_engine(url)
        timings: list[tuple[float, float]] = []
        with Session(engine) as session:
            for _ in range(args.runs):
                t0 = time.perf_counter()
                suggestion = suggest(session, donor_codes=["BM-0001"], assay="wgs")
                t1 = time.perf_counter()
                suggestion, report = suggest_and_check(session, donor_codes=["BM-0001"], assay="wgs",
                                                       purpose="migration_history")
                # the budget of the selection, as the planner page computes it on every toggle
                cost = budget.compute(
                    [{"specimen_code": c.specimen_code, "role": c.role, "donor_code": c.donor_code,
                      "region_code": c.region_code} for c in suggestion.choices],
                    plan_assay="wgs",
                )
                t2 = time.perf_counter()
                timings.append((t1 - t0, t2 - t1))
        engine.dispose()
    warm = timings[1:]
    suggest_ms = statistics.median(t for t, _ in warm) * 1000
    both_ms = statistics.median(t for _, t in warm) * 1000
    print(f"database: {backend_of(like)}; specimens of the donor: {count}")
    print(f"suggestion: {len(suggestion.choices)} specimens chosen, {len(suggestion.skipped)} regions skipped")
    print(f"rule report: {report.summary()}")
    print(f"budget: {cost.line()}")
    print(f"suggest                     median {suggest_ms:.0f} ms (first call {timings[0][0] * 1000:.0f} ms)")
    print(f"suggest + check + budget    median {both_ms:.0f} ms (target <= {TARGET_MS:g} ms)")
    note = (f"median of {len(warm)} after a first call of {(timings[0][1]) * 1000:.0f} ms; suggestion alone "
            f"{suggest_ms:.0f} ms; {len(suggestion.choices)} specimens chosen; rule report: {report.summary()}; "
            f"budget: {cost.line()}")
    return {"name": "plan_speed", "figures": [
        figure(f"Plan suggestion + rule check + budget, donor with {count:,} specimens", round(both_ms), "ms",
               target=f"≤ {TARGET_MS:g} ms", met=both_ms <= TARGET_MS, note=note),
    ]}


if __name__ == "__main__":
    main()
