"""A synthetic cohort at consortium scale: N specimens (about 250 per donor: 1,000,000 ≈ 4,000 donors) with valid
rows in every foundation table, written with Core bulk inserts (``executemany`` in chunks) on SQLite and ``COPY`` on
PostgreSQL. Every CHECK, foreign key and trigger stays on and holds.

Per donor: consent, a completed autopsy, 10 lesions with 4 regions each (five formats per region and a DNA derivative
from the first snap-frozen piece) and 5 normal tissues (snap-frozen and FFPE): 40 × 6 + 5 × 2 = 250 specimens, each
with its custody events. About one donor in a hundred has withdrawn consent. Audit rows are not written: this is
bulk-loaded benchmark data, not entered by anyone (the bulk-import engineer's loader writes its own).

    python benchmarks/synthetic.py --url sqlite:////tmp/cohort.db --specimens 20000
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import Table, func, select, text  # noqa: E402
from sqlalchemy.engine import Connection, Engine, make_url  # noqa: E402

from biobank.db.engine import sqlite_statistics  # noqa: E402
from biobank.domain.codes import derivative_code, primary_specimen_code  # noqa: E402
from biobank.models import (  # noqa: E402
    Autopsy,
    Consent,
    ConsentWithdrawal,
    CustodyEvent,
    Donor,
    Lesion,
    SamplingSite,
    Specimen,
    User,
)
from biobank.queries.search import code_index_deferred  # noqa: E402

SPECIMENS_PER_DONOR = 250
LESION_SITES = ["BREAST", "LIVER", "LUNG", "VERTEBRA_T12", "VERTEBRA_L3", "RIB", "PELVIS", "FEMUR", "LYMPH_NODE",
                "BRAIN", "ADRENAL", "PLEURA", "SKULL"]
BONE = {"VERTEBRA_T12", "VERTEBRA_L3", "RIB", "PELVIS", "FEMUR", "SKULL"}
NORMAL_SITES = ["LIVER", "LUNG", "KIDNEY", "SPLEEN", "HEART", "SKIN", "SKELETAL_MUSCLE"]
BENCH_USER = "bench"
TABLES: list[Table] = [t.__table__ for t in (Donor, Consent, ConsentWithdrawal, Autopsy, Lesion, SamplingSite,  # type: ignore[attr-defined]
                                              Specimen, CustodyEvent)]


@dataclass
class Buffers:
    """Rows waiting to be written, per table, in foreign-key order."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {t.name: [] for t in TABLES})

    def size(self) -> int:
        return sum(len(r) for r in self.rows.values())


@dataclass
class Ids:
    next: dict[str, int]

    def take(self, table: str) -> int:
        value = self.next[table]
        self.next[table] = value + 1
        return value


def _columns(table: Table) -> list[str]:
    return [c.name for c in table.columns]


