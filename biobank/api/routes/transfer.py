"""File transfers: every export target of ``biobank export`` as a download, and ``biobank import KIND FILE`` as an
upload.

- **Exports** (``GET /exports``, ``GET /exports/{target}``): the targets of the export registry
  (:data:`biobank.exports.service.TARGETS`, :data:`~biobank.exports.service.DESCRIPTIONS`), each rendered by
  :func:`biobank.exports.service.export` exactly as ``biobank export TARGET`` renders it (same request, same consent
  and plan-rule checks) and recorded in the export log as the token's user in the request's unit of work. The
  service renders a target in memory (``{name: bytes}``; no target of the registry streams: the Parquet dump of
  :mod:`biobank.exports.stream` is no ``biobank export`` target), so the response sends those bytes: a single-file
  target as its file, a folder target as a zip of the folder (:func:`~biobank.exports.service.zip_files`, as the
  planner page offers it).
- **Imports** (``GET /imports``, ``POST /imports/{kind}``): the kinds of the import registry
  (:func:`biobank.imports.registry.import_kind_names`), a file uploaded as ``multipart/form-data`` (field ``file``;
  ``map`` for a collection log's mapping file) and run through :func:`biobank.imports.engine.run_import` (or
  :func:`~biobank.imports.kinds.collection_log.run_collection_log`) as ``biobank import`` runs it: the whole file
  checked first, then written in one transaction or not at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from biobank.api.common import (
    PROBLEM,
    PROBLEM_SCHEMA,
    TITLES,
    IdempotencyKey,
    Token,
    acting,
    authenticate,
    fingerprint,
    jsonable,
    problem,
    problem_for,
    problems,
    write_once,
)
from biobank.domain.errors import BiobankError, NotFoundError, invalid
from biobank.exports import service as export_service
from biobank.imports.engine import run_import
from biobank.imports.registry import KINDS, MAPPED_KIND_NAMES, get_kind, import_kind_names
from biobank.imports.report import ImportReport
from biobank.models import User
from biobank.services.plan_rules import PlanRulesError

router = APIRouter()

# --- exports ------------------------------------------------------------------------------------------------------

#: The options only some targets take, by the names ``biobank export TARGET`` gives them (the parameter names of
#: ``biobank.cli.plans.TARGET_OPTIONS``, which tests/api/test_api_transfer.py keeps equal to these); as in the CLI,
#: ``include_models`` is added for a patient-tissue target and ``assay`` for a sequencing target (:func:`options_of`).
TARGET_OPTIONS: dict[str, tuple[str, ...]] = {
    "sarek": ("fastq_dir", "bam_dir", "template"),
    "clonal": ("conipher",),
    "fhir": ("fhir_version",),
    "tables": ("identified",),
}
#: The media type of each single-file target's file (:data:`biobank.exports.service.SINGLE_FILE`); every other
#: target is a folder, sent as a zip.
SINGLE_FILE_MEDIA = {"samplesheet.csv": "text/csv", "bundle.json": "application/fhir+json"}
ZIP = "application/zip"
#: The options that keep a target's files from being de-identified (``tables --identified``: absolute times, who
#: collected, free-text notes).
IDENTIFYING_OPTIONS = ("identified",)


def options_of(target: str) -> tuple[str, ...]:
    """The options ``biobank export TARGET`` takes beyond its selection, in the CLI's order."""
    options = list(TARGET_OPTIONS.get(target, ()))
    if target in export_service.PATIENT_TISSUE_TARGETS:
        options.append("include_models")
    if target in export_service.SEQUENCING_TARGETS:
        options.append("assay")
    return tuple(options)


def media_type_of(target: str) -> str:
    """What ``GET /exports/{target}`` sends: the single file's media type, or a zip of the folder."""
    name = export_service.SINGLE_FILE.get(target)
    return SINGLE_FILE_MEDIA.get(name, "application/octet-stream") if name is not None else ZIP


def _binary(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string", "format": "binary"}}


_DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The export's file (a single-file target: text/csv or application/fhir+json) or a zip of "
                       "its folder, as an attachment.",
        "content": {
            "text/csv": _binary("nf-core/sarek samplesheet"),
            "application/fhir+json": _binary("FHIR Bundle"),
            ZIP: _binary("A folder target's files under one folder"),
        },
        "headers": {"Content-Disposition": {"description": "attachment; filename=...",
                                            "schema": {"type": "string"}}},
    },
}


