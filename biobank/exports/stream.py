# SQLModel declares columns with their Python types, so mypy cannot see SQL expressions in select/join/case.
# mypy: disable-error-code="arg-type, call-overload"
"""Every specimen to Parquet in bounded memory: rows stream from a server-side cursor in batches straight into a
``ParquetWriter`` (a million specimens never sit in memory at once).

De-identified: no absolute time leaves the database, only hours after death (and the fixation duration) computed in
SQL; no free text (notes, gross descriptions); pseudonymous codes only. Donors who withdrew consent are left out
(DOMAIN.md §2: a withdrawal blocks exports) unless ``include_withdrawn`` is asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Double, case, cast, exists, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select

from biobank.db.sqlfunc import hours_between
from biobank.models import Autopsy, ConsentWithdrawal, Donor, Lesion, SamplingSite, Specimen

#: The exported columns and their Arrow types, in order (the statement below yields them in the same order).
SCHEMA = pa.schema([
    ("specimen_code", pa.string()),
    ("donor_code", pa.string()),
    ("case_code", pa.string()),
    ("sampling_site_code", pa.string()),
    ("site_kind", pa.string()),
    ("tissue_status", pa.string()),
    ("anatomical_site", pa.string()),
    ("laterality", pa.string()),
    ("lesion_code", pa.string()),
    ("lesion_kind", pa.string()),
    ("lineage", pa.string()),
    ("parent_code", pa.string()),
    ("material_type", pa.string()),
    ("storage_format", pa.string()),
    ("status", pa.string()),
    ("quantity", pa.float64()),
    ("quantity_remaining", pa.float64()),
    ("unit", pa.string()),
    ("parent_quantity_used", pa.float64()),
    ("concentration_ng_ul", pa.float64()),
    ("freeze_thaw_count", pa.int32()),
    ("fixative", pa.string()),
    ("decalcification_agent", pa.string()),
    ("decalcification_hours", pa.float64()),
    ("collected_hours_after_death", pa.float64()),
    ("stabilised_hours_after_death", pa.float64()),
    ("fixation_hours", pa.float64()),
    ("pmi_hours", pa.float64()),
    ("er_status", pa.string()),
    ("pr_status", pa.string()),
    ("her2_status", pa.string()),
    ("tumour_cellularity_pct", pa.float64()),
    ("necrosis_pct", pa.float64()),
    ("yield_ng", pa.float64()),
    ("a260_280", pa.float64()),
    ("rin", pa.float64()),
    ("din", pa.float64()),
    ("dv200_pct", pa.float64()),
])


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    batches: int


def _hours(start: Any, end: Any) -> Any:
    """Hours between two timestamps as a double on both databases (PostgreSQL's EXTRACT gives numeric)."""
    return cast(hours_between(start, end), Double)


def specimen_export_statement(*, include_withdrawn: bool = False) -> Select[Any]:
    """One row per specimen with the de-identified columns of :data:`SCHEMA`, in specimen id order."""
    parent = aliased(Specimen)
    death = Autopsy.death_at
    post_mortem = SamplingSite.kind != "premortem_blood"
    columns: list[Any] = [
        Specimen.code, Donor.code, Autopsy.case_code, SamplingSite.code, SamplingSite.kind,
        SamplingSite.tissue_status, SamplingSite.site_code, SamplingSite.laterality, Lesion.code, Lesion.kind,
        Specimen.lineage, parent.code, Specimen.material_type, Specimen.storage_format, Specimen.status,
        Specimen.quantity, Specimen.quantity_remaining, Specimen.unit, Specimen.parent_quantity_used,
        Specimen.concentration_ng_ul, Specimen.freeze_thaw_count, Specimen.fixative,
        Specimen.decalcification_agent, Specimen.decalcification_hours,
        _hours(death, Specimen.collected_at),
        _hours(death, Specimen.stabilised_at),
        _hours(Specimen.stabilised_at, Specimen.fixation_end_at),
        case((post_mortem, _hours(death, func.coalesce(Specimen.stabilised_at, Specimen.collected_at)))),
        Specimen.er_status, Specimen.pr_status, Specimen.her2_status, Specimen.tumour_cellularity_pct,
        Specimen.necrosis_pct, Specimen.yield_ng, Specimen.a260_280, Specimen.rin, Specimen.din,
        Specimen.dv200_pct,
    ]
    statement = (
        select(*columns)
        .select_from(Specimen)
        .join(Donor, Donor.id == Specimen.donor_id)
        .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)
        .outerjoin(Autopsy, Autopsy.id == SamplingSite.autopsy_id)
        .outerjoin(Lesion, Lesion.id == SamplingSite.lesion_id)
        .outerjoin(parent, parent.id == Specimen.parent_id)
        .order_by(Specimen.id)
    )
    if not include_withdrawn:
        # NOT EXISTS, not a LEFT JOIN ... IS NULL: PostgreSQL estimated the latter at one row and planned nested
        # loops with sequential scans per specimen (minutes at a million specimens).
        withdrawn = select(ConsentWithdrawal.id).where(ConsentWithdrawal.donor_id == Specimen.donor_id)
        statement = statement.where(~exists(withdrawn))
    return statement


def record_batch(rows: list[Any], schema: pa.Schema = SCHEMA) -> pa.RecordBatch:
    """Rows (tuples) -> an Arrow batch, column by column."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    return pa.RecordBatch.from_arrays(
        [pa.array(column, type=field.type) for column, field in zip(columns, schema, strict=True)], schema=schema
    )


def export_specimens_parquet(
    engine: Engine,
    path: str | Path,
    *,
    batch_size: int = 50_000,
    include_withdrawn: bool = False,
    compression: str = "zstd",
) -> ExportResult:
    """Write every (consented) specimen to ``path`` as Parquet, one row group per batch; atomic on success."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    rows = batches = 0
    statement = specimen_export_statement(include_withdrawn=include_withdrawn)
    try:
        with engine.connect() as conn, pq.ParquetWriter(partial, SCHEMA, compression=compression) as writer:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(statement)
            for partition in result.partitions():
                writer.write_batch(record_batch(list(partition)))
                rows += len(partition)
                batches += 1
            if batches == 0:
                writer.write_batch(record_batch([]))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return ExportResult(target, rows, batches)
