"""A process killed with SIGKILL in the middle of a collection or the demo load leaves no partial data (the database
is exactly as before), and running it again succeeds; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, func, select

from biobank.db.engine import session_scope
from biobank.models import AuditLog, CustodyEvent, SamplingSite, Specimen
from tests.support.dbtools import snapshot
from tests.support.factories import make_case
from tests.support.workload import CUSTODY_PER_SPECIMEN, SPECIMENS_PER_REGION

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from biobank.cli import main; main()"]


def _start(command: list[str], db_url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "BIOBANK_DATABASE_URL": db_url, "PYTHONUNBUFFERED": "1", "BIOBANK_DEMO_MODE": "true"}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill(process: subprocess.Popen[str]) -> None:
    assert process.poll() is None, "the child finished before it could be killed mid-way"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL


def _collect(db_url: str, count: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tests.support.workload", "collect", "--url", db_url, "--count", str(count), *extra]


def _writing(db_url: str) -> bool:
    """True while another process holds an open write transaction on the database."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(url.database), timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            conn.close()
    engine = create_engine(url.set(database="postgres"))
    try:
        with engine.connect() as conn:
            busy = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND backend_xid IS NOT NULL"),
                {"db": url.database},
            ).scalar_one()
        return bool(busy)
    finally:
        engine.dispose()


def test_a_collection_killed_mid_transaction_leaves_nothing_and_runs_again(engine, db_url, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
    before = snapshot(engine)
    child = _start(_collect(db_url, 40, "--single-transaction", "--pause", "0.05"), db_url)
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == "progress 8":
            break
    _kill(child)

    assert snapshot(engine) == before

    again = subprocess.run(_collect(db_url, 40, "--single-transaction"), cwd=ROOT, capture_output=True, text=True,
                           timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == "committed 40"
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(SamplingSite)).one() == 40
        specimens = session.exec(select(Specimen.id)).all()
        assert len(specimens) == 40 * SPECIMENS_PER_REGION
        custody = session.exec(select(func.count()).select_from(CustodyEvent)).one()
        assert custody == len(specimens) * CUSTODY_PER_SPECIMEN
        audited = set(session.exec(select(AuditLog.row_id).where(AuditLog.table_name == "specimen")).all())
        assert audited == {str(i) for i in specimens}


def test_the_demo_load_killed_midway_leaves_an_empty_database_and_runs_again(engine, db_url):
    before = snapshot(engine)
    child = _start([*CLI, "demo", "--donors", "30"], db_url)
    deadline = time.monotonic() + 30
    while not _writing(db_url):
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the demo load never started writing"
        time.sleep(0.1)
    time.sleep(1.0)  # well inside the load (30 donors take far longer), not at its first statement
    _kill(child)

    assert snapshot(engine) == before

    again = subprocess.run([*CLI, "demo", "--donors", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={**os.environ, "BIOBANK_DATABASE_URL": db_url, "BIOBANK_DEMO_MODE": "true"}, check=False)
    assert again.returncode == 0, again.stderr
    assert "demo cohort loaded: 1 donors" in again.stdout
