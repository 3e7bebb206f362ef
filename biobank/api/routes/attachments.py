"""Photos and documents (issue 22) over the REST API: a record's attachments, everything under a donor, one file
(or its thumbnail) with its SHA-256 checked, an upload, and a retraction; through :mod:`biobank.services.attachments`,
as ``biobank attach`` and ``biobank attachments`` call it (the same roles, visibility and checks)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from biobank.api.common import (
    PROBLEM_SCHEMA,
    TITLES,
    IdempotencyKey,
    Token,
    acting,
    authenticate,
    fingerprint,
    jsonable,
    problem,
    problems,
    write_once,
)
from biobank.attachments.store import StoreIntegrityError
from biobank.config import get_settings
from biobank.domain.errors import invalid
from biobank.models import User
from biobank.services import attachments as service

router = APIRouter()

_TARGET = Query(description=f"What the code names: one of {', '.join(service.TARGETS)} (default: guessed from the "
                            "code, as `biobank attachments CODE`).")


def _integrity(exc: StoreIntegrityError) -> JSONResponse:
    """A stored file missing or changed: the record stands, its bytes are not served (a 409 naming the attachment)."""
    return problem(409, "integrity", TITLES[409], str(exc), field=exc.field or "attachment", value=exc.value)


@router.get("/attachments", tags=["attachments"], responses=problems(404), summary="A record's attachments")
def list_attachments(
    token: Token,
    code: Annotated[str, Query(min_length=1, max_length=64, description="The record's code.")],
    target: Annotated[str | None, _TARGET] = None,
) -> list[dict[str, Any]]:
    """The attachments of one record that the token's user may see, as `biobank attachments CODE --json`: consent
    forms and pathology reports to administrators and PIs only; nothing of a donor who withdrew consent but to an
    administrator; retracted ones to administrators only, with their state."""
    with acting(token) as (session, user):
        record = service.find_target(session, target, code)
        infos = service.list_attachments(session, actor=user, target=record.target, code=record.code)
    return jsonable([info.as_dict() for info in infos])


@router.get("/donors/{code}/attachments", tags=["attachments"], responses=problems(404),
            summary="Everything attached under a donor")
def donor_attachments(token: Token, code: Annotated[str, Path(description="Donor code.")]) -> list[dict[str, Any]]:
    """Everything attached to the donor, its case, lesions, regions, specimens and models that the user may see,
    each with its `target` and `code` (`RA-0001:L01-A` for a region), as `biobank attachments CODE --all`."""
    with acting(token) as (session, user):
        infos = service.donor_attachments(session, actor=user, donor_code=code)
    return jsonable([info.as_dict() for info in infos])


_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The file (its SHA-256 checked), or its thumbnail (a JPEG), as a download.",
          "content": {media: {"schema": {"type": "string", "format": "binary"}}
                      for media in ("image/jpeg", "image/png", "image/tiff", "image/webp", "application/pdf")},
          "headers": {"Content-Disposition": {"description": "attachment; filename=...",
                                              "schema": {"type": "string"}}}},
    409: {"description": "The stored file is missing or no longer matches its SHA-256",
          "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}}},
    **problems(404),
}


@router.get("/attachments/{attachment_id}", tags=["attachments"], response_class=Response,
            responses=_FILE_RESPONSES, summary="One attachment's file")
def get_attachment(
    token: Token,
    attachment_id: Annotated[int, Path(ge=1, le=2**31 - 1, description="The attachment's number.")],
    thumbnail: Annotated[bool, Query(description="The thumbnail (a JPEG) instead of the file.")] = False,
) -> Response:
    """The file as `biobank attachments get ID`: checked against its SHA-256 on this read (a missing or changed file
    is a 409 naming the attachment, never served); a file the user may not see is a 404, as one that does not
    exist."""
    try:
        with acting(token) as (session, user):
            info, data = service.read_attachment(session, actor=user, attachment_id=attachment_id,
                                                 thumbnail=thumbnail)
    except StoreIntegrityError as exc:
        return _integrity(exc)
    filename = f"{info.filename.rsplit('.', 1)[0]}-thumbnail.jpg" if thumbnail else info.filename
    media = "image/jpeg" if thumbnail else info.media_type
    safe = filename.replace('"', "").replace("\\", "")
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{safe}"'})


_UPLOAD_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "required": ["file", "code", "kind"],
        "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "A JPEG, PNG, TIFF or WebP image, or a PDF (checked by its content)."},
            "code": {"type": "string", "description": "The record's code."},
            "target": {"type": "string", "enum": list(service.TARGETS),
                       "description": "What the code names (default: guessed)."},
            "kind": {"type": "string", "enum": list(service.KINDS)},
            "caption": {"type": "string"},
            "taken_at": {"type": "string", "format": "date-time",
                         "description": "When it was taken (ISO 8601 with a zone)."},
            "taken_by": {"type": "string"},
        },
    }}},
}


class _Fields(BaseModel):
    """The upload's text fields, checked before the service's own rules."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64)
    target: str | None = Field(default=None, max_length=20)
    kind: str = Field(min_length=1, max_length=20)
    caption: str | None = Field(default=None, max_length=500)
    taken_at: AwareDatetime | None = None
    taken_by: str | None = Field(default=None, max_length=120)


