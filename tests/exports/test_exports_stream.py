"""Streaming Parquet export of every specimen: batches become row groups, only de-identified columns leave the
database (hours after death, no absolute times, no free text, no personal identifiers), withdrawn donors stay out."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from biobank.db.engine import session_scope
from biobank.exports.stream import SCHEMA, export_specimens_parquet
from biobank.services import donors, specimens
from tests.resilience.test_security import PERSONAL
from tests.support.factories import collect, make_case


@pytest.fixture
def cohort(engine, tech, admin) -> list[str]:
    with session_scope(engine) as session:
        make_case(session, tech)
        codes = collect(session, tech)  # 3 h after death; snap-frozen stabilised +5 min; FFPE fixed 24 h
    with session_scope(engine) as session:
        specimens.aliquot(session, actor=tech, parent_code=codes[0], portions=[10, 5])
        specimens.derive(session, actor=tech, parent_code=codes[1], material_type="dna", quantity=2000, unit="ng",
                         parent_quantity_used=20)
    with session_scope(engine) as session:
        make_case(session, tech, donor="RA-0002", case="RAP-2")
        collect(session, tech, case="RAP-2")
    with session_scope(engine) as session:
        donors.withdraw_consent(session, actor=admin, donor_code="RA-0002", requested_by="donor",
                                withdrawn_at=datetime(2026, 4, 1, tzinfo=UTC), reason="changed their mind")
    return codes


def test_every_consented_specimen_streams_out_in_batches(engine, cohort, tmp_path):
    result = export_specimens_parquet(engine, tmp_path / "specimens.parquet", batch_size=2)
    table = pq.read_table(result.path)
    assert result.rows == table.num_rows == 6  # 3 primaries, 2 aliquots, 1 derivative of RA-0001 only
    assert result.batches == 3 and pq.ParquetFile(result.path).num_row_groups == 3
    assert set(table.column("donor_code").to_pylist()) == {"RA-0001"}
    rows = {r["specimen_code"]: r for r in table.to_pylist()}
    first = rows[cohort[0]]
    assert first["collected_hours_after_death"] == pytest.approx(3.0)
    assert first["stabilised_hours_after_death"] == pytest.approx(3 + 5 / 60)
    assert first["pmi_hours"] == pytest.approx(3 + 5 / 60)
    assert first["quantity_remaining"] == 35 and first["lesion_code"] == "L02"
    ffpe = rows[cohort[2]]
    assert ffpe["fixation_hours"] == pytest.approx(24 - 6 / 60)
    aliquot = rows[f"{cohort[0]}.2"]
    assert (aliquot["lineage"], aliquot["parent_code"], aliquot["quantity"]) == ("aliquot", cohort[0], 5)
    assert any(r["material_type"] == "dna" and r["parent_code"] == cohort[1] for r in rows.values())


def test_the_export_holds_no_absolute_time_free_text_or_personal_identifier(engine, cohort, tmp_path):
    result = export_specimens_parquet(engine, tmp_path / "s.parquet")
    schema = pq.read_schema(result.path)
    assert schema.names == SCHEMA.names
    for field in schema:
        assert not pa.types.is_temporal(field.type), field
        assert not field.name.endswith(("_at", "_date")), field
        assert field.name not in {"notes", "note", "gross_description", "prosector", "institution", "reason"}
        assert not PERSONAL.search(field.name), field


def test_withdrawn_donors_are_exported_only_when_asked(engine, cohort, tmp_path):
    everything = export_specimens_parquet(engine, tmp_path / "all.parquet", include_withdrawn=True)
    assert everything.rows == 9 and everything.batches == 1
    donors_out = set(pq.read_table(everything.path).column("donor_code").to_pylist())
    assert donors_out == {"RA-0001", "RA-0002"}


def test_an_empty_database_exports_an_empty_table_with_the_schema(engine, tmp_path):
    result = export_specimens_parquet(engine, tmp_path / "empty.parquet")
    table = pq.read_table(result.path)
    assert (result.rows, table.num_rows, table.schema.names) == (0, 0, SCHEMA.names)
    assert not (tmp_path / "empty.parquet.partial").exists()
