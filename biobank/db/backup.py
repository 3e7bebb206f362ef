"""Backups that are consistent while writers run, restores into an empty database, and per-table checksums.

SQLite: the online backup API copies every page inside one read transaction, so the copy is the database as of a
single commit even while other processes write (WAL readers never block writers). PostgreSQL: ``pg_dump`` in its
custom format reads everything in one repeatable-read snapshot; ``pg_restore`` loads it in one transaction.
The connection comes from the SQLAlchemy URL; a password only ever travels in the child's environment
(``PGPASSWORD``), never on a command line where ``ps`` would show it.

:func:`backup` and :func:`restore` take an optional ``progress(done_bytes, total_bytes)`` callback (a command's
progress bar): a backup reports the bytes of the file being written as it grows (its total is the database's size,
an estimate for ``pg_dump``), a SQLite restore the pages copied, a PostgreSQL restore the start and the end.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, func, inspect, select, text
from sqlalchemy.engine import URL, Engine, make_url

from biobank.attachments.store import SHA256, FileStore, default_directory, sha256_of
from biobank.domain.errors import BiobankError, ConflictError, NotFoundError, ValidationError

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_CUSTOM_MAGIC = b"PGDMP"


#: ``progress(done_bytes, total_bytes)``; the total is None when not known.
ByteProgress = Callable[[int, "int | None"], object]
#: Seconds between two looks at a growing backup file.
WATCH_SECONDS = 0.2


class BackupError(BiobankError):
    """A backup or restore that could not be made (missing tool, tool failure, unreadable file)."""


@dataclass(frozen=True)
class TableChecksum:
    rows: int
    sha256: str


@dataclass(frozen=True)
class BackupResult:
    path: Path
    backend: str
    bytes: int
    tables: int
    #: files of the attachment store copied beside the backup (``<file>.attachments/``), or restored from there
    attachments: int = 0


def backend_of(url: str | URL) -> str:
    return make_url(url).get_backend_name()


def file_kind(path: Path) -> str:
    """``sqlite`` or ``postgresql`` (pg_dump custom format), read from the file's magic bytes."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        raise NotFoundError(f"backup file {str(path)!r} not found", field="file", value=str(path)) from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_CUSTOM_MAGIC):
        return "postgresql"
    raise ValidationError(
        f"file={str(path)!r}: not a biobank backup (neither a SQLite database nor a pg_dump custom-format archive)",
        field="file",
        value=str(path),
    )


# --------------------------------------------------------------------------------------------------- checksums


