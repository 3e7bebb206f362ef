"""Tokens that prove who is acting on the command line (and, later, the REST API): every rule about them is here.

- A **personal** token is issued to a person whose password was just checked (:func:`login`, which calls
  :func:`biobank.services.users.authenticate`); it expires ``personal_token_days`` (30) after it is issued.
- A **service** token belongs to a token-only service account (``user_account.is_service``: a pipeline, a cron job,
  an instrument; no password). Only an administrator creates one (:func:`create_service_token`, which creates the
  account too when it does not exist yet), for at most ``service_token_days`` (365).
- A token is ``bbk_`` and 43 URL-safe characters (``secrets.token_urlsafe(32)``), shown once. The table keeps only
  its SHA-256 (:func:`biobank.services.sessions.hash_token`), so a copy of the database cannot be replayed.
- :func:`user_for_token` turns a presented token into its user, or refuses it (unknown, revoked, expired, account
  disabled) with a :class:`PermissionDeniedError` that says which; it records ``last_used_at`` at most once a minute.
- A token is revoked by its holder (:func:`revoke_presented`, signing out), by its owner by name, or by an
  administrator (:func:`revoke_token`). A revoked or expired token never works again; issuing a token under the
  same name replaces it (the name is unique per account).

The rows are written with Core statements, outside the audit hook, so the token's hash never reaches the audit log
and a token's use is not an audit row; issuing, replacing and revoking a token do write audit rows
(:func:`biobank.models.audit.record_bulk`), authored by the acting user, with the hash shown as ``<redacted>``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, or_, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from biobank.config import get_settings
from biobank.domain.errors import ConflictError, NotFoundError, PermissionDeniedError, invalid, shown_time
from biobank.domain.plain import plain
from biobank.domain.timing import as_utc
from biobank.models import ApiToken, User
from biobank.models.audit import act_as, record_bulk
from biobank.models.base import pk, table_of, utcnow
from biobank.services import users
from biobank.services.auth import Action, can, get_user
from biobank.services.sessions import hash_token
from biobank.services.users import authenticate

#: Every token starts with this, so a leaked one is recognised (by a secret scanner, or a person reading a log).
PREFIX = "bbk_"
#: Random bytes in a token (``secrets.token_urlsafe``: 43 URL-safe characters after the prefix).
TOKEN_BYTES = 32
#: Use is recorded at most this often (``last_used_at``): a busy pipeline is not a write per command.
USE_INTERVAL = timedelta(minutes=1)
NAME_MAX = 64
#: Longer than any token this module issues: anything longer is refused before it is hashed.
TOKEN_MAX = 200

_tokens = table_of(ApiToken)


class TokenKind(StrEnum):
    personal = "personal"
    service = "service"


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued: :attr:`token` is shown to its holder once and stored nowhere."""

    token: str
    name: str
    username: str
    role: str
    kind: str
    expires_at: datetime
    #: the service account was created along with the token
    new_account: bool = False


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never the token, nor its hash."""

    name: str
    username: str
    role: str
    kind: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_by: str | None
    #: ``active``, ``expired`` or ``revoked`` at the time it was read
    state: str

    def as_row(self) -> dict[str, Any]:
        return {
            "name": self.name, "account": self.username, "role": self.role, "kind": self.kind, "state": self.state,
            "created_at": self.created_at, "expires_at": self.expires_at, "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at, "created_by": self.created_by,
        }


def _now(now: datetime | None) -> datetime:
    return utcnow() if now is None else as_utc(now)


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


# ---------------------------------------------------------------------------------------------------- issuing


def login(
    session: Session, *, username: str, password: str, name: str, days: int | None = None, now: datetime | None = None
) -> IssuedToken:
    """Check ``username``'s password and issue them a personal token called ``name`` (see :func:`issue_personal_token`)."""
    user = authenticate(session, username=username, password=password)
    return issue_personal_token(session, user=user, name=name, days=days, now=now)