def _problem_with(response: JSONResponse, **extra: Any) -> JSONResponse:
    """``response`` (a problem) with more members."""
    body = json.loads(bytes(response.body)) | jsonable(extra)
    return JSONResponse(body, status_code=response.status_code, media_type=PROBLEM, headers={
        k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")})


def _attachment(filename: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("._") or "export"
    return f'attachment; filename="{safe}"'


@router.get("/exports", tags=["exports"], responses=problems(), summary="Export targets")
def list_exports(token: Token) -> list[dict[str, Any]]:
    """Every target of `biobank export`: what it writes, what it is chosen by (`plan`, or `donor` and/or
    `specimen`, repeated; `whole_cohort`: nothing chosen means every consented donor), the options it takes, the
    media type `GET /exports/{target}` sends (`filename`: the file of a single-file target; null: a folder, sent as
    a zip), and whether its files are de-identified (`identifying_options`: the options that make them not)."""
    authenticate(token)
    return [
        {
            "target": target,
            "description": export_service.DESCRIPTIONS[target],
            "selection": ["plan", "donor", "specimen"],
            "whole_cohort": target in export_service.EXCHANGE_TARGETS,
            "sequencing": target in export_service.SEQUENCING_TARGETS,
            "options": list(options_of(target)),
            "media_type": media_type_of(target),
            "filename": export_service.SINGLE_FILE.get(target),
            "deidentified": True,
            "identifying_options": [o for o in options_of(target) if o in IDENTIFYING_OPTIONS],
        }
        for target in export_service.TARGETS
    ]


@router.get("/exports/{target}", tags=["exports"], response_class=Response,
            responses=_DOWNLOAD | problems(403, 404, 409, 422), summary="Download an export")
def download_export(
    token: Token,
    target: Annotated[str, Path(description="Export target (`GET /exports`).")],
    plan: Annotated[str | None, Query(description="Export this plan's specimens (refused while it breaks a rule).")]
    = None,
    donor: Annotated[list[str] | None, Query(description="Donor code (repeat for several).")] = None,
    specimen: Annotated[list[str] | None, Query(description="Specimen code (repeat for several).")] = None,
    assay: Annotated[str | None, Query(description="Sequencing targets: wgs (default), wes, panel or rna_seq.")]
    = None,
    fastq_dir: Annotated[str | None, Query(
        description="sarek: fill lane,fastq_1,fastq_2 from the FASTQ files in this folder of the API server.")]
    = None,
    bam_dir: Annotated[str | None, Query(
        description="sarek: fill bam,bai (or cram,crai) from the aligned files in this folder of the API server.")]
    = None,
    template: Annotated[bool | None, Query(
        description="sarek: a template sheet without input files (sarek cannot run it until they are filled in).")]
    = None,
    conipher: Annotated[bool | None, Query(description="clonal: CONIPHER's columns (CASE_ID, SAMPLE, ACF).")]
    = None,
    fhir_version: Annotated[int | None, Query(ge=4, le=5, description="fhir: release 4 (default) or 5.")] = None,
    identified: Annotated[bool | None, Query(
        description="tables: keep absolute times, who collected and notes (NOT de-identified).")] = None,
    include_models: Annotated[bool | None, Query(
        description="sarek, cbioportal: also material grown in models (PDX, organoids), marked.")] = None,
) -> Response:
    """The files of `biobank export TARGET` for the same selection and options, rendered by the same export
    service and recorded in the export log as the token's user (PIs and administrators). A single-file target
    (sarek, fhir) is sent as its file, a folder target as a zip of the folder. Consent is the service's: a withdrawn
    donor named (or in the plan) is a 409, and left out of a whole-cohort export. An option the target does not take
    is a 422 naming it; an unknown target, plan, donor or specimen a 404 naming it; a plan that breaks a rule a 422
    with its `findings`."""
    given: dict[str, Any] = {name: value for name, value in {
        "assay": assay, "fastq_dir": fastq_dir, "bam_dir": bam_dir, "template": template, "conipher": conipher,
        "fhir_version": fhir_version, "identified": identified, "include_models": include_models,
    }.items() if value is not None}
    with acting(token) as (session, user):
        if target not in export_service.TARGETS:
            raise NotFoundError(f"export target {target!r} not found; choose one of "
                                f"{', '.join(export_service.TARGETS)}", field="target", value=target)
        takes = options_of(target)
        for name, value in given.items():
            if name not in takes:
                raise invalid(name, value, f"{target} does not take {name} (it takes: {', '.join(takes) or 'none'})")
        request = export_service.ExportRequest(
            target=target, plan_code=plan, donor_codes=tuple(donor or ()), specimen_codes=tuple(specimen or ()),
            **given)
        try:
            files = _export(session, user, request)
        except PlanRulesError as exc:
            return _problem_with(problem_for(exc), findings=exc.report.to_records())
    prefix = request.plan_code or "export"
    if target in export_service.SINGLE_FILE and len(files) == 1:
        name, content = next(iter(files.items()))
        filename = f"{prefix}-{'template-' if request.template else ''}{name}"
        return Response(content, media_type=media_type_of(target),
                        headers={"Content-Disposition": _attachment(filename)})
    folder = f"{prefix}-{target}"
    return Response(export_service.zip_files(files, folder), media_type=ZIP,
                    headers={"Content-Disposition": _attachment(f"{folder}.zip")})


def _export(session: Session, user: User, request: export_service.ExportRequest) -> dict[str, bytes]:
    """:func:`biobank.exports.service.export`, its refusals worded for the API's parameters."""
    try:
        return export_service.export(session, actor=user, request=request)
    except export_service.ExportError as exc:
        if exc.field != export_service.MISSING_INPUT_FILES:
            raise
        raise export_service.ExportError(
            f"{exc} (fastq_dir=DIR for FASTQ pairs, bam_dir=DIR for BAM/CRAM files, or template=true for a sheet "
            "sarek cannot run until it is filled in)", field=exc.field) from None
    except OSError as exc:  # a folder of the server that cannot be read (fastq_dir, bam_dir)
        field = "fastq_dir" if request.fastq_dir is not None else "bam_dir"
        if request.fastq_dir is None and request.bam_dir is None:
            raise
        raise invalid(field, getattr(request, field), f"cannot be read ({exc.strerror})") from None


# --- imports ------------------------------------------------------------------------------------------------------

#: The largest file ``POST /imports/{kind}`` accepts (bytes): a larger one is a 413 (``biobank import`` has none).
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
#: The largest mapping file (a collection log's TOML).
MAX_MAP_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024

_REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "rows", "inserted", "updated", "written", "error_count", "errors", "notes", "summary"],
    "properties": {
        "kind": {"type": "string"}, "mode": {"type": "string"}, "dry_run": {"type": "boolean"},
        "file": {"type": ["string", "null"]}, "rows": {"type": ["integer", "null"]}, "inserted": {"type": "integer"},
        "updated": {"type": "integer"}, "unchanged": {"type": "integer"}, "written": {"type": "boolean"},
        "error_count": {"type": "integer"}, "note_count": {"type": "integer"},
        "errors": {"type": "array", "items": {"type": "object"}}, "notes": {"type": "array"},
        "file_notes": {"type": "array"}, "summary": {"type": "string"},
    },
}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"row": {"type": "integer"}, "column": {"type": "string"}, "value": {"type": "string"},
                   "expected": {"type": "string"}, "message": {"type": "string"}},
}
_REFUSAL_SCHEMA: dict[str, Any] = {
    **PROBLEM_SCHEMA,
    "properties": {**PROBLEM_SCHEMA["properties"], "errors": {"type": "array", "items": _ERROR_SCHEMA},
                   "error_count": {"type": "integer"}, "report": {"type": "object"}},
}