def _canonical(value: Any) -> Any:
    """A representation that is the same for the same stored value, whatever the driver returned."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return str(value.normalize())
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows per table (cheap: no row is read into Python)."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(metadata.tables[name])).scalar_one())
            for name in sorted(metadata.tables)
        }


def table_checksums(engine: Engine, *, batch_size: int = 10_000) -> dict[str, TableChecksum]:
    """Per table: the row count and a SHA-256 of its rows in primary-key order (tables added later included)."""
    metadata = MetaData()
    metadata.reflect(engine)
    result: dict[str, TableChecksum] = {}
    with engine.connect() as conn:
        for name in sorted(metadata.tables):
            table = metadata.tables[name]
            order = list(table.primary_key.columns) or list(table.columns)
            digest = hashlib.sha256()
            rows = 0
            stream = conn.execution_options(stream_results=True, yield_per=batch_size).execute(
                select(table).order_by(*order)
            )
            for row in stream:
                digest.update(json.dumps([_canonical(v) for v in row], default=str).encode())
                digest.update(b"\n")
                rows += 1
            result[name] = TableChecksum(rows, digest.hexdigest())
    return result


# ------------------------------------------------------------------------------------------------------ SQLite


def _sqlite_path(url: URL) -> Path:
    database = url.database
    if not database or database == ":memory:":
        raise ValidationError("database_url: an in-memory SQLite database cannot be backed up or restored into")
    return Path(database)


def _sqlite_has_tables(path: Path) -> list[str]:
    if not path.exists() or path.stat().st_size == 0:
        return []
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    finally:
        conn.close()


def _sqlite_backup(url: URL, target: Path, busy_timeout_s: float) -> None:
    source_path = _sqlite_path(url)
    if not source_path.exists():
        raise NotFoundError(f"database file {str(source_path)!r} does not exist", field="database", value=str(source_path))
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(source_path, timeout=busy_timeout_s)
    destination = sqlite3.connect(partial)
    try:
        # pages=-1: the whole database in one step, i.e. inside one read transaction = one consistent snapshot.
        source.backup(destination, pages=-1)
        destination.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file, no -wal beside it
        check = destination.execute("PRAGMA integrity_check").fetchone()
        if check is None or check[0] != "ok":
            raise BackupError(f"backup of {source_path} failed its integrity check: {check}")
    finally:
        destination.close()
        source.close()
    os.replace(partial, target)


#: Pages a SQLite restore copies per step (a step reports progress; the target is new and private, so stepping is safe).
RESTORE_PAGES = 256


def _sqlite_restore(backup_path: Path, url: URL, progress: ByteProgress | None = None) -> None:
    target = _sqlite_path(url)
    tables = _sqlite_has_tables(target)
    if tables:
        raise ConflictError(
            f"restore refused: database {str(target)!r} is not empty ({len(tables)} tables, e.g. {tables[0]}); "
            "restore only into a new, empty database file",
            field="database",
            value=str(target),
        )
    source = sqlite3.connect(f"file:{backup_path}?mode=ro", uri=True)
    destination = sqlite3.connect(target)
    try:
        check = source.execute("PRAGMA integrity_check").fetchone()
        if check is None or check[0] != "ok":
            raise BackupError(f"backup file {backup_path} is damaged: {check}")
        if progress is None:
            source.backup(destination, pages=-1)
        else:
            page_size = int(source.execute("PRAGMA page_size").fetchone()[0])

            def copied(_status: int, remaining: int, total: int) -> None:
                progress((total - remaining) * page_size, total * page_size)

            # the backup file is opened read-only and nothing else writes it: stepping cannot see a change
            source.backup(destination, pages=RESTORE_PAGES, progress=copied)
        destination.execute("PRAGMA journal_mode=WAL")
    finally:
        destination.close()
        source.close()


# -------------------------------------------------------------------------------------------------- PostgreSQL


def find_pg_tool(name: str, server_major: int | None = None) -> str:
    """The ``pg_dump``/``pg_restore`` binary: the server's major version first, else the newest, else PATH."""
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(re.search(r"/(\d+)/bin/", p).group(1)) if re.search(r"/(\d+)/bin/", p) else 0,  # type: ignore[union-attr]  # the match is tested in the same expression
        reverse=True,
    )
    if server_major is not None:
        for candidate in candidates:
            if f"/{server_major}/bin/" in candidate:
                return candidate
    on_path = shutil.which(name)
    if on_path:
        return on_path
    if candidates:
        return candidates[0]
    raise BackupError(f"{name} not found: install the PostgreSQL client (Debian: postgresql-client) or put it on PATH")


def pg_environment(url: URL) -> dict[str, str]:
    """libpq settings for a child process: connection from the URL, the password only in PGPASSWORD."""
    env = dict(os.environ)
    for key in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSERVICE", "PGOPTIONS"):
        env.pop(key, None)
    if url.host:
        env["PGHOST"] = url.host
    if url.port:
        env["PGPORT"] = str(url.port)
    if url.username:
        env["PGUSER"] = url.username
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    if url.database:
        env["PGDATABASE"] = url.database
    query = dict(url.query)
    for option, variable in (("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT"), ("sslcert", "PGSSLCERT"),
                             ("sslkey", "PGSSLKEY"), ("host", "PGHOST"), ("port", "PGPORT")):
        value = query.get(option)
        if isinstance(value, str):
            env[variable] = value
    return env


