"""Writes for the instruments around the biobank: a freezer scanner (store, move, check out, return), a sequencing
core (runs, per-sample results with their files, QC outcomes, and the plan's sequencing state to read back), and
label printing (a PDF sheet or ZPL as a download).

Every write goes through :func:`biobank.api.common.write_once`: audited as the token's user, one transaction
(nothing written on any error), idempotent under an ``Idempotency-Key``. Each route calls the service the CLI command
calls (``biobank storage store|move|checkout|return``, ``biobank sequencing run|result|outcome|status``,
``biobank labels``); the services decide who may (a 403 names the role) and every rule (a 404 names the unknown code,
a 409 the collision, a 422 the field and value).

Body keys are the CLI's options, named as the problems name them: ``container`` and ``position`` (``--box`` and
``--at``), the services' measure names for a result (``read_count``, ``mean_coverage``, ``contamination_pct``...).
Times are ISO 8601 **with a zone** (a machine sends them; a naive time is refused rather than guessed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session

from biobank.api.common import (
    IdempotencyKey,
    Token,
    acting,
    fingerprint,
    hidden_or_missing,
    jsonable,
    problems,
    write_once,
)
from biobank.domain.errors import BiobankError, ValidationError, invalid
from biobank.models import Checkout, Donor, User
from biobank.queries import core as core_reads
from biobank.queries import sequencing as seq_reads
from biobank.queries import storage as storage_reads
from biobank.services import sequencing, storage
from biobank.services.collection import get_autopsy
from biobank.services.planning import get_plan

router = APIRouter()


def _printable(value: Any) -> Any:
    """Text without a NUL character (PostgreSQL cannot hold one: a 422 here rather than a database error)."""
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(text, str) and "\x00" in text for text in texts):
        raise ValueError("must not contain a NUL character")
    return value


SpecimenCode = Annotated[str, Path(description="Specimen code."), AfterValidator(_printable)]
RunId = Annotated[str, Path(description="The core's run id (recorded with `POST /sequencing/runs`)."),
                  AfterValidator(_printable)]
PlanCode = Annotated[str, Path(description="Plan code."), AfterValidator(_printable)]


class _Body(BaseModel):
    """A request body: unknown keys refused (a typo is a 422 naming it), no NaN or infinity, no NUL in a text."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return _printable(value)


def _print(path: str, body: BaseModel | None) -> str:
    """The idempotency fingerprint of a POST to ``path`` with ``body``."""
    return fingerprint("POST", path, None if body is None else body.model_dump(mode="json"))


@contextmanager
def _named(**renames: str) -> Iterator[None]:
    """A service's error naming its own parameter (``at``, ``box``...) renamed to the body key the caller sent; a
    validation error's sentence is said again with that key's label ("Position (Z99) ...", not "Time (Z99) ...")."""
    try:
        yield
    except ValidationError as exc:
        if exc.field not in renames:
            raise
        raise invalid(renames[exc.field], exc.value, exc.reason, row=exc.row) from exc
    except BiobankError as exc:
        if exc.field in renames:
            exc.field = renames[exc.field]
        raise


#: The services name the target box ``box`` and the position ``at`` (the CLI's options); the API's body says
#: ``container`` and ``position``.
_STORAGE_FIELDS = {"box": "container", "at": "position"}


# --- storage: a freezer scanner -------------------------------------------------------------------------------


class StoreBody(_Body):
    """Where a specimen goes (`biobank storage store CODE --box BOX [--at POS]`)."""

    container: str = Field(min_length=1, max_length=64, description="The box (bag, drawer) it goes into.")
    position: str | None = Field(default=None, min_length=1, max_length=16,
                                 description="Position in the box, e.g. A1; default the first free one.")
    when: AwareDatetime | None = Field(default=None, description="When it was stored (ISO 8601 with a zone); "
                                                                 "default now.")