def issue_personal_token(
    session: Session, *, user: User, name: str, days: int | None = None, now: datetime | None = None
) -> IssuedToken:
    """A personal token for ``user``, whose identity the caller has just proven (a password checked by :func:`login`,
    a live dashboard session). It expires after ``days`` (at most, and by default, ``personal_token_days``). A token
    of the same name is replaced: the old one stops working at once."""
    if user.is_service:
        raise invalid("username", user.username, "is a service account: its tokens are created by an administrator")
    if not user.is_active:
        raise PermissionDeniedError(f"user {user.username!r} is disabled", field="user", value=user.username)
    limit = get_settings().personal_token_days
    return _issue(session, author=user, owner=user, kind=TokenKind.personal, name=name,
                  lifetime=_lifetime(days, limit, "personal_token_days"), now=_now(now), replace_live=True)


def create_service_account(
    session: Session, *, actor: User | None, username: str, role: str, full_name: str | None = None
) -> User:
    """A token-only account for a pipeline, cron job or instrument (administrators only): no password, so it can
    never sign in to the dashboard or log in; it acts only through the service tokens made for it."""
    require_admin(actor, "create a service account")
    return users.add_user(session, actor=actor, username=username, role=role, full_name=full_name, service=True)


def create_service_token(
    session: Session,
    *,
    actor: User | None,
    account: str,
    name: str,
    role: str | None = None,
    days: int | None = None,
    now: datetime | None = None,
) -> IssuedToken:
    """A service token called ``name`` for the service account ``account`` (administrators only), creating the
    account with ``role`` when it does not exist. ``role``, when given for an existing account, must be its role:
    roles change through the user service, not by issuing a token. Expires after ``days`` (at most, and by default,
    ``service_token_days``). A live token of the same name is refused (revoke it first); a revoked or expired one
    is replaced."""
    admin = require_admin(actor, "create a service token")
    limit = get_settings().service_token_days
    lifetime = _lifetime(days, limit, "service_token_days")
    existing = session.exec(select(User).where(User.username == account)).first()
    owner: User
    if existing is None:
        if role is None:
            raise invalid("role", None, f"is needed: {account!r} is a new service account")
        owner, created = create_service_account(session, actor=admin, username=account, role=role), True
    else:
        owner, created = existing, False
        if not owner.is_service:
            raise invalid("username", account, "is a person's account: people get their own tokens by signing in")
        if not owner.is_active:
            raise PermissionDeniedError(f"service account {account!r} is disabled", field="user", value=account)
        if role is not None and role != owner.role:
            raise invalid("role", role, f"differs from the role of {account!r} ({owner.role}); change roles through "
                                        "the user accounts, not with a token")
    issued = _issue(session, author=admin, owner=owner, kind=TokenKind.service, name=name, lifetime=lifetime,
                    now=_now(now), replace_live=False)
    return replace(issued, new_account=created)


def _lifetime(days: int | None, limit: int, setting: str) -> timedelta:
    if days is None:
        return timedelta(days=limit)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1 or days > limit:
        raise invalid("days", days, f"must be a whole number of days from 1 to {limit} (the {setting} setting)")
    return timedelta(days=days)


def _clean_name(name: str) -> str:
    text = (name or "").strip()
    if not text:
        raise invalid("token_name", name, "must not be blank")
    if len(text) > NAME_MAX:
        raise invalid("token_name", text, f"must be at most {NAME_MAX} characters")
    if any(not ch.isprintable() for ch in text):
        raise invalid("token_name", text, "must hold printable characters only")
    return text