@router.post("/attachments", tags=["attachments"], status_code=201,
             responses=problems(400, 403, 404, 409, 413, 415, 422), summary="Attach a photo or document",
             openapi_extra={"requestBody": _UPLOAD_BODY})
async def attach(request: Request, token: Token, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """`biobank attach CODE FILE --kind K` over HTTP (multipart): the file is checked by its content (an image is
    decoded first; a corrupt or disguised file is a 422 naming `file`), EXIF stripped, stored by its SHA-256 with a
    thumbnail, and recorded as the token's user, or nothing is kept. Larger than `BIOBANK_ATTACHMENT_MAX_BYTES`: a
    413. An `Idempotency-Key` replays the first answer to a retry of the same file and fields."""
    await run_in_threadpool(authenticate, token)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return problem(415, "unsupported-media-type", TITLES[415], "send the file as multipart/form-data (field "
                       "'file', with 'code' and 'kind')", field="Content-Type", value=content_type or None)
    limit = get_settings().attachment_max_bytes
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + 65_536:
        return problem(413, "too-large", TITLES[413], f"file: larger than the {limit:,} bytes an attachment may be",
                       field="file", value=limit)
    async with request.form(max_files=1, max_fields=8) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise invalid("file", None, "send the file in the multipart field 'file'")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            return problem(413, "too-large", TITLES[413], f"file: larger than the {limit:,} bytes an attachment "
                           "may be", field="file", value=limit)
        filename = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1] or "upload"
        texts = {k: v for k, v in form.multi_items() if k != "file" and isinstance(v, str)}
    fields = _fields(texts)

    def work(session: Session, user: User) -> tuple[int, Any]:
        record = service.find_target(session, fields.target, fields.code)
        info = service.attach(session, actor=user, target=record.target, code=record.code, data=data,
                              filename=filename, kind=fields.kind, caption=fields.caption,
                              taken_at=fields.taken_at, taken_by=fields.taken_by)
        return 201, info.as_dict()

    print_ = fingerprint("POST", "/attachments", fields.model_dump(mode="json"), filename,
                         hashlib.sha256(data).hexdigest())
    return await run_in_threadpool(write_once, token, idempotency_key, print_, work)


def _fields(texts: dict[str, str]) -> _Fields:
    from pydantic import ValidationError as PydanticError

    try:
        return _Fields.model_validate({k: (v if v != "" else None) for k, v in texts.items()})
    except PydanticError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else "body"
        value = first.get("input")
        raise invalid(field, value if isinstance(value, str | int | float) else None, first["msg"]) from None


class RetractBody(BaseModel):
    """Why the attachment is retracted (`biobank attachments retract ID --reason`)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


@router.post("/attachments/{attachment_id}/retract", tags=["attachments"], responses=problems(400, 403, 404, 409),
             summary="Retract an attachment")
def retract(
    token: Token,
    attachment_id: Annotated[int, Path(ge=1, le=2**31 - 1, description="The attachment's number.")],
    body: RetractBody,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Mark the attachment retracted with the reason (technician or administrator); nothing is deleted, the file is
    kept and the change audited as the token's user."""

    def work(session: Session, user: User) -> tuple[int, Any]:
        info = service.retract(session, actor=user, attachment_id=attachment_id, reason=body.reason)
        return 200, info.as_dict()

    return write_once(token, idempotency_key, fingerprint("POST", f"/attachments/{attachment_id}/retract",
                                                          body.model_dump()), work)


__all__ = ["router"]
