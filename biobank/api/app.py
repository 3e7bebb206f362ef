"""The REST API application (issue 20): :func:`create_app` mounts every router of :mod:`biobank.api.routes` under
``/api/v1`` and turns every error into an RFC 9457 problem; what the routes share (tokens, rate limit, the unit of
work, idempotency) is :mod:`biobank.api.common`."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError, ProgrammingError
from starlette.exceptions import HTTPException as StarletteHTTPException

from biobank.api.common import PREFIX, RateLimiter, jsonable, problem, problem_for
from biobank.api.routes import attachments, core, reads, transfer, writes
from biobank.config import get_settings
from biobank.domain.errors import BiobankError

#: Every router, in the order the OpenAPI document lists them.
ROUTERS = (core.router, reads.router, writes.router, transfer.router, attachments.router)


def create_app(*, rate_limit_per_minute: int | None = None) -> FastAPI:
    """The API application (uvicorn: ``biobank.api:create_app --factory``). ``rate_limit_per_minute`` overrides
    ``BIOBANK_API_RATE_LIMIT_PER_MINUTE`` (0: no limit)."""
    app = FastAPI(
        title="Biobank API", version="1", openapi_url=f"{PREFIX}/openapi.json", docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        description="Donors, cases, specimens, storage, models, analysis plans and their exports to read; QC, "
                    "storage moves, check-outs, sequencing results, imports and labels to write. Authenticate with "
                    "`Authorization: Bearer <token>` (`biobank login`, or a service token from `biobank tokens "
                    "create`). Errors are RFC 9457 problem details naming the field and value.",
    )
    limit = get_settings().api_rate_limit_per_minute if rate_limit_per_minute is None else rate_limit_per_minute
    app.state.rate_limiter = RateLimiter(limit)
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX)

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
                       value=jsonable(value) if isinstance(value, str | int | float | bool) else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = HTTPStatus(exc.status_code).phrase if exc.status_code in HTTPStatus._value2member_map_ else "Error"
        response = problem(exc.status_code, "http", title, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> JSONResponse:
        # a value the database cannot hold at all (a NUL character in text on PostgreSQL): the caller's input
        orig = getattr(exc, "orig", None)
        detail = str(orig).strip().splitlines()[0] if orig is not None else "a value the database cannot store"
        return problem(422, "invalid", "Unprocessable Content", f"a value the database cannot store: {detail}")

    @app.exception_handler(OperationalError)
    @app.exception_handler(ProgrammingError)
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        orig = getattr(exc, "orig", None)
        detail = str(orig).strip().splitlines()[0] if orig is not None else str(exc)
        return problem(503, "database", "Service Unavailable", f"database: {detail}")

    return app
