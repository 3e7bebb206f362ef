"""Migration 0003 on a database that already holds specimens: rows survive, the specimen rules still hold."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from biobank.db.engine import make_engine
from tests.support.dbtools import alembic_config, empty_database, migrate

DEATH = datetime(2026, 1, 5, 3, 0, tzinfo=UTC).replace(tzinfo=None)


def _seed(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO donor (id, code, sex, status, created_at) VALUES (1, 'RA-0001', 'female', 'deceased', :t)"), {"t": DEATH})
        conn.execute(text("INSERT INTO autopsy (id, donor_id, case_code, death_at, start_at, status, created_at)"
                          " VALUES (1, 1, 'RAP-1', :d, :d, 'in_progress', :d)"), {"d": DEATH})
        conn.execute(text("INSERT INTO sampling_site (id, donor_id, autopsy_id, code, kind, tissue_status, site_code, laterality,"
                          " excised_at, created_at) VALUES (1, 1, 1, 'N01', 'normal_tissue', 'normal', 'LIVER', 'not_applicable', :d, :d)"),
                     {"d": DEATH})
        conn.execute(text("INSERT INTO specimen (id, code, donor_id, sampling_site_id, lineage, material_type, storage_format,"
                          " collected_at, quantity, quantity_remaining, unit, freeze_thaw_count, status, version, created_at)"
                          " VALUES (1, 'RA0001-N01-FR1', 1, 1, 'primary', 'tissue', 'fresh', :d, 100, 100, 'mg', 0, 'available', 1, :d)"),
                     {"d": DEATH})
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_specimens_survive_the_upgrade_and_keep_their_rules(backend, tmp_path):
    with empty_database(backend, tmp_path) as url:
        migrate(url, "0001")
        _seed(url)
        migrate(url, "0003")
        engine = create_engine(make_url(url).set(drivername="postgresql+psycopg") if backend == "postgresql" else url)
        try:
            with engine.connect() as conn:
                row = conn.execute(text("SELECT code, quantity_remaining, passage_id FROM specimen")).one()
                assert tuple(row) == ("RA0001-N01-FR1", 100, None)
                assert conn.execute(text("SELECT count(*) FROM sampling_site")).scalar() == 1
            columns = {c["name"] for c in inspect(engine).get_columns("specimen")}
            checks = {c["name"] for c in inspect(engine).get_check_constraints("specimen")}
            assert "passage_id" in columns and "ck_specimen_remaining_within_quantity" in checks
            # the foundation's triggers survived the rebuild: no delete, no collection before death
            with pytest.raises(DBAPIError, match="tg_specimen_no_delete"), engine.begin() as conn:
                conn.execute(text("DELETE FROM specimen"))
            with pytest.raises(DBAPIError, match="tg_specimen_collected_after_death"), engine.begin() as conn:
                conn.execute(text("UPDATE specimen SET collected_at = :t"), {"t": DEATH.replace(hour=1)})
        finally:
            engine.dispose()
        config = alembic_config()
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        from alembic import command

        command.downgrade(config, "0001")
        engine = create_engine(make_url(url).set(drivername="postgresql+psycopg") if backend == "postgresql" else url)
        try:
            assert "passage_id" not in {c["name"] for c in inspect(engine).get_columns("specimen")}
            with pytest.raises(DBAPIError, match="tg_specimen_no_delete"), engine.begin() as conn:
                conn.execute(text("DELETE FROM specimen"))
        finally:
            engine.dispose()