def _import_responses() -> dict[int | str, dict[str, Any]]:
    responses = problems(400, 403, 404, 409, 413, 415, 422)
    responses[200] = {"description": "The import's report", "content": {"application/json": {"schema": _REPORT_SCHEMA}}}
    responses[422] = {
        "description": "A value breaks a rule: a file with errors lists every one in `errors` (row, column, value, "
                       "expected, message), and nothing was written",
        "content": {PROBLEM: {"schema": _REFUSAL_SCHEMA}},
    }
    return responses


_UPLOAD_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "CSV, TSV or .xlsx (a filled-in template); its name's suffix gives its type."},
            "map": {"type": "string", "format": "binary",
                    "description": "collection_log only: the mapping file (TOML) naming which header is which "
                                   "field; see docs/collection-log.md."},
        },
    }}},
}


class _Refused(Exception):
    """An import whose report has errors: raised out of the unit of work so that nothing is written (and an
    idempotency key is released), answered as a 422 problem listing every error."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__(report.summary())
        self.report = report


def _refusal(report: ImportReport) -> JSONResponse:
    """The 422 of a file with errors: every error (row, column, value, expected, message) and the whole report."""
    data = report.as_dict() | {"summary": report.summary()}
    response = problem(422, "invalid", TITLES[422], report.summary(), field="file", value=report.filename)
    return _problem_with(response, errors=data["errors"], error_count=report.error_count, report=data)


def _kind(kind: str) -> str | None:
    """The collection-log kind's name, None for a table kind; a 404 naming ``kind`` for an unknown one."""
    mapped = kind.strip().lower().replace("-", "_")
    if mapped in MAPPED_KIND_NAMES:
        return mapped
    try:
        get_kind(kind)
    except BiobankError as exc:  # the registry's refusal names every kind
        raise NotFoundError(str(exc), field="kind", value=kind) from None
    return None


