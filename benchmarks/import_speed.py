"""Import speed: N specimens from CSV through the validated import, against the physical limit of the same table.

The physical limit is the same rows (the same columns the import fills, its author included) inserted with the raw
DB-API ``executemany`` on SQLite, and ``COPY`` (psycopg ``cursor.copy``) on PostgreSQL, prepared in memory beforehand
(no parsing, no checks, no audit). The validated import reads and coerces the CSV, checks every rule, resolves
references, writes the rows, one audit row and one custody event per specimen, all in one transaction. The raw
insert runs first, so the import meets the larger table.

    python benchmarks/import_speed.py --rows 100000 [--postgres URL] [--sqlite-only]
    python benchmarks/run_all.py --only import_speed     # recorded in benchmarks/results/ and docs/performance.md
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from benchmarks.common import backend_of, figure, scratch_url  # noqa: E402
from biobank.db.engine import make_engine, session_scope  # noqa: E402
from biobank.imports.engine import run_import  # noqa: E402
from biobank.models import User  # noqa: E402
from biobank.services import collection, donors  # noqa: E402
from biobank.services.inputs import AutopsyOpen, DonorCreate, FormatRequest, LesionCreate, RegionCollect  # noqa: E402

DEATH = datetime(2026, 3, 14, 2, 0, tzinfo=UTC)
FORMATS = [("snap_frozen", "50 mg"), ("oct", "1 block"), ("ffpe", "1 block"), ("rnalater", "30 mg"),
           ("viable_cryo", "100 mg")]
COLUMNS = ["code", "donor_code", "sampling_site", "storage_format", "quantity", "collected_at", "stabilised_at",
           "tumour_cellularity_pct", "notes"]
RAW_COLUMNS = ["code", "donor_id", "sampling_site_id", "lineage", "material_type", "storage_format", "collected_at",
               "stabilised_at", "fixative", "quantity", "quantity_remaining", "unit", "freeze_thaw_count", "status",
               "tumour_cellularity_pct", "notes", "version", "created_at", "created_by_id"]


def migrate(url: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


def setup_case(url: str) -> None:
    engine = make_engine(url)
    with session_scope(engine) as session:
        tech = User(username="bench", role="technician")
        session.add(tech)
        session.flush()
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0001", sex="female", primary_site_code="BREAST"))
        donors.record_consent(session, actor=tech, donor_code="RA-0001", given_by="donor", consented_on=date(2025, 1, 1),
                              scopes={"research_use", "genomic_sequencing"})
        collection.open_autopsy(session, actor=tech, data=AutopsyOpen(donor_code="RA-0001", case_code="RAP-1", death_at=DEATH, start_at=DEATH + timedelta(hours=2)))
        collection.add_lesion(session, actor=tech, data=LesionCreate(donor_code="RA-0001", code="L01", site_code="LIVER", kind="metastasis"))
        collection.collect_region(session, actor=tech, data=RegionCollect(case_code="RAP-1", kind="tumour_region", site_code="LIVER", lesion_code="L01", region_label="A", excised_at=DEATH + timedelta(hours=3), formats=[FormatRequest("snap_frozen", 50, "mg")]))
    engine.dispose()


def make_csv(n: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    base = DEATH + timedelta(hours=3)
    for i in range(n):
        fmt, qty = FORMATS[i % len(FORMATS)]
        collected = base + timedelta(minutes=i % 600)
        writer.writerow([f"B{i:07d}", "RA-0001", "L01-A", fmt, qty, collected.strftime("%Y-%m-%d %H:%M"),
                         (collected + timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M"), f"{(i * 7) % 90 + 5}",
                         "" if i % 3 else "bench row"])
    return out.getvalue().encode("utf-8")


def raw_rows(n: int, site_id: int, donor_id: int, user_id: int) -> list[tuple[Any, ...]]:
    base = DEATH + timedelta(hours=3)
    now = datetime.now(UTC)
    units = {"50 mg": (50.0, "mg"), "1 block": (1.0, "blocks"), "30 mg": (30.0, "mg"), "100 mg": (100.0, "mg")}
    rows = []
    for i in range(n):
        fmt, qty = FORMATS[i % len(FORMATS)]
        amount, unit = units[qty]
        collected = base + timedelta(minutes=i % 600)
        rows.append((f"R{i:07d}", donor_id, site_id, "primary", "tissue", fmt, collected, collected + timedelta(minutes=5),
                     "nbf" if fmt == "ffpe" else None, amount, amount, unit, 0, "available", float((i * 7) % 90 + 5),
                     None if i % 3 else "bench row", 1, now, user_id))
    return rows


def raw_insert(url: str, rows: list[tuple[Any, ...]]) -> float:
    engine = make_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    conn = engine.raw_connection()
    try:
        cursor = conn.cursor()
        started = time.perf_counter()
        if sqlite:
            def plain(v: Any) -> Any:
                return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v

            prepared = [tuple(plain(v) for v in row) for row in rows]
            started = time.perf_counter()
            cursor.execute("BEGIN")
            cursor.executemany(
                f"INSERT INTO specimen ({', '.join(RAW_COLUMNS)}) VALUES ({', '.join('?' for _ in RAW_COLUMNS)})", prepared)
            cursor.execute("COMMIT")
        else:
            with cursor.copy(f"COPY specimen ({', '.join(RAW_COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
            conn.commit()
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
        engine.dispose()
    return elapsed


def validated_import(url: str, content: bytes) -> tuple[float, Any]:
    engine = make_engine(url)
    with Session(engine, expire_on_commit=False) as session:
        tech = session.exec(select(User).where(User.username == "bench")).one()
    started = time.perf_counter()
    with session_scope(engine) as session:
        report = run_import(session, actor=tech, kind="specimens", source=content, filename="specimens.csv")
    elapsed = time.perf_counter() - started
    engine.dispose()
    if not report.ok:
        raise SystemExit(f"import failed: {report.errors[:3]}")
    return elapsed, report


def run_backend(name: str, url: str, n: int, content: bytes) -> dict[str, Any]:
    migrate(url)
    setup_case(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        site_id, donor_id = conn.execute(text("SELECT id, donor_id FROM sampling_site")).one()
        user_id = conn.execute(text("SELECT id FROM user_account WHERE username = 'bench'")).scalar_one()
    engine.dispose()
    rows = raw_rows(n, site_id, donor_id, user_id)
    raw_s = raw_insert(url, rows)
    import_s, report = validated_import(url, content)
    result = {
        "backend": name,
        "rows": n,
        "raw_method": "executemany" if name == "sqlite" else "COPY",
        "raw_seconds": round(raw_s, 3),
        "raw_rows_per_s": round(n / raw_s),
        "import_seconds": round(import_s, 3),
        "import_rows_per_s": round(n / import_s),
        "ratio": round(raw_s / import_s, 3),
        "inserted": report.inserted,
        "notes": report.note_count,
    }
    print(f"{name:10s} raw {result['raw_method']:11s} {result['raw_rows_per_s']:>9,} rows/s   "
          f"validated import {result['import_rows_per_s']:>9,} rows/s   ratio {result['ratio']:.2f}")
    return result


DATASETS = "largest"  # run once per database by run_all.py: the import builds its own data at its own size
TARGET_RATIO = 0.5


def figures(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = result["rows"]
    method = result["raw_method"]
    return [
        figure(f"Validated CSV import of {rows:,} specimens", result["import_rows_per_s"], "rows/s",
               note=f"{result['import_seconds']:.1f} s; specimen + audit row + custody event per row, one transaction"),
        figure(f"Raw {method} of the same {rows:,} rows (baseline)", result["raw_rows_per_s"], "rows/s",
               note=f"{result['raw_seconds']:.1f} s; one row per specimen, no parsing, checks, audit or custody"),
        figure("Import rate / raw insert rate", result["ratio"], "×", target=f"≥ {TARGET_RATIO:g}",
               met=result["ratio"] >= TARGET_RATIO,
               note="the import writes three rows per specimen (specimen, audit, custody) against the baseline's one; "
                    "see docs/performance.md"),
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """With ``--url`` (as run_all.py calls it): one database of that backend, made fresh for the run; without it,
    SQLite and (when a server is given) PostgreSQL in turn. Returns the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--url", help="a database of the backend to measure (a fresh scratch database is used)")
    parser.add_argument("--specimens", type=int, help="ignored: the import builds its own rows (--rows)")
    parser.add_argument("--postgres", default=os.environ.get("BIOBANK_TEST_POSTGRES_URL"))
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args(argv)
    content = make_csv(args.rows)
    likes = [args.url] if args.url else ["sqlite:///unused.db"] + (
        [args.postgres] if args.postgres and not args.sqlite_only else [])
    out: list[dict[str, Any]] = []
    for like in likes:
        backend = backend_of(like)
        if backend == "postgresql":
            like = make_url(like).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        with scratch_url(like) as url:
            out.extend(figures(run_backend(backend, url, args.rows, content)))
    return {"name": "import_speed", "figures": out}


if __name__ == "__main__":
    main()