def donor_rows(n: int, ids: Ids, rng: random.Random, user_id: int, now: datetime, remaining: int,
               buffers: Buffers) -> int:
    """Append one donor's rows; returns the number of specimens written (at most ``remaining``)."""
    donor_id = ids.take("donor")
    code = f"SY-{n:06d}"
    death = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(days=n % 3650, hours=rng.randint(0, 23),
                                                         minutes=rng.choice([0, 15, 30, 45]))
    withdrawn = n % 100 == 42
    r = buffers.rows
    r["donor"].append({
        "id": donor_id, "code": code, "sex": "female" if n % 5 else "male", "age_at_death": 38 + n % 45,
        "primary_diagnosis": "Invasive ductal carcinoma of breast", "primary_site_code": "BREAST",
        "icdo3_topography": "C50.9", "icdo3_morphology": "8500/3", "diagnosis_days_before_death": 700 + n % 3000,
        "er_status": "positive", "pr_status": "positive", "her2_status": "negative",
        "cause_of_death": "Progressive metastatic disease", "hardy_scale": 2 + n % 3,
        "status": "withdrawn" if withdrawn else "autopsy_done",
        "created_at": now, "created_by_id": user_id, "updated_at": None, "updated_by_id": None,
    })
    r["consent"].append({
        "id": ids.take("consent"), "donor_id": donor_id, "given_by": "donor", "consented_on": date(2014, 6, 1),
        "research_use": True, "genomic_sequencing": True, "model_derivation": n % 4 != 0, "external_sharing": n % 3 != 0,
        "recontact": False, "document_ref": "ICF-v3.1",
        "created_at": now, "created_by_id": user_id, "updated_at": None, "updated_by_id": None,
    })
    if withdrawn:
        r["consent_withdrawal"].append({
            "id": ids.take("consent_withdrawal"), "donor_id": donor_id, "requested_by": "next_of_kin",
            "withdrawn_at": death + timedelta(days=90), "reason": "Family asked that the material no longer be used",
            "entered_by_id": user_id, "created_at": now, "created_by_id": user_id, "updated_at": None,
            "updated_by_id": None,
        })
    start = death + timedelta(minutes=rng.randint(80, 400))
    autopsy_id = ids.take("autopsy")
    r["autopsy"].append({
        "id": autopsy_id, "donor_id": donor_id, "case_code": f"SYC-{n:06d}", "death_at": death,
        "refrigerated_at": death + timedelta(minutes=rng.randint(30, 150)), "start_at": start,
        "end_at": start + timedelta(hours=6), "institution": "Synthetic consortium site", "prosector": "Dr Synthetic",
        "team": "Rapid autopsy team", "status": "complete",
        "created_at": now, "created_by_id": user_id, "updated_at": None, "updated_by_id": None,
    })
    clock = start
    written = 0

    def site(code: str, kind: str, site_code: str, lesion_id: int | None, label: str | None) -> tuple[int, datetime]:
        nonlocal clock
        clock += timedelta(minutes=rng.randint(1, 4))
        site_id = ids.take("sampling_site")
        r["sampling_site"].append({
            "id": site_id, "donor_id": donor_id, "autopsy_id": autopsy_id, "lesion_id": lesion_id, "code": code,
            "region_label": label, "kind": kind, "tissue_status": "tumour" if lesion_id else "normal",
            "distance_to_tumour_mm": None, "site_code": site_code, "laterality": "not_applicable", "excised_at": clock,
            "prosector": "Dr Synthetic", "gross_description": None,
            "created_at": now, "created_by_id": user_id, "updated_at": None, "updated_by_id": None,
        })
        return site_id, clock

    def specimen(site_id: int, site_code: str, fmt: str, seq: int, excised: datetime, *, material: str = "tissue",
                 quantity: float, unit: str, remaining: float | None = None, parent: tuple[int, str] | None = None,
                 used: float | None = None, **extra: Any) -> tuple[int, str]:
        nonlocal written
        specimen_id = ids.take("specimen")
        stabilised = excised + timedelta(minutes=rng.randint(2, 14))
        if parent is None:
            specimen_code = primary_specimen_code(code, site_code, fmt, seq)
            lineage = "primary"
        else:
            specimen_code = derivative_code(parent[1], material, 1)
            lineage = "derivative"
        row = {c: None for c in SPECIMEN_COLUMNS}
        row.update({
            "id": specimen_id, "code": specimen_code, "donor_id": donor_id, "sampling_site_id": site_id,
            "parent_id": parent[0] if parent else None, "lineage": lineage, "material_type": material,
            "storage_format": fmt, "collected_at": excised, "stabilised_at": stabilised,
            "quantity": quantity, "quantity_remaining": quantity if remaining is None else remaining, "unit": unit,
            "parent_quantity_used": used, "freeze_thaw_count": 0, "status": "available", "version": 1,
            "created_at": now, "created_by_id": user_id,
        })
        row.update(extra)
        if fmt == "ffpe":
            row["fixative"] = "nbf"
            row["fixation_end_at"] = stabilised + timedelta(hours=24)
        r["specimen"].append(row)
        events = [("collected", excised), ("stabilised", stabilised)] if parent is None else [("derived", stabilised)]
        for kind, at in events:
            r["custody_event"].append({
                "id": ids.take("custody_event"), "specimen_id": specimen_id, "kind": kind, "occurred_at": at,
                "user_id": user_id, "from_location": None, "to_location": None, "note": None,
            })
        written += 1
        return specimen_id, specimen_code

    sites = [LESION_SITES[0], *rng.sample(LESION_SITES[1:], 9)]
    for number, lesion_site in enumerate(sites, start=1):
        if written >= remaining:
            break
        lesion_id = ids.take("lesion")
        lesion_code = f"L{number:02d}"
        r["lesion"].append({
            "id": lesion_id, "donor_id": donor_id, "code": lesion_code, "site_code": lesion_site,
            "laterality": "not_applicable", "kind": "primary" if number == 1 else "metastasis",
            "bone_phenotype": "osteolytic" if lesion_site in BONE else None, "size_mm": float(10 + number),
            "imaging_response": "progressing", "er_status": None, "pr_status": None, "her2_status": None,
            "description": None, "created_at": now, "created_by_id": user_id, "updated_at": None,
            "updated_by_id": None,
        })
        for label in "ABCD":
            if written >= remaining:
                break
            region = f"{lesion_code}-{label}"
            site_id, excised = site(region, "tumour_region", lesion_site, lesion_id, label)
            cellularity = float(rng.choice([20, 40, 60, 80]))
            plan: list[tuple[str, int, float, str]] = [("snap_frozen", 1, 50, "mg"), ("snap_frozen", 2, 50, "mg"),
                                                       ("oct", 1, 1, "blocks"), ("ffpe", 1, 1, "blocks"),
                                                       ("rnalater", 1, 30, "mg")]
            first: tuple[int, str] | None = None
            for fmt, seq, quantity, unit in plan:
                if written >= remaining:
                    break
                made = specimen(site_id, region, fmt, seq, excised, quantity=quantity, unit=unit,
                                remaining=30.0 if first is None else None,
                                tumour_cellularity_pct=cellularity if fmt in ("ffpe", "oct") else None)
                first = first or made
            if first is not None and written < remaining:
                specimen(site_id, region, "frozen", 1, excised, material="dna", quantity=float(rng.randint(1500, 9000)),
                         unit="ng", parent=first, used=20.0, concentration_ng_ul=round(rng.uniform(15, 120), 1),
                         yield_ng=5000.0, a260_280=1.85, din=round(rng.uniform(5, 9), 1))
    for index, tissue in enumerate(rng.sample(NORMAL_SITES, 5), start=1):
        if written >= remaining:
            break
        normal = f"N{index:02d}"
        site_id, excised = site(normal, "normal_tissue", tissue, None, None)
        specimen(site_id, normal, "snap_frozen", 1, excised, quantity=50, unit="mg")
        if written < remaining:
            specimen(site_id, normal, "ffpe", 1, excised, quantity=1, unit="blocks")
    return written


