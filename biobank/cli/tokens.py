"""Signing in on the command line (``biobank login|logout|whoami``) and service tokens (``biobank tokens``).

The rules are the token service's (:mod:`biobank.services.tokens`); this module prompts, prints and keeps the token
file (:mod:`biobank.cli.credentials`).
"""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from biobank.cli.common import (
    TOKEN_VARIABLE,
    JsonOption,
    UserOption,
    acting_user,
    ask,
    emit,
    fail,
    handle_errors,
    presented_token,
    unit_of_work,
)
from biobank.cli.credentials import TokenFile, database_key
from biobank.config import get_settings
from biobank.domain.errors import BiobankError, shown_time
from biobank.domain.vocab import Role
from biobank.services import tokens as token_service

tokens_app = typer.Typer(
    help="Service tokens for pipelines, cron jobs and instruments (BIOBANK_TOKEN); administrators create them.",
    no_args_is_help=True,
)


def _database() -> tuple[str, str]:
    """The configured database: its key in the token file, and how to show it (no password)."""
    from sqlalchemy.engine import make_url

    url = get_settings().database_url
    return database_key(url), make_url(url).render_as_string(hide_password=True)


def _default_token_name() -> str:
    return f"cli@{socket.gethostname() or 'localhost'}"[: token_service.NAME_MAX]


@handle_errors
def login(
    user: Annotated[
        str | None,
        typer.Option("--user", "-u", envvar="BIOBANK_USER", help="The account to sign in as (prompted for when omitted)."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="What to call this sign-in's token (default: cli@HOSTNAME); signing in again under the "
                          "same name replaces it."),
    ] = None,
) -> None:
    """Sign in: prompts for the password and stores a personal token (mode 0600) for this database and account.

    Every command that writes then acts as this account until the token expires (BIOBANK_PERSONAL_TOKEN_DAYS) or
    'biobank logout' revokes it. The password is only ever prompted for, never taken from an option or the
    environment."""
    username = (user or "").strip() or ask("user name").strip()
    password = ask(f"password for {username}", hide_input=True)
    key, shown = _database()
    store = TokenFile()
    previous = store.tokens_for(key).get(username)
    with unit_of_work() as session:
        issued = token_service.login(session, username=username, password=password, name=name or _default_token_name())
        if previous is not None:
            token_service.revoke_presented(session, previous)  # the sign-in it replaces stops working too
    try:
        store.put(key, issued.username, issued.token)
    except BiobankError:
        with unit_of_work() as session:  # a token nobody holds must not stay valid
            token_service.revoke_presented(session, issued.token)
        raise
    typer.echo(
        f"signed in as {issued.username} ({issued.role}) to {shown}; token {issued.name!r} expires "
        f"{shown_time(issued.expires_at, with_zone=True)}; stored in {store.path}"
    )


@handle_errors
def logout(user: UserOption = None) -> None:
    """Sign out: revoke the stored token of this database (the one of --user NAME when you hold several) and forget it."""
    key, shown = _database()
    store = TokenFile()
    held = store.tokens_for(key)
    if user:
        if user not in held:
            raise fail(f"{user!r} is not signed in to {shown}")
        username = user
    elif len(held) == 1:
        (username,) = held
    elif held:
        raise fail(f"you are signed in to {shown} as {', '.join(sorted(held))}: choose one with --user NAME")
    else:
        raise fail(f"not signed in to {shown}")
    with unit_of_work() as session:
        revoked = token_service.revoke_presented(session, held[username])
    store.remove(key, username)
    if revoked is None:
        typer.echo(f"signed out {username} from {shown} (the database did not know the token)")
    else:
        typer.echo(f"signed out {username} from {shown}: token {revoked.name!r} revoked")


@handle_errors
def whoami(user: UserOption = None, as_json: JsonOption = False) -> None:
    """Who your commands act as on this database, proven by which token, and until when."""
    _key, shown = _database()
    presented = presented_token(user)
    if presented is None:
        raise fail(f"not signed in to {shown}: run 'biobank login' (or set {TOKEN_VARIABLE})")
    token, source = presented
    with unit_of_work() as session:
        acting_user(session, user)  # the same checks, and messages, as every command
        info = token_service.describe_token(session, token)
    data = {**info.as_row(), "username": info.username, "database": shown,
            "source": TOKEN_VARIABLE if source == TOKEN_VARIABLE else "stored sign-in"}
    emit(data, as_json=as_json, text=(
        f"{info.username} ({info.role}) on {shown}, by {info.kind} token {info.name!r} "
        f"({data['source']}), expires {shown_time(info.expires_at, with_zone=True)}"
    ))


@tokens_app.command("create")
@handle_errors
def tokens_create(
    name: Annotated[str, typer.Argument(help="What to call the token, e.g. the pipeline's name.")],
    user_account: Annotated[
        str, typer.Option("--user-account", help="The service account the token acts as (created when missing).")
    ],
    role: Annotated[
        str | None,
        typer.Option(help=f"One of {', '.join(Role)}: the new service account's role (must match an existing one's)."),
    ] = None,
    days: Annotated[
        int | None, typer.Option(help="Days until it expires (default and most: BIOBANK_SERVICE_TOKEN_DAYS).")
    ] = None,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a service token (administrators): the token is printed once, and stored nowhere."""
    with unit_of_work() as session:
        issued = token_service.create_service_token(
            session, actor=acting_user(session, user), account=user_account, name=name, role=role, days=days
        )
    if as_json:
        emit({"token": issued.token, "name": issued.name, "account": issued.username, "role": issued.role,
              "expires_at": issued.expires_at, "new_account": issued.new_account}, as_json=True)
        return
    created = "new service account" if issued.new_account else "service account"
    typer.echo(
        f"token {issued.name!r} for {created} {issued.username} ({issued.role}), expires "
        f"{shown_time(issued.expires_at, with_zone=True)}. It is shown only now: give it to the job as "
        f"{TOKEN_VARIABLE}.",
        err=True,
    )
    typer.echo(issued.token)


@tokens_app.command("list")
@handle_errors
def tokens_list(user: UserOption = None, as_json: JsonOption = False) -> None:
    """Tokens by account and name, with their state (administrators see every token, others their own); never the
    tokens themselves."""
    with unit_of_work() as session:
        rows = [info.as_row() for info in token_service.list_tokens(session, actor=acting_user(session, user))]
    emit(rows, as_json=as_json, columns=["account", "name", "kind", "role", "state", "created_at", "expires_at",
                                         "last_used_at", "revoked_at"])


@tokens_app.command("revoke")
@handle_errors
def tokens_revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
    account: Annotated[
        str | None, typer.Option("--account", help="Whose token (default: your own; another's needs an administrator).")
    ] = None,
    user: UserOption = None,
) -> None:
    """Revoke a token: it stops working at once, for good."""
    with unit_of_work() as session:
        info = token_service.revoke_token(session, actor=acting_user(session, user), name=name, account=account)
    typer.echo(f"token {info.name!r} of {info.username} revoked")
