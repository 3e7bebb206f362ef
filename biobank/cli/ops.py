"""Operations: consistent backups, restore into an empty database, and table checksums to compare the two.

The commands that can lose data (``biobank restore`` here, ``biobank db downgrade`` in :mod:`biobank.cli.core`) go
through the same three gates (:func:`dangerous`): an administrator's token, the database's name typed to confirm,
and a backup taken first.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from biobank.cli.common import (  # ConfirmOption: declared there, used here (``biobank.cli.ops.ConfirmOption``)
    TOKEN_VARIABLE,
    ConfirmOption,
    JsonOption,
    UserOption,
    acting_user,
    emit,
    fail,
    presented_token,
    unit_of_work,
)
from biobank.cli.progress import Bar, QuietOption
from biobank.config import get_settings
from biobank.db import backup as backup_module
from biobank.db.engine import get_engine
from biobank.domain.errors import ConflictError, PermissionDeniedError, ValidationError
from biobank.models import ApiToken, User
from biobank.models.base import table_of, utcnow
from biobank.services import tokens as token_service


def _url() -> str:
    return get_engine().url.render_as_string(hide_password=True)


def database_name(url: str | None = None) -> str:
    """The name a person types to confirm: the PostgreSQL database's name, or the SQLite file's name."""
    parsed = make_url(url or get_settings().database_url)
    if parsed.get_backend_name() == "sqlite":
        return Path(parsed.database or "").name or ":memory:"
    return parsed.database or ""


# --------------------------------------------------------------------------------------- the three gates


def require_admin_token(doing: str, user: str | None) -> str:
    """The name of the administrator whose token this command presents, checked against the configured database."""
    with unit_of_work() as session:
        actor = token_service.require_admin(acting_user(session, user), doing)
        return actor.username


def confirm_database(doing: str, confirm: str | None) -> None:
    """The database's name, given with --confirm or typed at the prompt; anything else stops the command."""
    name = database_name()
    typed = confirm
    if typed is None:
        try:
            typed = typer.prompt(f"{doing} {_url()}: type the database's name ({name}) to go on")
        except (typer.Abort, click.exceptions.Abort):  # end of input: nothing typed
            typed = None
    if (typed or "").strip() != name:
        raise fail(f"{doing}: not confirmed (the database's name is {name!r}); nothing was changed")


def backup_first(doing: str) -> Path | None:
    """A backup of the configured database before it changes (None when it holds no table: nothing to keep)."""
    engine = get_engine()
    if not _tables(engine):
        return None
    directory = _backup_directory(engine)
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    suffix = ".db" if engine.dialect.name == "sqlite" else ".dump"
    stem = Path(database_name()).stem or "biobank"
    slug = doing.replace(" ", "-")
    target = directory / f"{stem}-before-{slug}-{stamp}{suffix}"
    counter = 1
    while target.exists():
        counter += 1
        target = directory / f"{stem}-before-{slug}-{stamp}-{counter}{suffix}"
    return backup_module.backup(engine, target).path


def _backup_directory(engine: Engine) -> Path:
    configured = get_settings().backup_dir
    if configured is not None:
        return Path(configured).expanduser()
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        return Path(str(engine.url.database)).expanduser().resolve().parent
    return Path.cwd()


def _tables(engine: Engine) -> list[str]:
    """The tables of the configured database (a SQLite file that does not exist has none, and is not created)."""
    if engine.dialect.name == "sqlite" and not Path(str(engine.url.database)).exists():
        return []
    return sorted(inspect(engine).get_table_names())


def dangerous(doing: str, user: str | None, confirm: str | None) -> Path | None:
    """The gates of a command that can lose data, in order: an administrator's token, the typed confirmation, then
    a backup (returned; None when there was nothing to back up). Says where the backup went."""
    admin = require_admin_token(doing, user)
    confirm_database(doing, confirm)
    made = backup_first(doing)
    if made is None:
        typer.echo(f"{doing} by {admin}: the database holds no tables, nothing to back up first", err=True)
    else:
        typer.echo(f"{doing} by {admin}: backup taken first: {made}", err=True)
    return made


