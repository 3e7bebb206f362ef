"""Donors, specimens and plans to read; QC to record."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse
from sqlmodel import Session

from biobank.api.common import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    IdempotencyKey,
    Token,
    acting,
    decode_cursor,
    encode_cursor,
    fingerprint,
    hidden_or_missing,
    json_response,
    jsonable,
    problems,
    write_once,
)
from biobank.domain.errors import invalid
from biobank.domain.vocab import SpecimenStatus, StorageFormat
from biobank.models import User
from biobank.queries import core as core_reads
from biobank.queries import plans as plan_reads
from biobank.queries import specimens as specimen_reads
from biobank.services import planning, worklist
from biobank.services.inputs import SpecimenQC

router = APIRouter()

#: The columns ``GET /donors`` returns: those ``biobank donors list`` shows (de-identified: no name, no birth date).
DONOR_COLUMNS = ("code", "sex", "age_at_death", "diagnosis", "status", "consent_withdrawn", "case", "specimens")


@router.get("/donors", tags=["donors"], responses=problems(), summary="Donors (de-identified)")
def list_donors(token: Token) -> list[dict[str, Any]]:
    """One row per donor as `biobank donors list` shows it; a donor who withdrew consent is shown to an
    administrator only."""
    with acting(token) as (session, user):
        rows = core_reads.donor_rows(session)
        hidden = core_reads.hidden_donors(session, user.role)
    return jsonable([{c: r[c] for c in DONOR_COLUMNS} for r in rows if r["code"] not in hidden])


@router.get("/specimens", tags=["specimens"], responses=problems(404, 422), summary="Specimens, a page at a time",
            response_model=dict[str, Any])
def list_specimens(
    token: Token,
    donor: Annotated[list[str] | None, Query(description="Donor code (repeat for several).")] = None,
    case: Annotated[list[str] | None, Query(description="Case code (repeat for several).")] = None,
    site: Annotated[list[str] | None, Query(description="Anatomical site code (repeat for several).")] = None,
    status: Annotated[list[SpecimenStatus] | None, Query(description="Status (repeat for several).")] = None,
    format: Annotated[list[StorageFormat] | None, Query(description="Storage format (repeat for several).")] = None,
    location: Annotated[str | None, Query(description="A container code: what is in it or anywhere below it.")]
    = None,
    plan: Annotated[str | None, Query(description="Analysis plan code: its included specimens.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    fields: Annotated[str | None, Query(description="Comma-separated columns (default: all).")] = None,
) -> JSONResponse:
    """The specimen list of `biobank specimen list` / the dashboard, by code; `next_cursor` is null on the last
    page. Each page is one keyset read after the cursor's code. Specimens of a donor who withdrew consent are shown to
    an administrator only. An unknown location or plan is a 404 naming it."""
    columns = list(specimen_reads.LIST_COLUMNS)
    if fields is not None:
        chosen = [f.strip() for f in fields.split(",") if f.strip()]
        unknown = [f for f in chosen if f not in columns]
        if unknown or not chosen:
            raise invalid("fields", fields, f"choose from {', '.join(columns)}")
        columns = list(dict.fromkeys(chosen))
    after = decode_cursor(cursor) if cursor is not None else None
    with acting(token) as (session, user):
        hidden = core_reads.hidden_donors(session, user.role)
        rows = specimen_reads.specimen_list(
            session, donor=donor, case=case, site=site, status=status, storage_format=format, box=location,
            plan=plan, limit=limit + 1, after=after, exclude_donors=hidden)
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1]["code"]) if len(rows) > limit else None
    return json_response({"items": [{c: r[c] for c in columns} for r in page], "next_cursor": next_cursor})


@router.get("/specimens/{code}", tags=["specimens"], responses=problems(404), summary="One specimen",
            response_model=dict[str, Any])
def show_specimen(token: Token, code: Annotated[str, Path(description="Specimen code.")]) -> JSONResponse:
    """As `biobank specimen show --json`: SPREC, PMI, QC, lineage and custody history."""
    with acting(token) as (session, user):
        data = core_reads.specimen_detail(session, code)
        if data.get("donor") in core_reads.hidden_donors(session, user.role):
            raise hidden_or_missing(code, "specimen")
    return json_response(data)


@router.get("/plans", tags=["plans"], responses=problems(), summary="Analysis plans")
def list_plans(token: Token) -> list[dict[str, Any]]:
    """Every plan with its status and counts, as `biobank plan list`."""
    with acting(token) as (session, _user):
        return jsonable(plan_reads.list_plans(session))


@router.get("/plans/{code}", tags=["plans"], responses=problems(404), summary="One plan and its rules")
def show_plan(token: Token, code: Annotated[str, Path(description="Plan code.")]) -> dict[str, Any]:
    """As `biobank plan show --json`, with `check`: the rule report of `biobank plan check --json`."""
    with acting(token) as (session, _user):
        detail = plan_reads.plan_detail(session, code)
        report = planning.check_plan(session, code)
        check = {"summary": report.summary(), "ok": report.ok, "findings": report.to_records()}
        return jsonable(detail | {"check": check})


@router.post("/specimens/{code}/qc", tags=["specimens"], responses=problems(400, 403, 404, 409, 422),
             summary="Record QC", openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": SpecimenQC.model_json_schema()}}}})
def record_qc(
    token: Token,
    code: Annotated[str, Path(description="Specimen code.")],
    values: Annotated[dict[str, Any], Body()],
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Pathology review or nucleic-acid QC on one specimen, through the service and input model of
    `biobank specimen qc`; audited as the token's user. With an `Idempotency-Key`, a replay of the same body
    answers the first (successful) response and writes nothing."""

    def work(session: Session, user: User) -> tuple[int, Any]:
        if worklist.look_up(session, [code]).missing:
            raise hidden_or_missing(code, "specimen")
        result = worklist.apply(session, actor=user, codes=[code], operation="qc", request=values)
        return 200, {"operation": "qc", "done": [{"code": d.code, "done": d.note} for d in result.done]}

    return write_once(token, idempotency_key, fingerprint("POST", f"/specimens/{code}/qc", values), work)