async def _read(upload: UploadFile, limit: int, field: str) -> bytes:
    """The uploaded file's bytes; a 413 beyond ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _TooLarge(field, limit)
        chunks.append(chunk)
    return b"".join(chunks)


class _TooLarge(Exception):
    """An upload larger than its limit (a 413)."""

    def __init__(self, field: str, limit: int) -> None:
        super().__init__(f"{field}: larger than the {limit:,} bytes an upload may be")
        self.field = field
        self.limit = limit


def _too_large(exc: _TooLarge) -> JSONResponse:
    return problem(413, "too-large", TITLES[413], str(exc), field=exc.field, value=exc.limit)


@router.get("/imports", tags=["imports"], responses=problems(), summary="Import kinds")
def list_imports(token: Token) -> list[dict[str, Any]]:
    """Every kind `biobank import KIND FILE` takes, from the import registry: what a row is, its columns (name,
    required, type, vocabulary, help) and its natural key; `mapped`: read through a mapping file (`map`) rather than
    a template (the collection log)."""
    authenticate(token)
    kinds: list[dict[str, Any]] = []
    for name in import_kind_names():
        spec = KINDS.get(name)
        if spec is None:
            kinds.append({"kind": name, "title": "Collection log", "mapped": True, "columns": [], "key": [],
                          "help": "A lab's own wide log, read through a mapping file (map: TOML; "
                                  "`biobank import collection_log FILE --suggest-map` writes a first one)."})
            continue
        kinds.append({
            "kind": name, "title": spec.title, "mapped": False, "help": " ".join(spec.help.split()),
            "key": list(spec.key),
            "columns": [{"name": c.name, "required": c.required, "type": c.type, "vocabulary": list(c.vocabulary),
                         "help": c.help} for c in spec.columns],
        })
    return kinds


@router.post("/imports/{kind}", tags=["imports"], responses=_import_responses(), summary="Import a file",
             openapi_extra={"requestBody": _UPLOAD_BODY})
async def import_file(
    request: Request,
    token: Token,
    kind: Annotated[str, Path(description="Import kind (`GET /imports`).")],
    dry_run: Annotated[bool, Query(description="Check every row (the database's rules too) and report; keep nothing.")] = False,
    mode: Annotated[Literal["create", "upsert"], Query(
        description="create: new rows only; upsert: update rows by natural key (not collection_log).")] = "create",
    sheet: Annotated[str | None, Query(description="Worksheet of an .xlsx file (default: the first).")] = None,
    month_first: Annotated[bool, Query(description="Read 03/04/2024 as March 4 (default: day first).")] = False,
    create_containers: Annotated[bool, Query(
        description="collection_log: create a box path's missing containers (kinds assumed, noted) instead of "
                    "refusing it.")] = False,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """`biobank import KIND FILE` over HTTP: the file (multipart field `file`; a collection log's mapping file in
    `map`) is checked whole by the same import engine and written in one transaction, audited as the token's user,
    or not at all. The answer is the engine's report (rows read, inserted, updated, errors, notes). A file with any
    error is a 422 problem whose `errors` lists every error (row, column, value, expected, message); nothing is
    written. `dry_run` (default false, as the CLI) checks everything, the database's own rules
    too, and keeps nothing. A file over 50 MB is a
    413; an unknown kind a 404 naming `kind`; a role that may not enter data a 403. On a write (not a dry run) an
    `Idempotency-Key` replays the first successful response to a retry of the same file and options."""
    await run_in_threadpool(authenticate, token)
    mapped = _kind(kind)
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return problem(415, "unsupported-media-type", TITLES[415],
                       "send the file as multipart/form-data (field 'file'; 'map' for a collection log's mapping)",
                       field="Content-Type", value=content_type or None)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_UPLOAD_BYTES + MAX_MAP_BYTES + _CHUNK:
        return _too_large(_TooLarge("file", MAX_UPLOAD_BYTES))
    async with request.form(max_files=2, max_fields=2) as form:
        upload, map_upload = form.get("file"), form.get("map")
        if not isinstance(upload, UploadFile):
            raise invalid("file", None, "send the file to import in the multipart field 'file'")
        if map_upload is not None and not isinstance(map_upload, UploadFile):
            raise invalid("map", None, "send the mapping file as a file in the multipart field 'map'")
        try:
            content = await _read(upload, MAX_UPLOAD_BYTES, "file")
            mapping = await _read(map_upload, MAX_MAP_BYTES, "map") if map_upload is not None else None
        except _TooLarge as exc:
            return _too_large(exc)
        filename = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1] or None
    if mapped is None and (mapping is not None or create_containers):
        raise invalid("map" if mapping is not None else "create_containers", True if create_containers and
                      mapping is None else None, f"map and create_containers are for collection_log, not {kind!r}")
    if mapped is not None and mapping is None:
        raise invalid("map", None, "collection_log needs its mapping file (TOML) in the multipart field 'map' "
                                   "(`biobank import collection_log FILE --suggest-map` writes a first one)")
    options = {"dry_run": dry_run, "mode": mode, "sheet": sheet, "month_first": month_first,
               "create_containers": create_containers}

    def work(session: Session, user: User) -> tuple[int, Any]:
        report = _run(session, user, kind, mapped, content, filename, mapping, options)
        if not report.ok:
            raise _Refused(report)
        return 200, report.as_dict() | {"summary": report.summary()}

    def run() -> JSONResponse:
        if dry_run:  # writes nothing: no idempotency key to keep
            with acting(token) as (session, user):
                status, body = work(session, user)
            return JSONResponse(jsonable(body), status_code=status)
        print_ = fingerprint("POST", f"/imports/{kind}", options, filename, hashlib.sha256(content).hexdigest(),
                             None if mapping is None else hashlib.sha256(mapping).hexdigest())
        return write_once(token, idempotency_key, print_, work)

    try:
        return await run_in_threadpool(run)
    except _Refused as exc:
        return _refusal(exc.report)


def _run(session: Session, user: User, kind: str, mapped: str | None, content: bytes, filename: str | None,
         mapping: bytes | None, options: dict[str, Any]) -> ImportReport:
    """The import, as ``biobank import`` runs it (``biobank.cli.imports.import_file``)."""
    if mapped is not None:
        from biobank.imports.kinds.collection_log import run_collection_log
        from biobank.imports.mapping import load_mapping

        assert mapping is not None
        return run_collection_log(session, actor=user, source=content, filename=filename,
                                  mapping=load_mapping(mapping), dry_run=options["dry_run"],
                                  create_containers=options["create_containers"], sheet=options["sheet"])
    return run_import(session, actor=user, kind=kind, source=content, filename=filename, mode=options["mode"],
                      dry_run=options["dry_run"], dayfirst=not options["month_first"], sheet=options["sheet"])


__all__ = ["MAX_UPLOAD_BYTES", "TARGET_OPTIONS", "media_type_of", "options_of", "router"]