class MoveBody(_Body):
    """Where a stored specimen moves to (`biobank storage move CODE --to BOX [--at POS]`)."""

    container: str = Field(min_length=1, max_length=64, description="The target box (bag, drawer).")
    position: str | None = Field(default=None, min_length=1, max_length=16,
                                 description="Position in the target box; default the first free one.")
    reason: str | None = Field(default=None, max_length=400,
                               description="Why it moves (a freezer failure, a consolidation): kept as the note of "
                                           "the custody event, as `storage move --note`.")
    when: AwareDatetime | None = Field(default=None, description="When it moved (ISO 8601 with a zone); default now.")


class CheckoutBody(_Body):
    """A check-out (`biobank storage checkout CODE [--purpose ...]`)."""

    purpose: str | None = Field(default=None, max_length=300, description="What it is taken out for.")
    when: AwareDatetime | None = Field(default=None, description="When it was taken out (ISO 8601 with a zone); "
                                                                 "default now.")


class ReturnBody(_Body):
    """A return (`biobank storage return CODE [--kept-frozen] [--note ...]`)."""

    kept_frozen: bool = Field(default=False, description="It stayed frozen (dry ice): no freeze-thaw cycle.")
    note: str | None = Field(default=None, max_length=450, description="Note for the custody record.")
    when: AwareDatetime | None = Field(default=None, description="When it came back (ISO 8601 with a zone); "
                                                                 "default now.")


def _placement(placement: storage.Placement) -> dict[str, Any]:
    return {"code": placement.code, "location": placement.location, "container": placement.container,
            "position": placement.position, "warning": placement.warning or None}


def _checkout_record(session: Session, code: str, checkout: Checkout) -> dict[str, Any]:
    """A check-out as the API shows it: the specimen, who took it when from where, and its return if any."""
    taker = session.get(User, checkout.checked_out_by_id)
    returner = session.get(User, checkout.returned_by_id) if checkout.returned_by_id is not None else None
    return {
        "code": code,
        "checked_out_at": checkout.checked_out_at,
        "checked_out_by": taker.username if taker else None,
        "purpose": checkout.purpose,
        "from_location": checkout.from_location,
        "returned_at": checkout.returned_at,
        "returned_by": returner.username if returner else None,
        "kept_frozen": checkout.kept_frozen,
    }


_STORAGE_PROBLEMS = problems(400, 403, 404, 409, 422)


@router.post("/specimens/{code}/store", tags=["storage"], responses=_STORAGE_PROBLEMS, summary="Store a specimen",
             response_description="Where it is now: `code`, `location` (the full path), `container`, `position` and "
                                  "a storage `warning` (or null).")
