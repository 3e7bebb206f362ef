"""What every command shares: error handling (exit 2, one line, no traceback), --json, the acting user (proven by a
token: :func:`acting_user`), sessions (:func:`read` for a command that only reads), and :func:`emit`, which prints a
result as JSON or as a table, key/value lines or a message."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import click
import typer

from biobank.cli.credentials import TokenFile, database_key
from biobank.domain.errors import BiobankError, PermissionDeniedError, invalid

if TYPE_CHECKING:
    from sqlmodel import Session

    from biobank.models import User

# The engine, the models and the token service are imported by the helpers that use them, when they run: a command
# loads what its own work needs (``biobank specimen show`` no token service, argon2 or write services).

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user", "-u", envvar="BIOBANK_USER",
        help="Which of your signed-in accounts acts (see 'biobank login'); needed only when you hold several. "
        "BIOBANK_TOKEN, when set, decides instead.",
    ),
]
#: The database's name typed to confirm a dangerous command (``biobank.cli.ops.dangerous``): here, not in ops, so
#: that declaring such a command (``db downgrade`` in core) loads none of ops' backup and progress machinery.
ConfirmOption = Annotated[
    str | None,
    typer.Option("--confirm", metavar="NAME", help="The database's name, to confirm without the prompt (scripts)."),
]
#: The environment variable a pipeline, cron job or instrument gives its service token in (never an option: a
#: command line is visible to every user of the machine).
TOKEN_VARIABLE = "BIOBANK_TOKEN"


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def ask(question: str, *, hide_input: bool = False) -> str:
    """What the person types at a prompt; the end of input (nothing typed) stops the command with one line."""
    try:
        return typer.prompt(question, hide_input=hide_input)
    except (typer.Abort, click.exceptions.Abort):
        raise fail(f"{question}: nothing was typed") from None


def handle_errors(function: F) -> F:
    """Turn every expected failure into a one-line message and exit code 2."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except BiobankError as exc:
            raise fail(str(exc) + cli_hint(exc)) from None
        except Exception as exc:
            message = _failure_message(exc)
            if message is None:
                raise
            raise fail(message) from None

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps the signature the decorator promises


def _failure_message(exc: Exception) -> str | None:
    """The one line for a bad setting or a database that refuses (not there, not migrated, unreachable), whether
    SQLAlchemy or a bare driver connection (``biobank.db.direct``) raised it; None for anything else. The libraries
    are looked up only if already loaded: a command that never imported SQLAlchemy cannot have raised its errors."""
    pydantic_core = sys.modules.get("pydantic_core")
    if pydantic_core is not None and isinstance(exc, pydantic_core.ValidationError):
        first = exc.errors()[0]
        return f"configuration: {'.'.join(map(str, first['loc']))}: {first['msg']}"
    detail = None
    sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_errors is not None and isinstance(
            exc, sqlalchemy_errors.OperationalError | sqlalchemy_errors.ProgrammingError | sqlalchemy_errors.DataError):
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    for driver in ("sqlite3", "psycopg"):
        module = sys.modules.get(driver)
        if detail is None and module is not None and isinstance(
                exc, module.OperationalError | module.ProgrammingError | module.DataError):
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if detail is None:
        return None
    hint = " (run 'biobank db upgrade' first?)" if "no such table" in detail or "does not exist" in detail else ""
    return f"database: {detail}{hint}"