def _pg_server_major(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000


def _pg_tables(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
                )
            ).scalars()
        )


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip().splitlines()
        raise BackupError(f"{what} failed (exit {completed.returncode}): {detail[0] if detail else 'no message'}")


def _pg_backup(engine: Engine, url: URL, target: Path) -> None:
    tool = find_pg_tool("pg_dump", _pg_server_major(engine))
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    # The database name goes through PGDATABASE too: nothing secret, and nothing else, on the command line.
    _run([tool, "--format=custom", "--no-owner", "--no-privileges", f"--file={partial}"], pg_environment(url), "pg_dump")
    os.replace(partial, target)


def _pg_restore(engine: Engine, backup_path: Path, url: URL) -> None:
    tables = _pg_tables(engine)
    if tables:
        raise ConflictError(
            f"restore refused: database {url.database!r} is not empty ({len(tables)} tables, e.g. {tables[0]}); "
            "create a new database (createdb NAME) and restore into it without running 'biobank db upgrade' first",
            field="database",
            value=url.database,
        )
    tool = find_pg_tool("pg_restore", _pg_server_major(engine))
    _run(
        [tool, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
         f"--dbname={url.database}", str(backup_path)],
        pg_environment(url),
        "pg_restore",
    )


# --------------------------------------------------------------------------------------------------- progress


@contextmanager
def _watched(path: Path, total: int | None, progress: ByteProgress | None) -> Iterator[None]:
    """Report the size of ``path`` (a file a tool is writing) every :data:`WATCH_SECONDS` until the block ends,
    then once more."""
    if progress is None:
        yield
        return
    stop = threading.Event()

    def size() -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    def watch() -> None:
        while not stop.wait(WATCH_SECONDS):
            progress(size(), total)

    progress(0, total)
    watcher = threading.Thread(target=watch, name="biobank-backup-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
    progress(size(), max(size(), total or 0) or None)


def _database_bytes(engine: Engine, url: URL, backend: str) -> int | None:
    """The database's size: the file's (SQLite) or ``pg_database_size`` (a dump is smaller: an estimate)."""
    try:
        if backend == "sqlite":
            return _sqlite_path(url).stat().st_size
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0) or None
    except Exception:  # a size is only for the progress bar: never a reason for a backup to fail
        return None


# ------------------------------------------------------------------------------------------------- public API


