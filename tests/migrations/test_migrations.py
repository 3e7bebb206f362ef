"""Migrations on SQLite and PostgreSQL: pytest-alembic's four tests, CHECK names, a round trip with rows present."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from pytest_alembic.tests import (  # imported explicitly: see pytest_alembic_tests_path in pyproject.toml
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy import CheckConstraint, inspect, text
from sqlalchemy.engine import Engine

from biobank.db.engine import make_engine
from biobank.models import metadata
from tests.support.dbtools import alembic_config as biobank_alembic_config
from tests.support.dbtools import empty_database, snapshot

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]


@pytest.fixture
def alembic_config() -> dict[str, str]:
    """pytest-alembic's configuration: our alembic.ini, wherever pytest runs from."""
    root = Path(__file__).resolve().parents[2]
    return {"file": str(root / "alembic.ini"), "script_location": str(root / "migrations")}


@pytest.fixture
def alembic_engine(backend: str, tmp_path: Path) -> Iterator[Engine]:
    with empty_database(backend, tmp_path) as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def _model_check_names() -> set[str]:
    names = set()
    for table in metadata.tables.values():
        for constraint in table.constraints:
            if isinstance(constraint, CheckConstraint):
                assert constraint.name, f"unnamed CHECK on {table.name}"
                names.add(str(constraint.name))
    return names


def _database_check_names(engine: Engine) -> set[str]:
    inspector = inspect(engine)
    names = set()
    for table in inspector.get_table_names():
        for check in inspector.get_check_constraints(table):
            names.add(check["name"])
    return names


def test_every_model_check_constraint_exists_in_the_migrated_database(backend: str, tmp_path: Path) -> None:
    """Autogenerate ignores CHECKs, so compare their names between the models and the migrated schema."""
    with empty_database(backend, tmp_path) as url:
        config = biobank_alembic_config()
        config.set_main_option("sqlalchemy.url", url)
        command.upgrade(config, "head")
        engine = make_engine(url)
        try:
            in_database = _database_check_names(engine)
        finally:
            engine.dispose()
    expected = _model_check_names()
    assert expected, "the models declare CHECK constraints"
    assert expected - in_database == set()


def _seed_rows(url: str) -> None:
    engine = make_engine(url)
    statements = [
        "INSERT INTO user_account (username, role, is_active, created_at) VALUES ('tech', 'technician', true, '2026-01-01 00:00:00')",
        "INSERT INTO donor (code, sex, status, created_at) VALUES ('RA-0001', 'female', 'deceased', '2026-01-01 00:00:00')",
        "INSERT INTO autopsy (donor_id, case_code, death_at, start_at, status, created_at) "
        "VALUES (1, 'C1', '2026-01-01 02:00:00', '2026-01-01 04:00:00', 'in_progress', '2026-01-01 00:00:00')",
        "INSERT INTO lesion (donor_id, code, site_code, laterality, kind, imaging_response, created_at) "
        "VALUES (1, 'L01', 'LIVER', 'not_applicable', 'metastasis', 'unknown', '2026-01-01 00:00:00')",
        "INSERT INTO sampling_site (donor_id, autopsy_id, lesion_id, code, region_label, kind, tissue_status, site_code, "
        "laterality, excised_at, created_at) VALUES (1, 1, 1, 'L01-A', 'A', 'tumour_region', 'tumour', 'LIVER', "
        "'not_applicable', '2026-01-01 05:00:00', '2026-01-01 00:00:00')",
        "INSERT INTO specimen (code, donor_id, sampling_site_id, lineage, material_type, storage_format, collected_at, "
        "quantity, quantity_remaining, unit, freeze_thaw_count, status, version, created_at) VALUES ('RA0001-L01A-SF1', 1, "
        "1, 'primary', 'tissue', 'snap_frozen', '2026-01-01 05:00:00', 50, 50, 'mg', 0, 'available', 1, '2026-01-01 00:00:00')",
        "INSERT INTO custody_event (specimen_id, kind, occurred_at, user_id) VALUES (1, 'collected', '2026-01-01 05:00:00', 1)",
    ]
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def test_upgrade_and_downgrade_round_trip_keeps_the_rows(backend: str, tmp_path: Path) -> None:
    """Rows written at the first revision survive every later upgrade, a downgrade to it, and upgrading again."""
    with empty_database(backend, tmp_path) as url:
        config = biobank_alembic_config()
        config.set_main_option("sqlalchemy.url", url)
        command.upgrade(config, "0001")
        _seed_rows(url)
        engine = make_engine(url)
        tables = ["donor", "autopsy", "lesion", "sampling_site", "specimen", "custody_event", "user_account"]

        def core_rows() -> dict[str, list[tuple]]:
            everything = snapshot(engine)
            return {t: [row[:6] for row in everything[t]] for t in tables}

        before = core_rows()
        command.upgrade(config, "head")
        after_upgrade = core_rows()
        command.downgrade(config, "0001")
        after_downgrade = core_rows()
        command.upgrade(config, "head")
        after_again = core_rows()
        engine.dispose()
    assert before["specimen"], "seeded rows exist"
    assert before == after_upgrade == after_downgrade == after_again