def _issue(
    session: Session,
    *,
    author: User,
    owner: User,
    kind: TokenKind,
    name: str,
    lifetime: timedelta,
    now: datetime,
    replace_live: bool,
) -> IssuedToken:
    """Write a new token for ``owner`` (by ``author``), or a new value for the token of the same name."""
    name = _clean_name(name)
    token = new_token()
    values = {"token_hash": hash_token(token), "created_at": now, "expires_at": now + lifetime, "revoked_at": None,
              "last_used_at": None, "created_by_id": pk(author) if kind == TokenKind.service else None}
    old = session.connection().execute(
        core_select(_tokens).where(_tokens.c.user_id == pk(owner), _tokens.c.name == name).with_for_update()
    ).mappings().first()
    if old is None:
        act_as(session, author, reason="token issued")
        row_id = session.connection().execute(
            insert(_tokens).values(user_id=pk(owner), name=name, kind=kind.value, **values).returning(_tokens.c.id)
        ).scalar_one()
        changes = {"user_id": [None, pk(owner)], "name": [None, name], "kind": [None, kind.value]}
        changes |= {k: [None, plain(v)] for k, v in values.items() if v is not None and k != "token_hash"}
        record_bulk(session, "api_token", [(row_id, changes)], "insert")
    else:
        if old["kind"] != kind.value:
            raise ConflictError(f"token_name={name!r}: {owner.username!r} has a {old['kind']} token of this name",
                                field="token_name")
        if not replace_live and _state(old, now) == "active":
            raise ConflictError(
                f"token {name!r} of {owner.username!r} is still active (until {_when(old['expires_at'])}): revoke it "
                "first, or choose another name", field="token_name", value=name)
        act_as(session, author, reason="token replaced")
        session.connection().execute(update(_tokens).where(_tokens.c.id == old["id"]).values(**values))
        changes = {k: [plain(old[k]), plain(v)] for k, v in values.items() if k != "token_hash" and old[k] != v}
        changes["token_hash"] = ["<redacted>", "<redacted>"]
        record_bulk(session, "api_token", [(old["id"], changes)], "update")
    act_as(session, author)  # the reason was for the token's row only
    return IssuedToken(token=token, name=name, username=owner.username, role=owner.role, kind=kind.value,
                       expires_at=now + lifetime)


# --------------------------------------------------------------------------------------------------- checking


def _state(row: Any, now: datetime) -> str:
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] <= now:
        return "expired"
    return "active"


def _row_for(session: Session, token: str) -> Any:
    """The row of a presented token, or a refusal that says the token is not one of ours."""
    text = (token or "").strip()
    if not text.startswith(PREFIX) or len(text) > TOKEN_MAX:
        raise PermissionDeniedError(f"not a biobank token (they start with {PREFIX!r})", field="token")
    row = session.connection().execute(
        core_select(_tokens).where(_tokens.c.token_hash == hash_token(text))
    ).mappings().first()
    if row is None:
        raise PermissionDeniedError("unknown token: it was never issued here, or was replaced", field="token")
    return row


def _checked(session: Session, token: str, now: datetime) -> tuple[User, Any]:
    row = _row_for(session, token)
    user = session.get(User, row["user_id"])
    assert user is not None  # a foreign key holds it
    which = f"token {row['name']!r} of {user.username!r}"
    if row["revoked_at"] is not None:
        raise PermissionDeniedError(f"{which} was revoked on {_when(row['revoked_at'])}", field="token")
    if row["expires_at"] <= now:
        raise PermissionDeniedError(f"{which} expired on {_when(row['expires_at'])}", field="token")
    if not user.is_active:
        raise PermissionDeniedError(f"{which}: the account is disabled", field="token", value=user.username)
    return user, row


def _when(moment: datetime) -> str:
    return shown_time(moment, with_zone=True)


def user_for_token(
    session: Session, token: str, *, now: datetime | None = None, record_use: bool = True
) -> User:
    """The active user ``token`` belongs to; else a :class:`PermissionDeniedError` saying why (not a token, unknown,
    revoked, expired, account disabled). Records the use (``last_used_at``) at most once a minute, in the caller's
    transaction, unless ``record_use`` is false (a read-only check)."""
    now = _now(now)
    user, row = _checked(session, token, now)
    act_as(session, user)  # whatever the session writes next is the token's user's doing
    if record_use and (row["last_used_at"] is None or row["last_used_at"] <= now - USE_INTERVAL):
        session.connection().execute(
            update(_tokens)
            .where(_tokens.c.id == row["id"],
                   or_(_tokens.c.last_used_at.is_(None), _tokens.c.last_used_at <= now - USE_INTERVAL))
            .values(last_used_at=now)
        )
    return user


def describe_token(session: Session, token: str, *, now: datetime | None = None) -> TokenInfo:
    """What may be shown about a valid presented token (``whoami``); refuses an invalid one as :func:`user_for_token`."""
    now = _now(now)
    user, row = _checked(session, token, now)
    return _info(session, row, user, now)


