"""What every route of the REST API shares: problem details, the bearer token and its rate limit, the unit of work
acting as the token's user, cursors, and idempotency keys.

- **Authentication**: ``Authorization: Bearer <token>``, the token checked by :func:`biobank.services.tokens.
  user_for_token` (the same as ``BIOBANK_TOKEN`` on the command line); 401 without one or with one it refuses.
- **Rate limit**: ``BIOBANK_API_RATE_LIMIT_PER_MINUTE`` requests per token (or per client address without one) in
  any 60 seconds, per API process (:class:`RateLimiter`); beyond it a 429 problem with ``Retry-After``.
- **Roles**: the services decide (:func:`biobank.services.auth.require`); their refusal is a 403.
- **Errors**: every project error (:mod:`biobank.domain.errors`) is an RFC 9457 problem (``application/problem+json``)
  with ``type``, ``title``, ``status``, ``detail`` (the CLI's message), and the ``field`` and ``value`` it names.
- **Sessions**: one unit of work per request (:func:`biobank.db.engine.session_scope`), as the CLI opens them; a
  request that fails writes nothing.
- **Idempotency**: a write sent with an ``Idempotency-Key`` header claims the key in its own transaction
  (``api_idempotency_key``, shared by every API process); a retry with the same key and request is answered with the
  first response (``Idempotent-Replayed: true``) and writes nothing; the same key with another request is a 409. A
  write that fails releases its key with everything else it did.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from biobank.config import get_settings
from biobank.db.engine import get_engine, session_scope
from biobank.domain.errors import (
    BiobankError,
    ConflictError,
    ConsentError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    invalid,
)
from biobank.models import User
from biobank.models.base import utcnow
from biobank.models.tokens import ApiIdempotencyKey
from biobank.services import tokens as token_service

PREFIX = "/api/v1"
PROBLEM = "application/problem+json"
#: The most rows one page of a list gives.
MAX_LIMIT = 500
DEFAULT_LIMIT = 100


class Unauthenticated(PermissionDeniedError):
    """No token, or one the token service refuses: a 401, not a 403."""


class RateLimited(BiobankError):
    """Too many requests for one token in the last minute: a 429 with ``Retry-After``."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, field="token")
        self.retry_after = retry_after


_STATUS: list[tuple[type[BiobankError], int, str]] = [
    (Unauthenticated, 401, "unauthenticated"),
    (PermissionDeniedError, 403, "forbidden"),
    (NotFoundError, 404, "not-found"),
    (ConflictError, 409, "conflict"),
    (ConsentError, 409, "consent"),
    (RateLimited, 429, "rate-limited"),
    (ValidationError, 422, "invalid"),
]
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
          413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
          429: "Too Many Requests", 503: "Service Unavailable"}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "item"):  # a numpy scalar
        return value.item()
    return str(value)


def jsonable(data: Any) -> Any:
    """``data`` as JSON values (times as ISO 8601, NaN and infinities as null), the way ``--json`` prints it."""
    return json.loads(json.dumps(data, default=_plain, ensure_ascii=False), parse_constant=lambda _constant: None)


def json_response(data: Any, status: int = 200) -> JSONResponse:
    """``data`` as a JSON response, encoded once here rather than walked again by FastAPI's encoder (a page of 500
    specimens costs half as much)."""
    return JSONResponse(jsonable(data), status_code=status)


def problem(status: int, kind: str, title: str, detail: str, *, field: str | None = None, value: Any = None,
            row: Any = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 problem details response."""
    body: dict[str, Any] = {"type": f"{PREFIX}/problems/{kind}", "title": title, "status": status, "detail": detail}
    if field is not None:
        body["field"] = field
    if value is not None:
        body["value"] = jsonable(value)
    if row is not None:
        body["row"] = jsonable(row)
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers or None)


def problem_for(exc: BiobankError) -> JSONResponse:
    """The problem details of a project error: status by its kind, the CLI's message, its field and value."""
    status, kind = 400, "bad-request"
    for error_type, code, name in _STATUS:
        if isinstance(exc, error_type):
            status, kind = code, name
            break
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return problem(status, kind, TITLES.get(status, "Bad Request"), str(exc), field=exc.field, value=exc.value,
                   row=exc.row, headers=headers)


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "field": {"type": "string"}, "value": {}, "row": {},
    },
}
_PROBLEM_TEXT = {
    400: "The body is not what the operation reads", 401: "No token, or a token that is unknown, revoked or expired",
    403: "The token's role may not", 404: "Nothing has that code", 409: "Collides with the current state",
    413: "The upload is larger than allowed", 415: "The upload's media type is not accepted",
    422: "A value breaks a rule (the problem names the field and value)",
    429: "Too many requests for this token in the last minute (see Retry-After)",
    503: "The database is not reachable or not upgraded",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: its problem statuses (401, 422, 429 and 503 always: any value, a path's too,
    may be one the database cannot store), each an RFC 9457 body."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in sorted({401, 422, 429, 503, *codes}):
        entry: dict[str, Any] = {"description": _PROBLEM_TEXT[code], "content": {PROBLEM: {"schema": PROBLEM_SCHEMA}}}
        if code == 429:
            entry["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}}
        responses[code] = entry
    return responses


# --- cursors ----------------------------------------------------------------------------------------------------


def encode_cursor(after: str) -> str:
    """An opaque cursor that continues a list after ``after`` (a code)."""
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The code a cursor of :func:`encode_cursor` continues after; anything else is an error naming ``cursor``."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after = data["after"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise invalid("cursor", cursor, "is not a cursor this API gave (pass next_cursor back as it is)") from None
    if not isinstance(after, str):
        raise invalid("cursor", cursor, "is not a cursor this API gave (pass next_cursor back as it is)")
    return after


# --- the token, its rate limit and the acting user ----------------------------------------------------------------


class RateLimiter:
    """At most ``per_minute`` requests per key in any 60 seconds (a sliding window, in this process); 0: no limit."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, deque[float]] = {}

    def check(self, key: str) -> None:
        """Count one request for ``key``; :class:`RateLimited` if it is one too many."""
        if self.per_minute <= 0:
            return
        now = self.clock()
        with self._lock:
            if len(self._seen) > 100_000:  # forget idle keys rather than grow without bound
                self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - 60}
            times = self._seen.setdefault(key, deque())
            while times and times[0] <= now - 60:
                times.popleft()
            if len(times) >= self.per_minute:
                wait = max(1, math.ceil(times[0] + 60 - now))
                raise RateLimited(
                    f"more than {self.per_minute} requests in a minute for this token: wait {wait} s",
                    retry_after=wait)
            times.append(now)


_bearer = HTTPBearer(auto_error=False, description="A biobank token: `biobank login` or `biobank tokens create`.")


def _credentials(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> HTTPAuthorizationCredentials | None:
    """The presented bearer token, counted against its rate limit (a request without one, against its address)."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        if credentials is not None and credentials.credentials:
            key = "token:" + hashlib.sha256(credentials.credentials.encode()).hexdigest()
        else:
            key = "client:" + (request.client.host if request.client else "?")
        limiter.check(key)
    return credentials


#: The presented bearer token (None without one: :func:`acting` refuses it with a 401).
Token = Annotated[HTTPAuthorizationCredentials | None, Depends(_credentials)]
#: A write's optional idempotency key.
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200,
           description="Any unique string: a retry with the same key and body is answered with the first response "
                       "and writes nothing."),
]