def backup(
    file: Annotated[Path, typer.Argument(help="Backup file to write (SQLite copy, or pg_dump custom format).")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace FILE if it exists.")] = False,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Back up the database to FILE, consistently, even while others write (SQLite backup API; pg_dump)."""
    with Bar(quiet=quiet) as bar:
        result = backup_module.backup(get_engine(), file, overwrite=overwrite,
                                      progress=bar.bytes_of("backing up"))
    data = {"file": str(result.path), "backend": result.backend, "bytes": result.bytes, "tables": result.tables,
            "database": _url(), "attachment_files": result.attachments}
    emit(data, as_json=as_json,
         text=f"backup written: {result.path} ({result.bytes:,} bytes, {result.tables} tables, {result.backend})")


def restore(
    file: Annotated[Path, typer.Argument(help="Backup file made by 'biobank backup'.")],
    confirm: ConfirmOption = None,
    user: UserOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Restore FILE into the configured database, which must be empty (no tables); never merges into data.

    Needs the token of an administrator of the backed-up biobank (checked against the accounts in FILE, since the
    empty database has none: BIOBANK_TOKEN, or the sign-in stored for this database), and the database's name typed
    to confirm (or --confirm NAME)."""
    kind = backup_module.file_kind(file)
    engine = get_engine()
    if kind != backup_module.backend_of(engine.url):
        raise ValidationError(f"file={str(file)!r}: a {kind} backup cannot be restored into a "
                              f"{backup_module.backend_of(engine.url)} database", field="file", value=str(file))
    tables = _tables(engine)
    if tables:
        raise ConflictError(
            f"restore refused: database {database_name()!r} is not empty ({len(tables)} tables, e.g. {tables[0]}); "
            "restore only into a new, empty database", field="database", value=database_name())
    admin = _admin_in_backup(file, kind, user)
    confirm_database("restore", confirm)
    typer.echo(f"restore by {admin}: the database is empty (a restore goes into nothing else), so there is nothing "
               "to back up first", err=True)
    with Bar(quiet=quiet) as bar:
        result = backup_module.restore(engine, file, progress=bar.bytes_of("restoring"))
    counts = backup_module.table_counts(get_engine())
    data = {"file": str(result.path), "backend": result.backend, "tables": result.tables, "rows": counts,
            "database": _url()}
    emit(data, as_json=as_json, text=(
        f"restored {result.path} into {data['database']}: {result.tables} tables, {sum(counts.values()):,} rows\n"
        "next: 'biobank db upgrade' if this release has newer migrations than the backup"
    ))


def checksums(as_json: JsonOption = False) -> None:
    """Row count and SHA-256 of every table (compare a restored database with its source); then every attachment's
    file checked against its SHA-256 (missing or corrupt ones on stderr, exit code 1)."""
    sums = backup_module.table_checksums(get_engine())
    rows = [{"table": name, "rows": c.rows, "sha256": c.sha256} for name, c in sums.items()]
    emit(rows, as_json=as_json)
    problems = backup_module.attachment_store_problems(get_engine())  # attachments (issue 22): files missing or corrupt
    for problem in problems:
        typer.echo(f"attachment store: {problem}", err=True)
    if problems:
        raise typer.Exit(1)


# ------------------------------------------------------------------------------ the accounts of a backup file


def _admin_in_backup(file: Path, kind: str, user: str | None) -> str:
    """The administrator whose token this command presents, checked by the token service against the user accounts
    and tokens held in the backup FILE (read, never restored, for the check)."""
    presented = presented_token(user)
    if presented is None:
        raise PermissionDeniedError(
            f"restore: needs the token of an administrator of the backed-up database; set {TOKEN_VARIABLE} to it",
            field="token",
        )
    token, _source = presented
    with _backup_accounts(file, kind) as accounts, Session(accounts) as session:
        try:
            user_row = token_service.user_for_token(session, token, record_use=False)
        except DBAPIError:
            raise PermissionDeniedError(
                "restore: the backup holds no tokens (it predates them): restore it with the database's own tools",
                field="token",
            ) from None
        except PermissionDeniedError as exc:
            raise PermissionDeniedError(f"restore: in the backup, {exc}", field="token") from None
        return token_service.require_admin(user_row, "restore").username


@contextmanager
def _backup_accounts(file: Path, kind: str) -> Iterator[Engine]:
    """An engine on the backup's ``user_account`` and ``api_token`` rows: the SQLite file itself, read-only; or, for a
    pg_dump archive, those two tables' data (``pg_restore --data-only`` to stdout) in an in-memory SQLite copy."""
    if kind == "sqlite":
        engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(f"file:{file}?mode=ro", uri=True),
                               poolclass=StaticPool)
    else:
        engine = create_engine("sqlite://", poolclass=StaticPool)
        _copy_accounts(_pg_table_data(file), engine)
    try:
        yield engine
    finally:
        engine.dispose()


def _pg_table_data(file: Path) -> dict[str, tuple[list[str], list[list[str | None]]]]:
    """Columns and rows (as text, None for NULL) of ``user_account`` and ``api_token`` in a pg_dump archive."""
    tool = backup_module.find_pg_tool("pg_restore")
    done = subprocess.run([tool, "--data-only", "--table=user_account", "--table=api_token", "--file=-", str(file)],
                          capture_output=True, text=True, encoding="utf-8", errors="replace", check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise backup_module.BackupError(f"pg_restore could not read {file}: {detail[0] if detail else 'no message'}")
    tables: dict[str, tuple[list[str], list[list[str | None]]]] = {}
    current: tuple[list[str], list[list[str | None]]] | None = None
    for line in done.stdout.split("\n"):  # not splitlines(): COPY leaves \x1c, \u2028 ... unescaped in a field
        if current is None:
            if line.startswith("COPY ") and line.endswith(" FROM stdin;"):
                head = line[len("COPY "):-len(" FROM stdin;")]
                name, _, columns = head.partition(" (")
                current = ([c.strip().strip('"') for c in columns.rstrip(")").split(",")], [])
                tables[name.rpartition(".")[2].strip('"')] = current
        elif line == "\\.":
            current = None
        else:
            current[1].append([None if field == "\\N" else _copy_text(field) for field in line.split("\t")])
    return tables


_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _copy_text(field: str) -> str:
    """A field of COPY's text format with its backslash escapes undone."""
    if "\\" not in field:
        return field
    out: list[str] = []
    i = 0
    while i < len(field):
        ch = field[i]
        if ch == "\\" and i + 1 < len(field):
            nxt = field[i + 1]
            if nxt in _COPY_ESCAPES:
                out.append(_COPY_ESCAPES[nxt])
                i += 2
                continue
            out.append(nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _copy_accounts(data: dict[str, tuple[list[str], list[list[str | None]]]], engine: Engine) -> None:
    """Load the rows into the two tables, created from the models (so the token service reads them as it reads
    the database); a column the models do not know is left out."""
    tables = [table_of(User), table_of(ApiToken)]
    for table in tables:
        table.create(engine)
    with engine.begin() as connection:
        for table in tables:
            columns, rows = data.get(table.name, ([], []))
            known = [(i, table.c[name]) for i, name in enumerate(columns) if name in table.c]
            if rows:
                connection.execute(table.insert(), [
                    {column.name: _typed(column, row[i]) for i, column in known} for row in rows
                ])


def _typed(column: Any, text: str | None) -> Any:
    if text is None:
        return None
    python_type = getattr(column.type, "impl", column.type).python_type  # a TypeDecorator by the type it wraps
    if python_type is bool:
        return text == "t"
    if python_type is int:
        return int(text)
    if python_type is datetime:
        return datetime.fromisoformat(text)
    return text