def backup(
    engine: Engine, path: str | Path, *, overwrite: bool = False, progress: ByteProgress | None = None
) -> BackupResult:
    """Write a consistent copy of the database behind ``engine`` to ``path`` (atomically: a partial file never
    takes the name). ``progress`` is told the bytes written as the copy grows."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise ConflictError(f"file={str(target)!r}: already exists (choose another name or pass --overwrite)", field="file")
    if not target.parent.exists():
        raise NotFoundError(f"directory {str(target.parent)!r} does not exist", field="file", value=str(target))
    url = engine.url
    backend = backend_of(url)
    if backend == "sqlite":
        from biobank.config import get_settings

        with _watched(target.with_name(target.name + ".partial"), _database_bytes(engine, url, backend), progress):
            _sqlite_backup(url, target, get_settings().sqlite_busy_timeout_ms / 1000)
    elif backend == "postgresql":
        with _watched(target.with_name(target.name + ".partial"), _database_bytes(engine, url, backend), progress):
            _pg_backup(engine, url, target)
    else:
        raise ValidationError(f"database_url: backups support sqlite and postgresql, not {backend}")
    if progress is not None:
        progress(target.stat().st_size, target.stat().st_size)
    # after the database: every row the copy holds had its files written before it was committed
    files = _backup_store(FileStore(default_directory(url)), store_beside(target))
    return BackupResult(target, backend, target.stat().st_size, len(_table_names(engine)), files)


def _table_names(engine: Engine) -> list[str]:
    return list(inspect(engine).get_table_names())


def restore(engine: Engine, path: str | Path, *, progress: ByteProgress | None = None) -> BackupResult:
    """Load a backup into the (empty) database behind ``engine``; refuses a database that holds any table.
    ``progress`` is told the bytes of the backup loaded (SQLite: as pages are copied; PostgreSQL: at the end)."""
    source = Path(path)
    kind = file_kind(source)
    url = engine.url
    backend = backend_of(url)
    if kind != backend:
        raise ValidationError(
            f"file={str(source)!r}: a {kind} backup cannot be restored into a {backend} database",
            field="file",
            value=str(source),
        )
    beside = store_beside(source)
    files = _verified_store_copy(beside)  # every file's SHA-256 checked before anything is restored
    engine.dispose()  # no pooled connection may hold the target open while it is replaced
    size = source.stat().st_size if source.exists() else None
    if progress is not None:
        progress(0, size)
    if backend == "sqlite":
        _sqlite_restore(source, url, progress)
    else:
        _pg_restore(engine, source, url)
    if progress is not None and size is not None:
        progress(size, size)
    engine.dispose()
    if files:
        _restore_store(beside, FileStore(default_directory(url)))
    problems = attachment_store_problems(engine)
    if problems:
        raise BackupError(f"restored {source}, but {len(problems)} attachment file(s) are missing or corrupt: "
                          f"{problems[0]}{' ...' if len(problems) > 1 else ''} (biobank db checksums lists them)")
    return BackupResult(source, backend, source.stat().st_size, len(_table_names(engine)), len(files))


# ------------------------------------------------------------------------------------------ the attachment store


def store_beside(path: Path) -> Path:
    """Where a backup keeps the attachment store: the directory ``<backup file>.attachments``."""
    return path.with_name(path.name + ".attachments")


def _backup_store(store: FileStore, target: Path) -> int:
    """Copy every file of ``store`` to ``target`` (replacing an older copy there), atomically; the number copied."""
    files = list(store.files())
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    if not files:
        shutil.rmtree(target, ignore_errors=True)
        return 0
    copy = FileStore(partial)
    for digest, path in files:
        destination = copy.path(digest)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return len(files)


def _verified_store_copy(directory: Path) -> list[str]:
    """The SHA-256 of every file of a backup's store, each checked against its name; BackupError when one fails."""
    if not directory.is_dir():
        return []
    found: list[str] = []
    bad: list[str] = []
    for digest, path in FileStore(directory).files():
        if sha256_of(path.read_bytes()) != digest:
            bad.append(path.name)
        found.append(digest)
    if bad:
        raise BackupError(f"backup's attachment store {directory} is damaged: {len(bad)} file(s) do not match their "
                          f"SHA-256 (e.g. {bad[0][:12]}…); nothing was restored")
    return found


def _restore_store(source: Path, store: FileStore) -> None:
    for digest, path in FileStore(source).files():
        if not store.exists(digest):
            store.put(path.read_bytes())


def attachment_store_problems(engine: Engine) -> list[str]:
    """Every attachment's files (file, thumbnail, kept original) present in the store and matching their SHA-256:
    what is wrong, empty when all is well (or when the database has no attachment table)."""
    if "attachment" not in _table_names(engine):
        return []
    store = FileStore(default_directory(engine.url))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, target_code, filename, sha256, thumbnail_sha256, original_sha256 "
                                 "FROM attachment ORDER BY id")).all()
    problems: list[str] = []
    for number, code, filename, *digests in rows:
        for label, digest in zip(("", "thumbnail of ", "original of "), digests, strict=True):
            if digest is None:
                continue
            problem = store.check(digest) if SHA256.match(digest) else f"{digest!r} is not a SHA-256"
            if problem is not None:
                problems.append(f"{label}attachment {number} ({code}, {filename}): {problem}")
    return problems