def cli_hint(exc: BiobankError) -> str:
    """How to act on an error from the command line: the library's messages name no flags, the CLI adds them."""
    if isinstance(exc, PermissionDeniedError) and exc.field == "user" and exc.value is None:
        return " (run 'biobank login', or set BIOBANK_TOKEN)"
    return ""


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction: everything the command writes commits together or not at all."""
    from biobank.db.engine import get_engine, session_scope

    with session_scope(get_engine()) as session:
        yield session


def read(query: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """What ``query(session, *args, **kwargs)`` returns, read in a unit of work of its own."""
    with unit_of_work() as session:
        return query(session, *args, **kwargs)


def presented_token(username: str | None) -> tuple[str, str] | None:
    """The token this command presents, and where it came from: ``BIOBANK_TOKEN`` when set; else the token that
    ``biobank login`` stored for the configured database (``username`` chooses when several are stored); None when
    neither exists. ``--user NAME`` with no stored token for NAME is refused."""
    from_environment = os.environ.get(TOKEN_VARIABLE, "").strip()
    if from_environment:
        return from_environment, TOKEN_VARIABLE
    from biobank.config import get_settings

    held = TokenFile().tokens_for(database_key(get_settings().database_url))
    if username:
        if username not in held:
            raise PermissionDeniedError(
                f"{username!r} is not signed in to this database: run 'biobank login --user {username}'",
                field="token", value=username,
            )
        return held[username], username
    if len(held) > 1:
        raise PermissionDeniedError(
            f"you are signed in to this database as {', '.join(sorted(held))}: choose one with --user NAME",
            field="token",
        )
    if held:
        (name, token), = held.items()
        return token, name
    return None


def acting_user(session: Session, username: str | None) -> User | None:
    """The user this command acts as, proven by the token it presents (:func:`presented_token`), checked by the
    token service; None when no token is presented (the services then refuse what needs a user)."""
    from biobank.services import tokens as token_service

    presented = presented_token(username)
    if presented is None:
        return None
    token, source = presented
    try:
        user = token_service.user_for_token(session, token)
    except PermissionDeniedError as exc:
        if source == TOKEN_VARIABLE:
            raise PermissionDeniedError(f"{TOKEN_VARIABLE}: {exc}", field="token") from None
        raise PermissionDeniedError(
            f"the stored sign-in of {source!r} no longer works ({exc}): run 'biobank login --user {source}'",
            field="token", value=source,
        ) from None
    if username and user.username != username:
        raise PermissionDeniedError(
            f"{TOKEN_VARIABLE} belongs to {user.username!r}, not {username!r}: unset it to act as another account",
            field="token", value=username,
        )
    return user


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=_plain, ensure_ascii=False))


def emit_table(rows: Sequence[dict[str, Any]], columns: Iterable[str] | None = None) -> None:
    """A plain aligned table (pipes and terminals both read it)."""
    if not rows:
        typer.echo("(none)")
        return
    cols = list(columns or rows[0].keys())
    cells = [[("" if row.get(c) is None else str(_plain(row.get(c)))) for c in cols] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    typer.echo("  ".join("-" * w for w in widths))
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def emit_mapping(data: Mapping[str, Any], *, skip: Iterable[str] = ()) -> None:
    skipped = set(skip)
    width = max(len(k) for k in data)
    for key, value in data.items():
        if key in skipped or isinstance(value, list | dict):
            continue
        typer.echo(f"{key.ljust(width)}  {'' if value is None else _plain(value)}")


def emit(
    data: Any,
    *,
    as_json: bool,
    columns: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    text: str | None = None,
    tables: Iterable[tuple[Sequence[dict[str, Any]], Iterable[str] | None]] = (),
) -> None:
    """Print a command's result: ``data`` as JSON with ``--json``; otherwise ``text`` when given, else a
    record (a mapping) as aligned key/value lines less the ``skip`` keys, else rows as a table of ``columns``; then
    each of ``tables`` (rows, columns or None for all), after a blank line.

    A command that prints more after the table or record returns first when ``as_json``.
    """
    if as_json:
        emit_json(data)
        return
    if text is not None:
        typer.echo(text)
    elif isinstance(data, Mapping):
        emit_mapping(data, skip=skip)
    else:
        emit_table(data, columns)
    for rows, table_columns in tables:
        typer.echo("")
        emit_table(rows, table_columns)


def echo_err(message: str) -> None:
    print(message, file=sys.stderr)


#: How a time is typed on the command line.
TIME_HELP = "lab time YYYY-MM-DD HH:MM, or with a zone (…T02:10+00:00), or 'now'"

WhenOption = Annotated[str | None, typer.Option("--when", help=f"When it happened ({TIME_HELP}); default now.")]


def typed_time(field: str, text: str | None) -> datetime | None:
    """A typed time as UTC: ISO 8601 with a zone, without one in the lab's zone (what a person at the bench types),
    or ``now``; None when not given. An empty or unreadable time is an error naming the field. Every command's time
    options read times this way."""
    if text is None:
        return None
    value = text.strip()
    if not value:
        raise invalid(field, None, f"is empty: give a time ({TIME_HELP})")
    if value.lower() == "now":
        from biobank.models.base import utcnow

        return utcnow()
    try:
        parsed = datetime.fromisoformat(value.replace("T", " ").replace("t", " "))
    except ValueError:
        raise invalid(field, value, f"is not a time: write {TIME_HELP}") from None
    if parsed.tzinfo is None:
        from biobank.config import get_settings

        parsed = parsed.replace(tzinfo=get_settings().zone)
    return parsed.astimezone(UTC)

