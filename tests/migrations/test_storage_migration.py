"""Migration 0002: upgrades over a populated foundation database, downgrades cleanly, and carries every named CHECK."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect, text

from biobank.models import metadata
from biobank.models.storage import Checkout, Container, DistributionItem, DistributionOrder, SpecimenLocation
from tests.support.dbtools import alembic_config, empty_database, migrate

TABLES = [m.__tablename__ for m in (Container, SpecimenLocation, Checkout, DistributionOrder, DistributionItem)]


def test_upgrade_over_rows_then_down_and_up_again(backend, tmp_path):
    with empty_database(backend, tmp_path) as url:
        migrate(url, "0001")
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO user_account (username, role, is_active, created_at) "
                              "VALUES ('tech', 'technician', true, CURRENT_TIMESTAMP)"))
        migrate(url, "0002")
        assert set(TABLES) <= set(inspect(engine).get_table_names())
        config = alembic_config()
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        command.downgrade(config, "0001")
        assert not set(TABLES) & set(inspect(engine).get_table_names())
        migrate(url, "0002")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM user_account")).scalar() == 1
        engine.dispose()


def test_every_named_check_of_the_storage_tables_is_in_the_database(engine):
    """Autogenerate ignores CHECK constraints, so compare their names directly."""
    inspector = inspect(engine)
    for table in TABLES:
        declared = {c.name for c in metadata.tables[table].constraints if c.__class__.__name__ == "CheckConstraint"}
        present = {c["name"] for c in inspector.get_check_constraints(table)}
        assert declared and declared <= present, (table, declared - present)
