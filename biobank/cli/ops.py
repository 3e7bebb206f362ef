"""Operations: consistent backups, restore into an empty database, and table checksums to compare the two."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biobank.cli.common import JsonOption, emit
from biobank.db import backup as backup_module
from biobank.db.engine import get_engine


def _url() -> str:
    return get_engine().url.render_as_string(hide_password=True)


def backup(
    file: Annotated[Path, typer.Argument(help="Backup file to write (SQLite copy, or pg_dump custom format).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace FILE if it exists.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Back up the database to FILE, consistently, even while others write (SQLite backup API; pg_dump)."""
    result = backup_module.backup(get_engine(), file, overwrite=overwrite)
    data = {"file": str(result.path), "backend": result.backend, "bytes": result.bytes, "tables": result.tables,
            "database": _url()}
    emit(data, as_json=as_json,
         text=f"backup written: {result.path} ({result.bytes:,} bytes, {result.tables} tables, {result.backend})")


def restore(
    file: Annotated[Path, typer.Argument(help="Backup file made by 'biobank backup'.")],
    as_json: JsonOption = False,
) -> None:
    """Restore FILE into the configured database, which must be empty (no tables); never merges into data."""
    result = backup_module.restore(get_engine(), file)
    counts = backup_module.table_counts(get_engine())
    data = {"file": str(result.path), "backend": result.backend, "tables": result.tables, "rows": counts,
            "database": _url()}
    emit(data, as_json=as_json, text=(
        f"restored {result.path} into {data['database']}: {result.tables} tables, {sum(counts.values()):,} rows\n"
        "next: 'biobank db upgrade' if this release has newer migrations than the backup"
    ))


def checksums(as_json: JsonOption = False) -> None:
    """Row count and SHA-256 of every table (compare a restored database with its source)."""
    sums = backup_module.table_checksums(get_engine())
    rows = [{"table": name, "rows": c.rows, "sha256": c.sha256} for name, c in sums.items()]
    emit(rows, as_json=as_json)
