"""The REST API's first slice (issue 20): donors, specimens, plans to read, QC to write, under ``/api/v1``.

- **Authentication**: ``Authorization: Bearer <token>``, the token checked by :func:`biobank.services.tokens.
  user_for_token` (the same as ``BIOBANK_TOKEN`` on the command line); 401 without one or with one it refuses.
- **Roles**: the services decide (:func:`biobank.services.auth.require`); their refusal is a 403.
- **Errors**: every project error (:mod:`biobank.domain.errors`) is an RFC 9457 problem (``application/problem+json``)
  with ``type``, ``title``, ``status``, ``detail`` (the CLI's message), and the ``field`` and ``value`` it names.
- **Sessions**: one unit of work per request (:func:`biobank.db.engine.session_scope`), as the CLI opens them; a
  request that fails writes nothing.
- **Idempotency**: a write given an ``Idempotency-Key`` header answers a replay (same key, same user, same body) with
  the first response, without writing again. The keys are kept in memory, per process (:class:`IdempotencyKeys`):
  a table would need a migration; a replay reaching another worker, or after a restart, is written again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

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
from biobank.domain.vocab import SpecimenStatus, StorageFormat
from biobank.models import User
from biobank.queries import core as core_reads
from biobank.queries import plans as plan_reads
from biobank.queries import specimens as specimen_reads
from biobank.services import planning, worklist
from biobank.services import tokens as token_service
from biobank.services.inputs import SpecimenQC

PREFIX = "/api/v1"
PROBLEM = "application/problem+json"
#: The most rows one page of a list gives.
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
#: The columns ``GET /donors`` returns: those ``biobank donors list`` shows (de-identified: no name, no birth date).
DONOR_COLUMNS = ("code", "sex", "age_at_death", "diagnosis", "status", "consent_withdrawn", "case", "specimens")


class Unauthenticated(PermissionDeniedError):
    """No token, or one the token service refuses: a 401, not a 403."""


_STATUS: list[tuple[type[BiobankError], int, str]] = [
    (Unauthenticated, 401, "unauthenticated"),
    (PermissionDeniedError, 403, "forbidden"),
    (NotFoundError, 404, "not-found"),
    (ConflictError, 409, "conflict"),
    (ConsentError, 409, "consent"),
    (ValidationError, 422, "invalid"),
]


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
    """``data`` as JSON values (times as ISO 8601), the way ``--json`` prints it."""
    return json.loads(json.dumps(data, default=_plain, allow_nan=False, ensure_ascii=False))


def problem(status: int, kind: str, title: str, detail: str, *, field: str | None = None, value: Any = None,
            row: Any = None) -> JSONResponse:
    """An RFC 9457 problem details response."""
    body: dict[str, Any] = {"type": f"{PREFIX}/problems/{kind}", "title": title, "status": status, "detail": detail}
    if field is not None:
        body["field"] = field
    if value is not None:
        body["value"] = jsonable(value)
    if row is not None:
        body["row"] = jsonable(row)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def problem_for(exc: BiobankError) -> JSONResponse:
    status, kind = 400, "bad-request"
    for error_type, code, name in _STATUS:
        if isinstance(exc, error_type):
            status, kind = code, name
            break
    title = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
             422: "Unprocessable Content"}.get(status, "Bad Request")
    return problem(status, kind, title, str(exc), field=exc.field, value=exc.value, row=exc.row)


_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "field": {"type": "string"}, "value": {}, "row": {},
    },
}


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "The body is not JSON", 401: "No token, or a token that is unknown, revoked or expired", 403: "The token's role may not",
            404: "Nothing has that code", 409: "Collides with the current state",
            422: "A value breaks a rule (the problem names the field and value)",
            503: "The database is not reachable or not upgraded"}
    return {code: {"description": text[code], "content": {PROBLEM: {"schema": _PROBLEM_SCHEMA}}}
            for code in (401, *codes, 503)}


class IdempotencyKeys:
    """The first response to each (user, key): replayed for the same body, refused for another. In memory, per
    process, at most ``size`` keys (the oldest forgotten first)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[int, str], tuple[str, int, Any]] = OrderedDict()

    def get(self, user_id: int, key: str, fingerprint: str) -> tuple[int, Any] | None:
        with self._lock:
            seen = self._seen.get((user_id, key))
        if seen is None:
            return None
        if seen[0] != fingerprint:
            raise ConflictError(
                f"Idempotency-Key {key!r} was already used for another request", field="Idempotency-Key", value=key
            )
        return seen[1], seen[2]

    def put(self, user_id: int, key: str, fingerprint: str, status: int, body: Any) -> None:
        with self._lock:
            self._seen[(user_id, key)] = (fingerprint, status, body)
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)


