"""The Parquet export batches by bytes, not rows: row groups hold at most the byte budget of Arrow data and are
filled close to it, fetches are sized from the bytes per row seen, and the rows written do not depend on either."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from biobank.exports.stream import (
    SCHEMA,
    export_specimens_parquet,
    fetched_batches,
    record_batch,
    specimen_export_statement,
    write_row_groups,
)

BUDGET = 4 * 1024  # bytes of Arrow data per row group: some ten rows of the demo cohort's 76


def _arrow_bytes(group: pa.Table) -> int:
    """The Arrow size of a row group's rows as the export builds them from fetched rows (never more than the slice
    it wrote: a slice may also carry a validity bitmap its own rows do not need)."""
    return record_batch([tuple(row.values()) for row in group.to_pylist()]).nbytes


@pytest.mark.demo(1)
def test_a_small_budget_gives_many_full_row_groups_within_it_and_the_same_file(engine, tmp_path):
    large = export_specimens_parquet(engine, tmp_path / "large.parquet")
    small = export_specimens_parquet(engine, tmp_path / "small.parquet", batch_bytes=BUDGET)
    reference, table = pq.read_table(large.path), pq.read_table(small.path)
    assert table.schema.equals(SCHEMA) and table.equals(reference)
    assert small.rows == large.rows == reference.num_rows > 50
    assert large.batches == pq.ParquetFile(large.path).num_row_groups == 1

    parquet = pq.ParquetFile(small.path)
    sizes = [_arrow_bytes(parquet.read_row_group(i)) for i in range(parquet.num_row_groups)]
    assert small.batches == parquet.num_row_groups >= 5
    assert max(sizes) <= BUDGET, sizes
    assert min(sizes[:-1]) >= BUDGET * 0.8, sizes  # filled to the budget, not cut at fetch boundaries


@pytest.mark.demo(1)
def test_fetches_are_sized_from_the_bytes_per_row_seen(engine):
    fetch_bytes = 3 * 1024
    asked: list[int] = []
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(specimen_export_statement())

        def fetchmany(size: int) -> Any:
            asked.append(size)
            return result.fetchmany(size)

        batches = list(fetched_batches(fetchmany, fetch_bytes=fetch_bytes, first_rows=1))
    assert asked[0] == 1 and len(batches) >= 6
    for batch in batches[1:-1]:  # after the first, each fetch holds about fetch_bytes of Arrow data
        assert fetch_bytes * 0.5 <= batch.nbytes <= fetch_bytes * 1.5, [b.nbytes for b in batches]


def test_a_row_wider_than_the_budget_makes_a_row_group_of_its_own(tmp_path):
    narrow = tuple("x" if field.type == pa.string() else None for field in SCHEMA)
    wide = ("w" * 5000, *narrow[1:])
    batch = record_batch([narrow, narrow, wide, narrow, narrow])
    budget = 2 * record_batch([narrow]).nbytes  # two one-row slices, as the writer counts them
    with pq.ParquetWriter(tmp_path / "wide.parquet", SCHEMA) as writer:
        rows, groups = write_row_groups(writer, [batch], batch_bytes=budget)
    parquet = pq.ParquetFile(tmp_path / "wide.parquet")
    assert (rows, groups) == (5, 3)
    assert [parquet.metadata.row_group(i).num_rows for i in range(groups)] == [2, 1, 2]
    assert parquet.read().equals(pa.Table.from_batches([batch]))


def test_a_row_cap_splits_groups_the_byte_budget_would_allow(tmp_path):
    rows = [tuple("x" if field.type == pa.string() else None for field in SCHEMA)] * 7
    with pq.ParquetWriter(tmp_path / "capped.parquet", SCHEMA) as writer:
        assert write_row_groups(writer, [record_batch(rows[:4]), record_batch(rows[4:])], max_rows=3) == (7, 3)
    parquet = pq.ParquetFile(tmp_path / "capped.parquet")
    assert [parquet.metadata.row_group(i).num_rows for i in range(3)] == [3, 3, 1]