@contextmanager
def acting(credentials: HTTPAuthorizationCredentials | None) -> Iterator[tuple[Session, User]]:
    """A unit of work and the token's user (the audit author of whatever it writes); commits on success, writes
    nothing on any error."""
    if credentials is None or not credentials.credentials:
        raise Unauthenticated("no token: send 'Authorization: Bearer <token>'", field="token")
    with session_scope(get_engine()) as session:
        try:
            user = token_service.user_for_token(session, credentials.credentials)
        except PermissionDeniedError as exc:
            raise Unauthenticated(str(exc), field="token", value=exc.value) from None
        yield session, user


def authenticate(credentials: HTTPAuthorizationCredentials | None) -> None:
    """A 401 unless the token service accepts the token: for an upload, checked before its body is read."""
    with acting(credentials):
        pass


def hidden_or_missing(code: str, what: str, field: str = "code") -> NotFoundError:
    """The 404 for a record that does not exist or that the user is never shown (the two are not told apart)."""
    return NotFoundError(f"{what} {code!r} not found", field=field, value=code)


# --- idempotency --------------------------------------------------------------------------------------------------

_KEYS = ApiIdempotencyKey.__table__  # type: ignore[attr-defined]  # set by SQLModel's metaclass


def fingerprint(*parts: Any) -> str:
    """SHA-256 of a request's identifying parts (method, path, body)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def claim_key(session: Session, user_id: int, key: str, print_: str) -> tuple[int, Any] | None:
    """Claim ``key`` for this request in the write's transaction: None if it is now ours (write, then
    :func:`settle_key`), else the (status, body) of the first response to replay. Another request under the same key
    is a 409. On PostgreSQL a concurrent claim of the same key waits for the first transaction and then replays it."""
    hours = get_settings().api_idempotency_hours
    now = utcnow()
    session.execute(delete(_KEYS).where(_KEYS.c.created_at < now - timedelta(hours=hours)))
    try:
        with session.begin_nested():
            session.execute(insert(_KEYS).values(user_id=user_id, idempotency_key=key, fingerprint=print_,
                                                 created_at=now))
        return None
    except IntegrityError:
        row = session.execute(select(_KEYS.c.fingerprint, _KEYS.c.status, _KEYS.c.body).where(
            _KEYS.c.user_id == user_id, _KEYS.c.idempotency_key == key)).one()
        if row.fingerprint != print_ or row.status is None:
            raise ConflictError(f"Idempotency-Key {key!r} was already used for another request",
                                field="Idempotency-Key", value=key) from None
        return int(row.status), json.loads(row.body)


def settle_key(session: Session, user_id: int, key: str, status: int, body: Any) -> None:
    """Keep the response of the write that claimed ``key`` (committed with the write)."""
    session.execute(update(_KEYS).where(_KEYS.c.user_id == user_id, _KEYS.c.idempotency_key == key).values(
        status=status, body=json.dumps(body)))


def write_once(
    credentials: HTTPAuthorizationCredentials | None,
    key: str | None,
    request_print: str,
    work: Callable[[Session, User], tuple[int, Any]],
) -> JSONResponse:
    """Run a write as the token's user in one transaction: ``work(session, user)`` returns (status, JSON body). With
    an idempotency ``key``, a retry of the same request answers the first response (header ``Idempotent-Replayed``)
    without calling ``work``."""
    with acting(credentials) as (session, user):
        user_id = int(user.id or 0)
        if key is not None:
            seen = claim_key(session, user_id, key, request_print)
            if seen is not None:
                return JSONResponse(seen[1], status_code=seen[0], headers={"Idempotent-Replayed": "true"})
        status, body = work(session, user)
        body = jsonable(body)
        if key is not None:
            settle_key(session, user_id, key, status, body)
    return JSONResponse(body, status_code=status)