def store_specimen(
    token: Token, code: SpecimenCode, body: StoreBody, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Put a specimen into a box at `position`, or the first free one, through the service of
    `biobank storage store`: the specimen must be available or reserved and not stored yet, and its format must suit
    the box's temperature. An occupied position is a 409 naming `position`; an unknown specimen or container a 404.
    Audited as the token's user; a replay under the same `Idempotency-Key` answers the first response."""

    def work(session: Session, user: User) -> tuple[int, Any]:
        with _named(**_STORAGE_FIELDS):
            (placement,) = storage.store(session, actor=user, codes=[code], box_code=body.container,
                                         at=body.position, when=body.when)
        return 200, _placement(placement)

    return write_once(token, idempotency_key, _print(f"/specimens/{code}/store", body), work)


@router.post("/specimens/{code}/move", tags=["storage"], responses=_STORAGE_PROBLEMS, summary="Move a specimen",
             response_description="Where it is now: `code`, `location` (the full path), `container`, `position` and "
                                  "a storage `warning` (or null).")
def move_specimen(
    token: Token, code: SpecimenCode, body: MoveBody, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Move a stored specimen to another box or position, through the service of `biobank storage move`: it must be
    stored and not checked out. An occupied position is a 409 naming `position` (two scanners racing for one slot:
    the database's unique position decides, the loser gets the 409 and nothing is written). Audited as the token's
    user; a replay under the same `Idempotency-Key` answers the first response."""

    def work(session: Session, user: User) -> tuple[int, Any]:
        with _named(**_STORAGE_FIELDS, note="reason"):
            placement = storage.move_specimen(session, actor=user, code=code, box_code=body.container,
                                              at=body.position, when=body.when, note=body.reason)
        return 200, _placement(placement)

    return write_once(token, idempotency_key, _print(f"/specimens/{code}/move", body), work)


@router.post("/specimens/{code}/checkout", tags=["storage"], responses=_STORAGE_PROBLEMS,
             summary="Check a specimen out", response_description="The check-out record.")
def checkout_specimen(
    token: Token, code: SpecimenCode, body: CheckoutBody | None = None, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Take a stored specimen out to work on it (its position stays reserved), through the service of
    `biobank storage checkout`. One already out is a 409; one not stored a 422. Answers the check-out record.
    Audited as the token's user; a replay under the same `Idempotency-Key` answers the first response."""
    given = body or CheckoutBody()

    def work(session: Session, user: User) -> tuple[int, Any]:
        checkout = storage.check_out(session, actor=user, code=code, purpose=given.purpose, when=given.when)
        return 200, _checkout_record(session, storage.get_specimen(session, code).code, checkout)

    return write_once(token, idempotency_key, _print(f"/specimens/{code}/checkout", given), work)


@router.post("/specimens/{code}/return", tags=["storage"], responses=_STORAGE_PROBLEMS,
             summary="Return a checked-out specimen",
             response_description="The closed check-out record, with `location` and `freeze_thaw_count`.")
def return_specimen(
    token: Token, code: SpecimenCode, body: ReturnBody | None = None, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Put a checked-out specimen back in its position, through the service of `biobank storage return`: frozen
    material counts one more freeze-thaw cycle unless `kept_frozen`. One not checked out is a 422. Answers the
    closed check-out record with the specimen's `location` and `freeze_thaw_count`. Audited as the token's user; a
    replay under the same `Idempotency-Key` answers the first response."""
    given = body or ReturnBody()

    def work(session: Session, user: User) -> tuple[int, Any]:
        checkout = storage.return_specimen(session, actor=user, code=code, kept_frozen=given.kept_frozen,
                                           when=given.when, note=given.note)
        specimen = storage.get_specimen(session, code)
        record = _checkout_record(session, specimen.code, checkout)
        record["location"] = storage_reads.find(session, specimen.code).get("location")
        record["freeze_thaw_count"] = specimen.freeze_thaw_count
        return 200, record

    return write_once(token, idempotency_key, _print(f"/specimens/{code}/return", given), work)


# --- sequencing: results back from a core -------------------------------------------------------------------------


class RunBody(_Body):
    """A sequencing run (`biobank sequencing run RUN_ID --instrument ...`)."""

    run_id: str = Field(min_length=1, max_length=120, description="The core's run id, e.g. "
                                                                  "20261201_LH00123_0042_A22ABCDLT3.")
    instrument: str = Field(min_length=1, max_length=80, description="Instrument, e.g. 'NovaSeq X Plus'.")
    flow_cell: str | None = Field(default=None, max_length=40, description="Flow cell kind, e.g. '10B'.")
    flow_cell_id: str | None = Field(default=None, max_length=60, description="The flow cell's own id.")
    centre: str | None = Field(default=None, max_length=120, description="Sequencing centre or core.")
    started_at: AwareDatetime | None = Field(default=None, description="When the run started (ISO 8601, zone).")
    completed_at: AwareDatetime | None = Field(default=None, description="When the run completed (ISO 8601, zone).")


class FileBody(_Body):
    """A data file of a result: where it lives, its checksum, and optionally its size and kind."""

    uri: str = Field(max_length=1000, description="URI or path, e.g. s3://core/RUN-1/S1.cram.")
    checksum_kind: str = Field(max_length=8, description="md5 or sha256.")
    checksum: str = Field(max_length=128, description="Hexadecimal digest (32 digits for md5, 64 for sha256).")
    size_bytes: int | None = Field(default=None, description="Size in bytes.")
    file_kind: str | None = Field(default=None, max_length=20, description="cram, crai, bam, fastq, vcf...")


class ResultBody(_Body):
    """What a run gave for one sample of a submitted plan (`biobank sequencing result PLAN SPECIMEN --run RUN`)."""

    plan: str = Field(min_length=1, max_length=64, description="Plan code (a submitted plan).")
    specimen: str = Field(min_length=1, max_length=64, description="Specimen code of the plan's sample.")
    read_count: int | None = Field(default=None, description="Read count (`--reads`).")
    mean_coverage: float | None = Field(default=None, description="Mean coverage, x (`--coverage`).")
    contamination_pct: float | None = Field(default=None, description="Contamination, % (`--contamination`).")
    purity: float | None = Field(default=None, description="Tumour purity, 0-1.")
    ploidy: float | None = Field(default=None, description="Ploidy.")
    files: list[FileBody | str] = Field(
        default_factory=list, max_length=1000,
        description=f"Data files: objects, or lines as `--file` takes them ({sequencing.FILE_FORMAT}).")
    auto_qc: bool = Field(default=True, description="Judge QC from the settings' thresholds at once.")


class OutcomeBody(_Body):
    """A person's QC verdict (`biobank sequencing outcome PLAN SPECIMEN --run RUN --outcome ...`)."""

    plan: str = Field(min_length=1, max_length=64, description="Plan code.")
    specimen: str = Field(min_length=1, max_length=64, description="Specimen code of the plan's sample.")
    outcome: str = Field(description="passed or failed_qc.")
    note: str | None = Field(default=None, description="Why (needed for failed_qc).")


def _file(item: FileBody | str) -> sequencing.FileInput:
    if isinstance(item, str):
        return sequencing.parse_file(item)
    return sequencing.FileInput(item.uri, item.checksum_kind, item.checksum, item.size_bytes, item.file_kind)


@router.post("/sequencing/runs", tags=["sequencing"], status_code=201, responses=problems(400, 403, 409, 422),
             summary="Record a sequencing run", response_description="The run as recorded.")
def record_run(token: Token, body: RunBody, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """A run at a sequencing core (its own run id, unique: a second one is a 409), through the service of
    `biobank sequencing run`; technicians (a pipeline's service token), PIs and administrators may. Audited as the
    token's user; a replay under the same `Idempotency-Key` answers the first response."""

    def work(session: Session, user: User) -> tuple[int, Any]:
        run = sequencing.record_run(session, actor=user, run_id=body.run_id, instrument=body.instrument,
                                    flow_cell=body.flow_cell, flow_cell_id=body.flow_cell_id, centre=body.centre,
                                    started_at=body.started_at, completed_at=body.completed_at)
        return 201, {"run_id": run.run_id, "instrument": run.instrument, "flow_cell": run.flow_cell,
                     "flow_cell_id": run.flow_cell_id, "centre": run.centre, "started_at": run.started_at,
                     "completed_at": run.completed_at}

    return write_once(token, idempotency_key, _print("/sequencing/runs", body), work)


@router.post("/sequencing/runs/{run_id}/results", tags=["sequencing"], status_code=201,
             responses=problems(400, 403, 404, 409, 422), summary="Record a sample's result of a run",
             response_description="As `biobank sequencing result --json`, with the result's `id`.")
def record_result(
    token: Token, run_id: RunId, body: ResultBody, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """What run `run_id` gave for a sample of a submitted plan (read count, coverage, contamination, purity, ploidy)
    with its files (URI, checksum, size, kind), through the service of `biobank sequencing result`. QC is judged at
    once when the measures it needs are there (`outcome` passed or failed_qc, else sequenced with a `qc_note` saying
    what is missing). A plan that is not submitted, or a second result of the same run for the sample, is a 409; an
    unknown plan, specimen or run a 404 naming it. Audited as the token's user; a replay under the same
    `Idempotency-Key` answers the first response."""

    def work(session: Session, user: User) -> tuple[int, Any]:
        files = [_file(f) for f in body.files]
        result = sequencing.record_result(
            session, actor=user, plan_code=body.plan, specimen_code=body.specimen, run_id=run_id,
            read_count=body.read_count, mean_coverage=body.mean_coverage, contamination_pct=body.contamination_pct,
            purity=body.purity, ploidy=body.ploidy, files=files, auto_qc=body.auto_qc)
        return 201, {"id": result.id, "plan": get_plan(session, body.plan).code,
                     "specimen": storage.get_specimen(session, body.specimen).code,
                     "run_id": sequencing.get_run(session, run_id).run_id, "outcome": result.outcome,
                     "qc_note": result.qc_note, "files": len(files)}

    return write_once(token, idempotency_key, _print(f"/sequencing/runs/{run_id}/results", body), work)


@router.post("/sequencing/runs/{run_id}/outcome", tags=["sequencing"],
             responses=problems(400, 403, 404, 409, 422),
             summary="Judge a sample's result of a run", response_description="The result's verdict.")
def set_outcome(
    token: Token, run_id: RunId, body: OutcomeBody, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """A person's QC verdict on a result still `sequenced`: `passed` or `failed_qc` (with a `note` saying why),
    through the service of `biobank sequencing outcome`. A judged result is final: judging it again is a 409.
    Audited as the token's user; a replay under the same `Idempotency-Key` answers the first response."""

    def work(session: Session, user: User) -> tuple[int, Any]:
        result = sequencing.set_outcome(session, actor=user, plan_code=body.plan, specimen_code=body.specimen,
                                        run_id=run_id, outcome=body.outcome, note=body.note)
        return 200, {"id": result.id, "plan": get_plan(session, body.plan).code,
                     "specimen": storage.get_specimen(session, body.specimen).code,
                     "run_id": sequencing.get_run(session, run_id).run_id, "outcome": result.outcome,
                     "qc_note": result.qc_note}

    return write_once(token, idempotency_key, _print(f"/sequencing/runs/{run_id}/outcome", body), work)


#: The columns of a sample's state: those `biobank sequencing status` shows, with the read count and how many
#: results the sample has.
STATUS_COLUMNS = ("donor_code", "specimen_code", "region_code", "role", "assay", "state", "run_id", "results",
                  "read_count", "mean_coverage", "contamination_pct", "purity", "ploidy", "qc_note")


@router.get("/plans/{code}/sequencing", tags=["sequencing"], responses=problems(404, 422),
            summary="A plan's sequencing state")
def plan_sequencing(token: Token, code: PlanCode) -> dict[str, Any]:
    """As `biobank sequencing status PLAN --json`: each sample's state (planned, submitted, sequenced, passed,
    failed_qc) with its latest result (run, reads, coverage, contamination, purity, ploidy, QC note), and for each
    sample that failed QC the next best candidate to swap in by amending the plan. Samples of a donor who withdrew
    consent are shown to an administrator only."""
    with acting(token) as (session, user):
        plan = get_plan(session, code)
        assert plan.id is not None
        frame = seq_reads.sample_states(session, plan_ids=[plan.id])
        replacements = [r.to_record() for r in sequencing.failed_replacements(session, plan.code)]
        hidden = core_reads.hidden_donors(session, user.role)
    samples = [{c: r[c] for c in STATUS_COLUMNS} for r in frame.to_dict(orient="records")
               if r["donor_code"] not in hidden]
    donor_of = {str(r["specimen_code"]): r["donor_code"] for r in frame.to_dict(orient="records")}
    replacements = [r for r in replacements if donor_of.get(r["failed_specimen_code"]) not in hidden]
    return {"plan": plan.code, "samples": jsonable(samples), "replacements": jsonable(replacements)}


# --- labels ----------------------------------------------------------------------------------------------------


class LabelsBody(_Body):
    """What to print (`biobank labels [CODES] [--case CASE | --planned CASE] [--format F] [--zpl]`): exactly one of
    `codes`, `case` and `planned`."""

    codes: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=5000, description="Specimen codes, in the order to print.")
    case: str | None = Field(default=None, min_length=1, max_length=64,
                             description="Every specimen of this case.")
    planned: str | None = Field(default=None, min_length=1, max_length=64,
                                description="Pre-print the regions of this case's lesions not yet collected.")
    format: Literal["pdf", "zpl"] = Field(default="pdf", description="pdf: a sheet; zpl: for a Zebra printer "
                                                                     "(`--zpl`).")
    label_format: str = Field(default="cryotube", max_length=20,
                              description="The label stock: cryotube, cassette or slide (the CLI's `--format`).")


_LABEL_MEDIA = {"pdf": "application/pdf", "zpl": "text/plain"}
_LABEL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The labels as a download (`Content-Disposition: attachment`): a PDF sheet, or ZPL text.",
        "content": {
            "application/pdf": {"schema": {"type": "string", "format": "binary"}},
            "text/plain": {"schema": {"type": "string"}},
        },
        "headers": {"Content-Disposition": {"description": "attachment; filename=labels.pdf (or labels.zpl)",
                                            "schema": {"type": "string"}}},
    },
    **problems(400, 404, 422),
}


def _hidden_case(session: Session, case_code: str, hidden: set[str], field: str) -> None:
    """A 404 for a case whose donor the user is never shown (as for a case that does not exist)."""
    with _named(case=field):
        autopsy = get_autopsy(session, case_code)
    donor = session.get(Donor, autopsy.donor_id)
    if donor is not None and donor.code in hidden:
        raise hidden_or_missing(case_code, "autopsy", field)


@router.post("/labels", tags=["labels"], responses=_LABEL_RESPONSES, response_class=Response,
             summary="Print labels")
def print_labels(token: Token, body: LabelsBody) -> Response:
    """Specimen labels (DataMatrix plus code, donor, site, format and date) as a PDF sheet or ZPL, through the
    labels service `biobank labels` calls: for `codes`, every specimen of a `case`, or placeholders for a `planned`
    case's regions not yet collected (exactly one of the three). Writes nothing. Labels of a donor who withdrew
    consent are a 404 for anyone but an administrator, as for an unknown code."""
    from biobank.labels import service as labels

    chosen = [name for name in ("codes", "case", "planned") if getattr(body, name)]
    with acting(token) as (session, user):
        if len(chosen) != 1:
            raise invalid(chosen[1] if len(chosen) > 1 else "codes", None,
                          "give specimen codes, or a case, or a planned case (exactly one)")
        hidden = core_reads.hidden_donors(session, user.role)
        if body.planned:
            _hidden_case(session, body.planned, hidden, "planned")
            with _named(case="planned"):
                items = labels.planned_labels(session, body.planned)
        else:
            if body.case:
                _hidden_case(session, body.case, hidden, "case")
            items = labels.labels_for(session, body.codes or labels.case_codes(session, body.case or ""))
            shown = next((item for item in items if item.donor in hidden), None)
            if shown is not None:
                raise hidden_or_missing(shown.code, "specimen")
        with _named(format="label_format"):
            data = labels.render(items, body.label_format, zpl=body.format == "zpl")
    return Response(data, media_type=_LABEL_MEDIA[body.format],
                    headers={"Content-Disposition": f'attachment; filename="labels.{body.format}"'})
