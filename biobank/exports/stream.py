# SQLModel declares columns with their Python types, so mypy cannot see SQL expressions in select/join/case.
# mypy: disable-error-code="arg-type, call-overload"
"""Every specimen to Parquet in bounded memory: rows stream from a server-side cursor in small slices, each turned
into Arrow at once, and the Arrow slices are gathered into row groups chosen by size in bytes, not by a row count.

Why bytes: a row's cost differs by column content, and the cost that matters is memory. The export holds, at most,
one pending row group as Arrow data (:data:`BATCH_BYTES`, 32 MiB, per call ``batch_bytes``) plus one fetched slice
(about :data:`FETCH_BYTES` of Arrow data; as Python objects, rows, strings and floats, a slice costs several times
that, which is why the fetch is kept much smaller than a row group). The first fetch is a fixed
:data:`FIRST_FETCH_ROWS`; each later one is sized from the Arrow bytes per row seen so far. A module constant rather
than a setting: the budget bounds this process's memory, not a lab policy, and a caller may pass another.

De-identified: no absolute time leaves the database, only hours after death (and the fixation duration) computed in
SQL; no free text (notes, gross descriptions); pseudonymous codes only. Donors who withdrew consent are left out
(DOMAIN.md §2: a withdrawal blocks exports) unless ``include_withdrawn`` is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
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

#: Arrow bytes a row group may hold: slices are added to the pending row group while they fit, then it is written.
BATCH_BYTES = 32 * 1024 * 1024
#: Arrow bytes fetched from the cursor at a time (the rows of one fetch are Python objects only until converted).
FETCH_BYTES = 2 * 1024 * 1024
#: Rows of the first fetch, before the bytes per row are known.
FIRST_FETCH_ROWS = 1_000
#: Where the export's Arrow data (and the buffers the Parquet writer takes from its pool) live: the C library's
#: allocator, not pyarrow's default (mimalloc in the Linux wheels), which keeps the pages of freed slices and row groups
#: in the process. Measured at 100,000 specimens, 32 MiB row groups, SQLite: peak 247 MiB with mimalloc, 230 MiB
#: with this pool, same speed (the writer's encoders still allocate from the default pool, not settable here).
MEMORY_POOL = pa.system_memory_pool()

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


def record_batch(
    rows: Sequence[Any], schema: pa.Schema = SCHEMA, memory_pool: pa.MemoryPool | None = None
) -> pa.RecordBatch:
    """Rows (tuples) -> an Arrow batch, column by column, in :data:`MEMORY_POOL` unless told otherwise."""
    pool = MEMORY_POOL if memory_pool is None else memory_pool
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    return pa.RecordBatch.from_arrays(
        [pa.array(column, type=field.type, memory_pool=pool) for column, field in zip(columns, schema, strict=True)],
        schema=schema,
    )


def fetched_batches(fetchmany: Callable[[int], Sequence[Any]], *, fetch_bytes: int = FETCH_BYTES,
                    first_rows: int = FIRST_FETCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Arrow batches of the rows ``fetchmany(n)`` gives (a DB-API cursor's or a SQLAlchemy result's), each fetch
    sized to about ``fetch_bytes`` of Arrow data from the bytes per row seen so far.

    A fetch's rows are dropped before the next fetch, so only one fetch's Python objects live at a time."""
    size = first_rows
    rows_seen = bytes_seen = 0
    while True:
        rows = fetchmany(size)
        if not rows:
            return
        batch = record_batch(rows)
        del rows
        rows_seen += batch.num_rows
        bytes_seen += batch.nbytes
        size = max(1, fetch_bytes * rows_seen // max(bytes_seen, 1))
        yield batch
        del batch


def write_row_groups(writer: pq.ParquetWriter, batches: Iterable[pa.RecordBatch], *, batch_bytes: int = BATCH_BYTES,
                     max_rows: int | None = None) -> tuple[int, int]:
    """Write ``batches`` as row groups of at most ``batch_bytes`` of Arrow data (and ``max_rows`` rows) each, filled
    close to the budget: a batch is sliced (no copy) where the budget runs out. A single row larger than the budget
    makes a row group of its own. Returns (rows, row groups); with no rows at all, writes one empty row group (not
    counted) so the file still holds the schema."""
    if batch_bytes < 1:
        raise ValueError("batch_bytes must be positive")
    if max_rows is not None and max_rows < 1:
        raise ValueError("batch_size must be positive")
    pending: list[pa.RecordBatch] = []
    pending_bytes = pending_rows = rows = groups = 0

    def flush() -> None:
        nonlocal pending_bytes, pending_rows, rows, groups
        table = pa.Table.from_batches(pending) if pending else SCHEMA.empty_table()
        writer.write_table(table, row_group_size=max(table.num_rows, 1))
        rows += table.num_rows
        groups += 1 if table.num_rows else 0
        pending.clear()
        pending_bytes = pending_rows = 0

    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            if max_rows is not None and pending_rows >= max_rows:
                flush()
            rest = batch.slice(offset)
            room = batch_bytes - pending_bytes
            # As many rows as fit at the average width of the rest, at least one; then fewer while they do not fit.
            take = max(1, min(rest.num_rows, room * rest.num_rows // max(rest.nbytes, 1)))
            if max_rows is not None:
                take = min(take, max_rows - pending_rows)
            piece = rest.slice(0, take)
            while take > 1 and piece.nbytes > room:
                take = max(1, min(take - 1, take * room // piece.nbytes))
                piece = rest.slice(0, take)
            if piece.nbytes > room and pending:
                flush()
                continue
            pending.append(piece)  # (a single row over the whole budget lands here alone: a row group of its own)
            pending_bytes += piece.nbytes
            pending_rows += take
            offset += take
    if pending or rows == 0:
        flush()
    return rows, groups


def export_specimens_parquet(
    engine: Engine,
    path: str | Path,
    *,
    batch_bytes: int = BATCH_BYTES,
    batch_size: int | None = None,
    include_withdrawn: bool = False,
    compression: str = "zstd",
) -> ExportResult:
    """Write every (consented) specimen to ``path`` as Parquet, in row groups of at most ``batch_bytes`` of Arrow data
    (and at most ``batch_size`` rows, when given); atomic on success. The rows and schema do not depend on either.

    Only ``fetchmany`` is used on the result (no ``yield_per``/``partitions``): SQLAlchemy's streaming strategy then
    holds one row ahead and asks the server-side cursor (PostgreSQL: ``FETCH FORWARD n``) for exactly the rows of
    each fetch, so no driver buffer outgrows a fetch."""
    if batch_size is not None and batch_size < 1:
        raise ValueError("batch_size must be positive")
    if batch_bytes < 1:
        raise ValueError("batch_bytes must be positive")
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    statement = specimen_export_statement(include_withdrawn=include_withdrawn)
    try:
        with engine.connect() as conn, pq.ParquetWriter(partial, SCHEMA, compression=compression,
                                                        memory_pool=MEMORY_POOL) as writer:
            result = conn.execution_options(stream_results=True).execute(statement)
            rows, batches = write_row_groups(writer, fetched_batches(result.fetchmany), batch_bytes=batch_bytes,
                                             max_rows=batch_size)
            result.close()
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return ExportResult(target, rows, batches)
