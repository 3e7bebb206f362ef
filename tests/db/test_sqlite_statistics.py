"""SQLite databases always have planner statistics (``sqlite_stat1``), committed: after the migrations, the demo,
an import and the synthetic loader. Without them SQLite picks indexes by rule (one case's rows walked through an
index of every specimen)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from benchmarks import synthetic
from biobank.db.engine import make_engine, session_scope
from biobank.demo.cohort import load_demo
from biobank.imports.engine import run_import
from biobank.models import User
from tests.support.dbtools import migrate


@pytest.fixture
def backend() -> str:
    return "sqlite"  # statistics on PostgreSQL are autovacuum's and refresh_statistics' (tests/imports)


def stats(engine: Engine) -> dict[str, int]:
    """Rows of sqlite_stat1 per table (the table exists or this fails), read by a new connection: committed."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT tbl, count(*) FROM sqlite_stat1 GROUP BY tbl")).all()
    return {table: count for table, count in rows}


def forget(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS sqlite_stat1")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")).scalar() == 0


def test_migrations_leave_statistics(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate(url)
    engine = make_engine(url)
    assert "anatomical_site" in stats(engine)  # the vocabulary the migrations ship
    engine.dispose()


def test_the_demo_leaves_statistics_on_every_filled_table(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    migrate(url)
    engine = make_engine(url)
    forget(engine)
    with session_scope(engine) as session:
        load_demo(session, donors_count=1)
    assert {"specimen", "sampling_site", "custody_event", "donor"} <= stats(engine).keys()
    engine.dispose()


def test_an_import_leaves_statistics(engine: Engine, tech: User):
    forget(engine)
    csv = "code,sex,age_at_death,primary_site_code,status\nRA-9001,F,61,breast,\nRA-9002,Male,70,,deceased\n"
    with session_scope(engine) as session:
        report = run_import(session, actor=tech, kind="donors", source=csv.encode(), filename="donors.csv")
    assert report.written, report
    assert "donor" in stats(engine)


def test_the_synthetic_loader_commits_its_statistics(engine: Engine):
    forget(engine)
    synthetic.build(engine, 300)
    assert {"specimen", "custody_event"} <= stats(engine).keys()
