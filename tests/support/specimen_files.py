"""A specimens import file of identical rows for case RA-0001's region L02-A, and its import with the progress events
it reported: for the tests of how the import streams, overlaps and rolls back."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine

from biobank.db.engine import session_scope
from biobank.imports.engine import run_import
from biobank.models import User
from tests.conftest import DEATH

COLUMNS = ["code", "donor_code", "sampling_site", "storage_format", "quantity", "collected_at"]


def specimen_csv(rows: int, bad: dict[int, dict[str, str]] | None = None, *, prefix: str = "S") -> bytes:
    """``rows`` specimen rows (codes ``<prefix>0000``...); ``bad`` replaces cells of some rows (by 0-based index)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    collected = (DEATH + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M")
    for i in range(rows):
        row = {"code": f"{prefix}{i:04d}", "donor_code": "RA-0001", "sampling_site": "L02-A",
               "storage_format": "snap_frozen", "quantity": "50 mg", "collected_at": collected, **(bad or {}).get(i, {})}
        writer.writerow([row[c] for c in COLUMNS])
    return out.getvalue().encode()


def import_specimens(engine: Engine, actor: User, content: bytes, **options: Any) -> tuple[Any, list[tuple[str, int]]]:
    """The import's report and the (phase, count) progress events it reported, in one committed unit of work."""
    events: list[tuple[str, int]] = []
    with session_scope(engine) as session:
        report = run_import(session, actor=actor, kind="specimens", source=content, filename="specimens.csv",
                            progress=lambda phase, n, _total: events.append((phase, n)), **options)
    return report, events