SPECIMEN_COLUMNS = _columns(Specimen.__table__)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------------------- writers


def _sqlite_writer(conn: Connection) -> Callable[[Table, list[dict[str, Any]]], None]:
    def write(table: Table, rows: list[dict[str, Any]]) -> None:
        conn.execute(table.insert(), rows)

    return write


def _postgres_writer(conn: Connection) -> Callable[[Table, list[dict[str, Any]]], None]:
    from psycopg import sql

    raw = conn.connection.driver_connection

    def write(table: Table, rows: list[dict[str, Any]]) -> None:
        columns = list(rows[0].keys())
        column_list = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table.name), column_list)
        with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row([row[c] for c in columns])

    return write


def _bench_user(conn: Connection, now: datetime) -> int:
    users = User.__table__  # type: ignore[attr-defined]
    found = conn.execute(select(users.c.id).where(users.c.username == BENCH_USER)).scalar()
    if found is not None:
        return int(found)
    conn.execute(users.insert().values(username=BENCH_USER, role="admin", full_name="Benchmark loader",
                                       is_active=True, created_at=now))
    return int(conn.execute(select(users.c.id).where(users.c.username == BENCH_USER)).scalar_one())


@dataclass(frozen=True)
class BuildResult:
    specimens: int
    donors: int
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def build(engine: Engine, specimens: int, *, seed: int = 1, chunk_rows: int = 50_000,
          progress: Callable[[str], None] | None = None) -> BuildResult:
    """Append ``specimens`` specimens (and their donors, cases, lesions, sites, custody) in one transaction."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    backend = engine.dialect.name
    started = time.perf_counter()
    total_rows = 0
    with engine.begin() as conn:
        user_id = _bench_user(conn, now)
        ids = Ids({t.name: int(conn.execute(select(func.coalesce(func.max(t.c.id), 0))).scalar_one()) + 1
                   for t in TABLES})
        first_donor = ids.next["donor"]
        write = _postgres_writer(conn) if backend == "postgresql" else _sqlite_writer(conn)
        buffers = Buffers()
        made = 0
        donor_number = first_donor
        donors = 0

        def flush() -> int:
            count = 0
            for table in TABLES:
                rows = buffers.rows[table.name]
                if rows:
                    write(table, rows)
                    count += len(rows)
                    rows.clear()
            return count

        with code_index_deferred(conn):  # SQLite: codes indexed for search in one statement at the end
            while made < specimens:
                made += donor_rows(donor_number, ids, rng, user_id, now, specimens - made, buffers)
                donor_number += 1
                donors += 1
                if buffers.size() >= chunk_rows:
                    total_rows += flush()
                    if progress:
                        progress(f"{made:,} specimens, {total_rows:,} rows, {time.perf_counter() - started:.1f} s")
            total_rows += flush()
        if backend == "postgresql":
            for table in TABLES:
                conn.execute(text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :v)"),
                             {"t": table.name, "v": max(ids.next[table.name] - 1, 1)})
    if backend == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))  # what autovacuum would do soon after a bulk load
    else:
        with engine.begin() as conn:  # committed: a connection closed without commit rolls ANALYZE back
            sqlite_statistics(conn)
    return BuildResult(made, donors, total_rows, time.perf_counter() - started)


# ------------------------------------------------------------------------------------- cached benchmark cohorts


def migrate(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


def specimen_count(url: str) -> int | None:
    from biobank.db.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Specimen.__table__)).scalar_one())  # type: ignore[attr-defined]
    except Exception:
        return None
    finally:
        engine.dispose()


def cohort_url(backend: str, specimens: int, *, postgres: str | None, data_dir: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{data_dir / f'cohort-{specimens}.db'}"
    assert postgres
    return make_url(postgres).set(drivername="postgresql+psycopg", database=f"biobank_bench_{specimens}").render_as_string(
        hide_password=False
    )


def _recreate(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(str(parsed.database))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    from sqlalchemy import create_engine

    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        # CREATE/DROP DATABASE take no bound parameters: the name is quoted by the dialect's identifier preparer.
        name = conn.dialect.identifier_preparer.quote(str(parsed.database))
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()


def ensure_cohort(url: str, specimens: int, *, rebuild: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """A migrated database holding exactly ``specimens`` synthetic specimens, reused when it already does."""
    if not rebuild and specimen_count(url) == specimens:
        log(f"reusing cohort of {specimens:,} specimens at {make_url(url).render_as_string(hide_password=True)}")
        migrate(url)  # indexes added by later migrations reach the cached cohort too
        return {"reused": True}
    _recreate(url)
    migrate(url)
    from biobank.db.engine import make_engine

    engine = make_engine(url)
    try:
        result = build(engine, specimens, progress=log)
    finally:
        engine.dispose()
    log(f"built {result.specimens:,} specimens ({result.donors:,} donors, {result.rows:,} rows) in "
        f"{result.seconds:.1f} s: {result.rows_per_second:,.0f} rows/s")
    return {"reused": False, "rows": result.rows, "seconds": result.seconds, "rows_per_second": result.rows_per_second}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="database URL (migrated here if empty)")
    parser.add_argument("--specimens", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="drop and recreate the database first")
    args = parser.parse_args(argv)
    if args.fresh:
        _recreate(args.url)
    migrate(args.url)
    from biobank.db.engine import make_engine

    engine = make_engine(args.url)
    try:
        result = build(engine, args.specimens, seed=args.seed, progress=print)
    finally:
        engine.dispose()
    print(f"{result.specimens:,} specimens, {result.donors:,} donors, {result.rows:,} rows in {result.seconds:.1f} s: "
          f"{result.rows_per_second:,.0f} rows/s")
    return {"specimens": result.specimens, "rows": result.rows, "seconds": result.seconds,
            "rows_per_second": result.rows_per_second, "donors": math.ceil(result.specimens / SPECIMENS_PER_DONOR)}


if __name__ == "__main__":
    main()