def _info(session: Session, row: Any, owner: User, now: datetime) -> TokenInfo:
    creator = session.get(User, row["created_by_id"]) if row["created_by_id"] is not None else None
    return TokenInfo(
        name=row["name"], username=owner.username, role=owner.role, kind=row["kind"], created_at=row["created_at"],
        expires_at=row["expires_at"], last_used_at=row["last_used_at"], revoked_at=row["revoked_at"],
        created_by=creator.username if creator is not None else None, state=_state(row, now),
    )


def require_admin(actor: User | None, doing: str) -> User:
    """``actor`` if an active administrator; else a refusal naming what needed one (``doing``)."""
    if actor is None:
        raise PermissionDeniedError(f"{doing}: needs an administrator; no user is signed in", field="user")
    if not actor.is_active:
        raise PermissionDeniedError(f"{doing}: user {actor.username!r} is disabled", field="user", value=actor.username)
    if not can(actor, Action.manage_users):
        raise PermissionDeniedError(
            f"{doing}: needs an administrator; user {actor.username!r} has role {actor.role!r}",
            field="role", value=actor.role,
        )
    return actor


# ----------------------------------------------------------------------------------------- listing, revoking


def list_tokens(session: Session, *, actor: User | None, now: datetime | None = None) -> list[TokenInfo]:
    """Tokens by account and name: an administrator sees every token, anyone else their own. Never the token."""
    if actor is None:
        raise PermissionDeniedError("list tokens: no user is signed in", field="user")
    now = _now(now)
    statement = core_select(_tokens).order_by(_tokens.c.user_id, _tokens.c.name)
    if not can(actor, Action.manage_users):
        statement = statement.where(_tokens.c.user_id == pk(actor))
    rows = session.connection().execute(statement).mappings().all()
    owners = {u.id: u for u in session.exec(select(User).where(col(User.id).in_({r["user_id"] for r in rows})))}
    infos = [_info(session, row, owners[row["user_id"]], now) for row in rows]
    return sorted(infos, key=lambda i: (i.username, i.name))


def revoke_token(
    session: Session, *, actor: User | None, name: str, account: str | None = None, now: datetime | None = None
) -> TokenInfo:
    """Revoke ``account``'s token called ``name`` (default: the actor's own). Anyone may revoke their own tokens; an
    administrator any. Revoking a revoked token is refused, so a typo is not reported as done."""
    if actor is None:
        raise PermissionDeniedError("revoke a token: no user is signed in", field="user")
    owner = actor if account is None or account == actor.username else get_user(session, account)
    if owner.id != actor.id:
        require_admin(actor, f"revoke a token of {owner.username!r}")
    row = session.connection().execute(
        core_select(_tokens).where(_tokens.c.user_id == pk(owner), _tokens.c.name == (name or "").strip())
        .with_for_update()
    ).mappings().first()
    if row is None:
        raise NotFoundError(f"token {name!r} of {owner.username!r} not found", field="token_name", value=name)
    if row["revoked_at"] is not None:
        raise ConflictError(f"token {name!r} of {owner.username!r} was already revoked on {_when(row['revoked_at'])}",
                            field="token_name", value=name)
    return _revoke(session, row, owner, author=actor, now=_now(now))


def revoke_presented(session: Session, token: str, *, now: datetime | None = None) -> TokenInfo | None:
    """Revoke the token its holder presents (signing out); None when it is unknown (nothing to revoke). A token
    already revoked stays as it was; an expired one is marked revoked too."""
    now = _now(now)
    try:
        row = _row_for(session, token)
    except PermissionDeniedError:
        return None
    owner = session.get(User, row["user_id"])
    assert owner is not None  # a foreign key holds it
    if row["revoked_at"] is not None:
        return _info(session, row, owner, now)
    return _revoke(session, row, owner, author=owner, now=now)


def _revoke(session: Session, row: Any, owner: User, *, author: User, now: datetime) -> TokenInfo:
    act_as(session, author, reason="token revoked")
    session.connection().execute(update(_tokens).where(_tokens.c.id == row["id"]).values(revoked_at=now))
    record_bulk(session, "api_token", [(row["id"], {"revoked_at": [None, plain(now)]})], "update")
    act_as(session, author)
    return _info(session, {**row, "revoked_at": now}, owner, now)