def _encode_cursor(code: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": code}).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after = data["after"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise invalid("cursor", cursor, "is not a cursor this API gave (pass next_cursor back as it is)") from None
    if not isinstance(after, str):
        raise invalid("cursor", cursor, "is not a cursor this API gave (pass next_cursor back as it is)")
    return after


Bearer = HTTPBearer(auto_error=False, description="A biobank token: `biobank login` or `biobank tokens service`.")
#: The presented bearer token (None without one: :func:`create_app`'s ``acting`` refuses it with a 401).
Token = Annotated[HTTPAuthorizationCredentials | None, Depends(Bearer)]


def create_app() -> FastAPI:
    """The API application (uvicorn: ``biobank.api:create_app --factory``)."""
    app = FastAPI(
        title="Biobank API", version="1", openapi_url=f"{PREFIX}/openapi.json", docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        description="Read donors, specimens and analysis plans; record QC. Authenticate with "
                    "`Authorization: Bearer <token>`. Errors are RFC 9457 problem details.",
    )
    keys = IdempotencyKeys()
    app.state.idempotency_keys = keys

    @app.exception_handler(BiobankError)
    async def _biobank_error(request: Request, exc: BiobankError) -> JSONResponse:
        return problem_for(exc)

    @app.exception_handler(RequestValidationError)
    async def _request_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        location = [str(part) for part in first.get("loc", ())]
        field = location[-1] if location else None
        detail = f"{'.'.join(location[1:]) or field}: {first.get('msg', 'is not valid')}"
        value = first.get("input")
        return problem(422, "invalid", "Unprocessable Content", detail, field=field,
                       value=value if isinstance(value, str | int | float | bool) else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = HTTPStatus(exc.status_code).phrase if exc.status_code in HTTPStatus._value2member_map_ else "Error"
        response = problem(exc.status_code, "http", title, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(OperationalError)
    @app.exception_handler(ProgrammingError)
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        orig = getattr(exc, "orig", None)
        detail = str(orig).strip().splitlines()[0] if orig is not None else str(exc)
        return problem(503, "database", "Service Unavailable", f"database: {detail}")

    @contextmanager
    def acting(credentials: HTTPAuthorizationCredentials | None) -> Iterator[tuple[Session, User]]:
        """A unit of work and the token's user (the audit author of whatever it writes)."""
        if credentials is None or not credentials.credentials:
            raise Unauthenticated("no token: send 'Authorization: Bearer <token>'", field="token")
        with session_scope(get_engine()) as session:
            try:
                user = token_service.user_for_token(session, credentials.credentials)
            except PermissionDeniedError as exc:
                raise Unauthenticated(str(exc), field="token", value=exc.value) from None
            yield session, user

    @app.get(f"{PREFIX}/donors", tags=["donors"], responses=_problems(), summary="Donors (de-identified)")
    def list_donors(token: Token) -> list[dict[str, Any]]:
        """One row per donor as `biobank donors list` shows it; a donor who withdrew consent is shown to an
        administrator only."""
        with acting(token) as (session, user):
            rows = core_reads.donor_rows(session)
            hidden = core_reads.hidden_donors(session, user.role)
        return jsonable([{c: r[c] for c in DONOR_COLUMNS} for r in rows if r["code"] not in hidden])

    @app.get(f"{PREFIX}/specimens", tags=["specimens"], responses=_problems(422), summary="Specimens, a page at a time")
    def list_specimens(
        token: Token,
        donor: Annotated[list[str] | None, Query(description="Donor code (repeat for several).")] = None,
        status: Annotated[list[SpecimenStatus] | None, Query(description="Status (repeat for several).")] = None,
        format: Annotated[list[StorageFormat] | None, Query(description="Storage format (repeat for several).")]
        = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")] = DEFAULT_LIMIT,
        cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
        fields: Annotated[str | None, Query(description="Comma-separated columns (default: all).")] = None,
    ) -> dict[str, Any]:
        """The specimen list of `biobank specimen list` / the dashboard, by code; `next_cursor` is null on the last
        page. Specimens of a donor who withdrew consent are shown to an administrator only."""
        columns = list(specimen_reads.LIST_COLUMNS)
        if fields is not None:
            chosen = [f.strip() for f in fields.split(",") if f.strip()]
            unknown = [f for f in chosen if f not in columns]
            if unknown or not chosen:
                raise invalid("fields", fields, f"choose from {', '.join(columns)}")
            columns = list(dict.fromkeys(chosen))
        after = _decode_cursor(cursor) if cursor is not None else None
        with acting(token) as (session, user):
            rows = specimen_reads.specimen_list(session, donor=donor, status=status, storage_format=format, limit=None)
            hidden = core_reads.hidden_donors(session, user.role)
        rows = [r for r in rows if r["donor"] not in hidden and (after is None or r["code"] > after)]
        page = rows[:limit]
        next_cursor = _encode_cursor(page[-1]["code"]) if len(rows) > limit else None
        return {"items": jsonable([{c: r[c] for c in columns} for r in page]), "next_cursor": next_cursor}

    @app.get(f"{PREFIX}/specimens/{{code}}", tags=["specimens"], responses=_problems(404),
             summary="One specimen")
    def show_specimen(token: Token, code: Annotated[str, Path(description="Specimen code.")]) -> dict[str, Any]:
        """As `biobank specimen show --json`: SPREC, PMI, QC, lineage and custody history."""
        with acting(token) as (session, user):
            data = core_reads.specimen_detail(session, code)
            if data.get("donor") in core_reads.hidden_donors(session, user.role):
                raise NotFoundError(f"specimen {code!r} not found", field="code", value=code)
        return jsonable(data)

    @app.get(f"{PREFIX}/plans", tags=["plans"], responses=_problems(), summary="Analysis plans")
    def list_plans(token: Token) -> list[dict[str, Any]]:
        """Every plan with its status and counts, as `biobank plan list`."""
        with acting(token) as (session, _user):
            return jsonable(plan_reads.list_plans(session))

    @app.get(f"{PREFIX}/plans/{{code}}", tags=["plans"], responses=_problems(404), summary="One plan and its rules")
    def show_plan(token: Token, code: Annotated[str, Path(description="Plan code.")]) -> dict[str, Any]:
        """As `biobank plan show --json`, with `check`: the rule report of `biobank plan check --json`."""
        with acting(token) as (session, _user):
            detail = plan_reads.plan_detail(session, code)
            report = planning.check_plan(session, code)
            check = {"summary": report.summary(), "ok": report.ok, "findings": report.to_records()}
            return jsonable(detail | {"check": check})

    @app.post(f"{PREFIX}/specimens/{{code}}/qc", tags=["specimens"], responses=_problems(400, 403, 404, 409, 422),
              summary="Record QC", openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": SpecimenQC.model_json_schema()}}}})
    def record_qc(
        token: Token,
        code: Annotated[str, Path(description="Specimen code.")],
        values: Annotated[dict[str, Any], Body()],
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
    ) -> JSONResponse:
        """Pathology review or nucleic-acid QC on one specimen, through the service and input model of
        `biobank specimen qc`; audited as the token's user. With an `Idempotency-Key`, a replay of the same body
        answers the first (successful) response and writes nothing."""
        fingerprint = hashlib.sha256(json.dumps([code, values], sort_keys=True, default=str).encode()).hexdigest()
        with acting(token) as (session, user):
            user_id = int(user.id or 0)
            if idempotency_key is not None:
                seen = keys.get(user_id, idempotency_key, fingerprint)
                if seen is not None:
                    return JSONResponse(seen[1], status_code=seen[0], headers={"Idempotent-Replayed": "true"})
            if worklist.look_up(session, [code]).missing:
                raise NotFoundError(f"specimen {code!r} not found", field="code", value=code)
            result = worklist.apply(session, actor=user, codes=[code], operation="qc", request=values)
        body = {"operation": "qc", "done": [{"code": d.code, "done": d.note} for d in result.done]}
        if idempotency_key is not None:
            keys.put(user_id, idempotency_key, fingerprint, 200, body)
        return JSONResponse(body)

    return app
