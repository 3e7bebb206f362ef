"""``biobank import specimens FILE`` killed with SIGKILL while it reads the file and while it writes leaves the
database exactly as it was, and running it again imports every row; on SQLite and PostgreSQL.

The import writes each validated chunk in its one transaction while it reads the next, so the test watches how far
the child has read its file (the offset of its descriptor, through ``/proc/<pid>/fdinfo``): early in the file, the
first chunk is being checked; past the middle, earlier chunks are already written (on PostgreSQL the test also sees
the child's open write transaction) while later ones are still being read.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from biobank.db.engine import session_scope
from biobank.models import AuditLog, CustodyEvent, Specimen
from tests.conftest import DEATH
from tests.resilience.test_resilience_crash import _kill, _start, _writing
from tests.support.cli_auth import issue_cli_token
from tests.support.dbtools import snapshot
from tests.support.factories import collect, make_case

pytestmark = pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="needs Linux /proc")

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from biobank.cli import main; main()"]
ROWS = 20_000
COLUMNS = ["code", "donor_code", "sampling_site", "storage_format", "quantity", "collected_at", "stabilised_at",
           "tumour_cellularity_pct", "notes"]
FORMATS = [("snap_frozen", "50 mg"), ("oct", "1 block"), ("rnalater", "30 mg"), ("viable_cryo", "100 mg")]


def _write_csv(path: Path, rows: int) -> None:
    base = DEATH + timedelta(hours=3)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for i in range(rows):
            fmt, qty = FORMATS[i % len(FORMATS)]
            collected = base + timedelta(minutes=i % 600)
            writer.writerow([f"K{i:06d}", "RA-0001", "L02-A", fmt, qty, collected.strftime("%Y-%m-%d %H:%M"),
                             (collected + timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M"), f"{(i * 7) % 90 + 5}",
                             "" if i % 3 else "crash row"])


def _offset(pid: int, path: Path) -> int | None:
    """How far the child has read ``path`` (its descriptor's offset), or None while it has not opened it."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != str(path):
                continue
            return next(int(line.split()[1]) for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines()
                        if line.startswith("pos:"))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return None


def _wait_for(child: subprocess.Popen[str], path: Path, phase: str, timeout: float = 60) -> None:
    """Until the child has read into ``path`` (phase "reading") or past its middle ("writing")."""
    size = path.stat().st_size
    deadline = time.monotonic() + timeout
    while True:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, f"the import never reached its {phase} phase"
        pos = _offset(child.pid, path)
        if pos is not None and pos < size:
            if phase == "reading" and pos > 0:
                return
            if phase == "writing" and pos > size // 2:
                return
        time.sleep(0.01)


def _import(db_url: str, path: Path) -> list[str]:
    return [*CLI, "import", "specimens", str(path), "--user", "tech"]


@pytest.fixture
def case(engine, tech) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech, lesion="L02", region="A")  # the sampling site L02-A the file refers to


def test_an_import_killed_while_validating_and_while_writing_leaves_nothing_and_runs_again(
    engine, db_url, case, tmp_path, monkeypatch
):
    monkeypatch.setenv("BIOBANK_TOKEN", issue_cli_token(db_url, "tech"))  # the children act as tech, proven
    path = tmp_path / "specimens.csv"
    _write_csv(path, ROWS)
    before = snapshot(engine)

    child = _start(_import(db_url, path), db_url)
    _wait_for(child, path, "reading")
    _kill(child)
    assert snapshot(engine) == before

    child = _start(_import(db_url, path), db_url)
    _wait_for(child, path, "writing")
    if engine.dialect.name == "postgresql":  # rows really are going in (SQLite holds its write lock from the start)
        assert _writing(db_url), "the import had not started writing rows past the middle of its file"
    _kill(child)
    assert snapshot(engine) == before

    with Session(engine) as session:
        specimens_before = session.exec(select(func.count()).select_from(Specimen)).one()
        custody_before = session.exec(select(func.count()).select_from(CustodyEvent)).one()
    again = subprocess.run(_import(db_url, path), cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
                           env={**os.environ, "BIOBANK_DATABASE_URL": db_url})
    assert again.returncode == 0, again.stderr[-2000:]
    with Session(engine) as session:
        imported = session.exec(select(Specimen.id).where(Specimen.code.like("K%"))).all()  # type: ignore[attr-defined]
        assert len(imported) == ROWS
        assert session.exec(select(func.count()).select_from(Specimen)).one() == specimens_before + ROWS
        assert session.exec(select(func.count()).select_from(CustodyEvent)).one() == custody_before + ROWS
        audited = session.exec(select(func.count()).select_from(AuditLog).where(
            AuditLog.table_name == "specimen", AuditLog.action == "insert",
            AuditLog.row_id.in_([str(i) for i in imported[:500]]))).one()  # type: ignore[attr-defined]
        assert audited == 500
