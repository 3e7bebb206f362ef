"""The loop back from sequencing (DOMAIN.md §6, issue 18 item 5): runs, per-sample results with their files, the QC
verdict, and a replacement proposed for a sample that failed.

Who: recording runs, results and outcomes is data entry of the sequencing core's report, so a technician (or a
service account with the technician role: a pipeline posting its results), an administrator or a PI may do it
(``Action.enter`` or ``Action.plan``); a viewer or coordinator may not. No new role action is needed.

States: a sample of a submitted plan is ``submitted`` until a result comes back; a result starts ``sequenced`` and
moves once, to ``passed`` or ``failed_qc`` (no other move: a sample that failed is sequenced again as a new result of
another run, or replaced through ``plan amend``).

Automatic QC (:func:`judge_result`): contamination above ``sequencing_max_contamination_pct`` fails; for a DNA assay,
mean coverage below ``sequencing_min_coverage_fraction`` x the sample's target depth (its own, else the plan's) fails.
**Choice:** when the result carries every measure the judgement needs (contamination, and coverage with a known
target depth for DNA), the verdict is set at once (``passed`` or ``failed_qc``, the reasons in ``qc_note``). When a
measure is missing the result stays ``sequenced`` with a note saying what is missing, and a person decides with
:func:`set_outcome`. ``auto_qc=False`` leaves every verdict to a person (who may then pass a sample the thresholds
would fail, with a note).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from biobank.config import Settings, get_settings
from biobank.domain.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
    invalid,
)
from biobank.domain.timing import as_utc
from biobank.models import Specimen, User
from biobank.models.audit import act_as, add_as
from biobank.models.plans import (
    DNA_ASSAYS,
    AnalysisPlan,
    PlanRole,
    PlanSpecimen,
    PlanStatus,
    SampleOutcome,
    SequencingFile,
    SequencingResult,
    SequencingRun,
)
from biobank.queries import exports as query
from biobank.services.auth import Action, can
from biobank.services.checks import check_time
from biobank.services.lookup import by_code
from biobank.services.plan_rules import UNAVAILABLE, InputRequirements, involvement, resolve_lineage
from biobank.services.planning import _germline, _Judge, _tumour_regions, get_plan, lesion_facts

#: Checksum kinds and the length of their hexadecimal digest.
CHECKSUM_LENGTH = {"md5": 32, "sha256": 64}
_HEX = re.compile(r"^[0-9a-f]+$")
#: Moves a person may make (``set_outcome``).
FINAL_OUTCOMES = (SampleOutcome.passed.value, SampleOutcome.failed_qc.value)
NOTE_LENGTH = 500
#: How a file is typed on one line (CLI ``--file``, the page's files box).
FILE_FORMAT = "URI:md5:HEX[:SIZE[:KIND]] or URI:sha256:HEX[:SIZE[:KIND]]"


@dataclass(frozen=True)
class FileInput:
    """One data file of a result: where it lives, its checksum and (optionally) its size and kind."""

    uri: str
    checksum_kind: str
    checksum: str
    size_bytes: int | None = None
    file_kind: str | None = None


@dataclass(frozen=True)
class Verdict:
    """What the automatic QC made of a result: ``passed``, ``failed_qc`` or None (cannot judge), and why."""

    outcome: str | None
    reasons: tuple[str, ...]

    @property
    def note(self) -> str:
        return "; ".join(self.reasons)[:NOTE_LENGTH]


@dataclass(frozen=True)
class Replacement:
    """The next best candidate for a failed sample (or None with the reason there is none)."""

    plan_code: str
    failed_specimen_code: str
    role: str
    specimen_code: str | None
    region_code: str | None
    lesion_code: str | None
    reason: str

    def to_record(self) -> dict[str, Any]:
        return {
            "plan_code": self.plan_code,
            "failed_specimen_code": self.failed_specimen_code,
            "role": self.role,
            "specimen_code": self.specimen_code,
            "region_code": self.region_code,
            "lesion_code": self.lesion_code,
            "reason": self.reason,
        }


# ----------------------------------------------------------------------------------------------------- checks


def _require_recorder(actor: User | None) -> User:
    """Technicians, administrators (``enter``) and PIs (``plan``) record sequencing results."""
    if actor is None:
        raise PermissionDeniedError("record sequencing: no user is signed in", field="user")
    if can(actor, Action.enter) or can(actor, Action.plan):
        return actor
    if not actor.is_active:
        raise PermissionDeniedError(f"record sequencing: user {actor.username!r} is disabled")
    raise PermissionDeniedError(
        f"record sequencing: user {actor.username!r} has role {actor.role!r}; this needs one of: admin, pi, "
        "technician",
        field="role",
        value=actor.role,
    )


def _text(field: str, value: str | None, length: int, *, required: bool = False) -> str | None:
    text = " ".join(value.split()) if isinstance(value, str) else value
    if not text:
        if required:
            raise invalid(field, value, "must not be blank")
        return None
    if len(text) > length:
        raise invalid(field, value, f"is {len(text):,} characters long; at most {length}")
    return text


def _number(field: str, value: float | None, *, low: float, high: float | None = None,
            low_open: bool = False) -> float | None:
    """A finite number within ``[low, high]`` (``(low, high]`` with ``low_open``), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(field, value, "must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise invalid(field, value, "must be a finite number")
    if number < low or (low_open and number == low):
        raise invalid(field, value, f"must be more than {low:g}" if low_open else f"cannot be below {low:g}")
    if high is not None and number > high:
        raise invalid(field, value, f"cannot be above {high:g}")
    return number


#: Plausibility bounds: no sample yields a trillion reads or a petabyte file, and no assay reaches 100,000x.
MAX_READS = 10**12
MAX_FILE_BYTES = 10**15
MAX_COVERAGE = 100_000.0


def _count(field: str, value: int | float | None, *, high: int = MAX_READS) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > high:
        raise invalid(field, value, f"cannot be above {high:,}")
    number = _number(field, value, low=0, high=high)
    if number is None:
        return None
    if not number.is_integer():
        raise invalid(field, value, "must be a whole number")
    return int(number)


def check_measures(
    *,
    read_count: int | float | None = None,
    mean_coverage: float | None = None,
    contamination_pct: float | None = None,
    purity: float | None = None,
    ploidy: float | None = None,
) -> dict[str, Any]:
    """A result's measures checked (finite, in range: reads a whole number, contamination 0-100 %, purity 0-1,
    ploidy above 0 and at most 10), by field name."""
    return {
        "read_count": _count("read_count", read_count),
        "mean_coverage": _number("mean_coverage", mean_coverage, low=0, high=MAX_COVERAGE),
        "contamination_pct": _number("contamination_pct", contamination_pct, low=0, high=100),
        "purity": _number("purity", purity, low=0, high=1),
        "ploidy": _number("ploidy", ploidy, low=0, high=10, low_open=True),
    }


def check_run_id(run_id: str | None) -> str:
    """A run id: not blank, no spaces, at most 120 characters."""
    text = _text("run_id", run_id, 120, required=True)
    assert text is not None
    if any(ch.isspace() for ch in text):
        raise invalid("run_id", run_id, "must not contain spaces")
    return text


def check_file(item: FileInput | Sequence[Any], *, where: str = "") -> FileInput:
    """A file's URI (not blank), checksum kind (md5 or sha256) and checksum (32 or 64 hexadecimal digits), size (a
    whole number of bytes, not negative) and kind; the checksum is stored in lower case."""
    f = item if isinstance(item, FileInput) else FileInput(*item)
    row = where or None
    uri = f.uri.strip() if isinstance(f.uri, str) else ""
    if not uri:
        raise invalid("uri", f.uri, "must not be blank: give where the file lives", row=row)
    if len(uri) > 1000 or any(ch.isspace() for ch in uri):
        raise invalid("uri", f.uri, "must be one URI or path without spaces, at most 1,000 characters", row=row)
    kind = (f.checksum_kind or "").strip().lower()
    if kind not in CHECKSUM_LENGTH:
        raise invalid("checksum_kind", f.checksum_kind, "must be one of: md5, sha256", row=row)
    digest = (f.checksum or "").strip().lower()
    if len(digest) != CHECKSUM_LENGTH[kind] or not _HEX.match(digest):
        raise invalid("checksum", f.checksum, f"must be {CHECKSUM_LENGTH[kind]} hexadecimal digits for {kind}",
                      row=row)
    try:
        size = _count("size_bytes", f.size_bytes, high=MAX_FILE_BYTES)
    except ValidationError as exc:  # name the file too
        raise invalid("size_bytes", f.size_bytes, exc.reason, row=row) from exc
    file_kind = _text("file_kind", f.file_kind, 20)
    return FileInput(uri, kind, digest, size, file_kind)


def parse_file(text: str) -> FileInput:
    """``URI:KIND:CHECKSUM[:SIZE[:FILE_KIND]]``, read from the right so a URI may hold colons (``s3://...``)."""
    value = text.strip()
    parts = value.split(":")
    for kind_at in range(len(parts) - 2, 0, -1):
        if parts[kind_at].lower() in CHECKSUM_LENGTH:
            uri = ":".join(parts[:kind_at])
            rest = parts[kind_at + 2:]
            if len(rest) > 2:
                continue
            size: int | None = None
            if rest and rest[0]:
                if not rest[0].isdigit():
                    raise invalid("size_bytes", rest[0], "must be a whole number of bytes")
                size = int(rest[0])
            file_kind = rest[1] if len(rest) > 1 and rest[1] else None
            return check_file(
                FileInput(uri, parts[kind_at], parts[kind_at + 1], size, file_kind)
            )
    raise invalid("file", text, f"must be {FILE_FORMAT}")


# ------------------------------------------------------------------------------------------------------- runs


def get_run(session: Session, run_id: str) -> SequencingRun:
    run = session.exec(select(SequencingRun).where(SequencingRun.run_id == (run_id or "").strip())).first()
    if run is None:
        raise NotFoundError(f"sequencing run {run_id!r} not found; record the run first (sequencing run)",
                            field="run_id", value=run_id)
    return run


def record_run(
    session: Session,
    *,
    actor: User | None,
    run_id: str,
    instrument: str,
    flow_cell: str | None = None,
    flow_cell_id: str | None = None,
    centre: str | None = None,
    started_at: datetime | None = None,
    completed_at: datetime | None = None,
) -> SequencingRun:
    """A sequencing run at a core (its own run id, unique), on an instrument and flow cell."""
    _require_recorder(actor)
    run_text = check_run_id(run_id)
    instrument_text = _text("instrument", instrument, 80, required=True)
    flow_cell_text = _text("flow_cell", flow_cell, 40)
    flow_cell_id_text = _text("flow_cell_id", flow_cell_id, 60)
    centre_text = _text("centre", centre, 120)
    check_time("started_at", started_at)
    check_time("completed_at", completed_at, after=[("started_at", started_at)])
    if session.exec(select(SequencingRun.id).where(SequencingRun.run_id == run_text)).first() is not None:
        raise ConflictError(f"run_id={run_text!r}: this run is already recorded", field="run_id", value=run_text)
    return add_as(session, actor, SequencingRun(
        run_id=run_text, instrument=instrument_text or "", flow_cell=flow_cell_text, flow_cell_id=flow_cell_id_text,
        centre=centre_text, started_at=started_at, completed_at=completed_at,
    ))


# ---------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class _Sample:
    plan: AnalysisPlan
    row: PlanSpecimen
    specimen: Specimen

    @property
    def assay(self) -> str:
        return self.row.assay or self.plan.assay

    @property
    def target_depth(self) -> float | None:
        return self.row.target_depth if self.row.target_depth is not None else self.plan.target_depth


def _sample(session: Session, plan_code: str, specimen_code: str) -> _Sample:
    plan = get_plan(session, plan_code)
    specimen = by_code(session, Specimen, Specimen.code, specimen_code, what="specimen", field="specimen")
    row = session.exec(
        select(PlanSpecimen).where(PlanSpecimen.plan_id == plan.id, PlanSpecimen.specimen_id == specimen.id,
                                   col(PlanSpecimen.included).is_(True))
    ).first()
    if row is None:
        raise invalid("specimen", specimen.code, f"is not a sample of plan {plan.code}")
    return _Sample(plan, row, specimen)


def judge_result(
    *,
    assay: str,
    target_depth: float | None,
    mean_coverage: float | None,
    contamination_pct: float | None,
    settings: Settings | None = None,
) -> Verdict:
    """The automatic QC verdict of a result (pure): failed when contamination is above the limit or, for a DNA
    assay, coverage is below the fraction of the target depth; passed when every measure needed is there and good;
    None (a person decides) when a measure is missing."""
    settings = settings or get_settings()
    failures: list[str] = []
    missing: list[str] = []
    limit = settings.sequencing_max_contamination_pct
    if contamination_pct is None:
        missing.append("no contamination recorded")
    elif contamination_pct > limit:
        failures.append(f"contamination {contamination_pct:g} % above {limit:g} %")
    if assay in DNA_ASSAYS:
        if target_depth is None:
            missing.append("no target depth to judge coverage against")
        elif mean_coverage is None:
            missing.append("no mean coverage recorded")
        else:
            least = settings.sequencing_min_coverage_fraction * target_depth
            if mean_coverage < least:
                failures.append(
                    f"mean coverage {mean_coverage:g}x below {least:g}x "
                    f"({settings.sequencing_min_coverage_fraction:g} of the {target_depth:g}x target)"
                )
    if failures:
        return Verdict(SampleOutcome.failed_qc.value, tuple(["automatic QC failed: " + "; ".join(failures)]))
    if missing:
        return Verdict(None, tuple(["automatic QC not judged: " + "; ".join(missing)]))
    return Verdict(SampleOutcome.passed.value, ("automatic QC passed",))


def record_result(
    session: Session,
    *,
    actor: User | None,
    plan_code: str,
    specimen_code: str,
    run_id: str,
    read_count: int | None = None,
    mean_coverage: float | None = None,
    contamination_pct: float | None = None,
    purity: float | None = None,
    ploidy: float | None = None,
    files: Sequence[FileInput | Sequence[Any]] = (),
    auto_qc: bool = True,
) -> SequencingResult:
    """What run ``run_id`` gave for a sample of a submitted plan, with its files; judged at once when it can be
    (module docstring). Everything is checked before anything is written."""
    _require_recorder(actor)
    sample = _sample(session, plan_code, specimen_code)
    plan = sample.plan
    if plan.status != PlanStatus.submitted:
        raise ConflictError(
            f"plan {plan.code} is {plan.status}; results are recorded only for a submitted plan",
            field="status", value=plan.status,
        )
    run = get_run(session, run_id)
    collected = sample.specimen.collected_at
    for what, when in (("started", run.started_at), ("completed", run.completed_at)):
        if when is not None and collected is not None and as_utc(when) < as_utc(collected):
            raise invalid("run_id", run.run_id, f"{what} before {sample.specimen.code} was collected; check the run")
    measures = check_measures(read_count=read_count, mean_coverage=mean_coverage,
                              contamination_pct=contamination_pct, purity=purity, ploidy=ploidy)
    reads, coverage, contamination = measures["read_count"], measures["mean_coverage"], measures["contamination_pct"]
    purity_value, ploidy_value = measures["purity"], measures["ploidy"]
    checked = [check_file(f, where=f"file {i}") for i, f in enumerate(files, start=1)]
    uris = [f.uri for f in checked]
    duplicate = next((u for u in uris if uris.count(u) > 1), None)
    if duplicate is not None:
        raise invalid("uri", duplicate, "is listed twice")
    existing = session.exec(
        select(SequencingResult.id).where(SequencingResult.plan_specimen_id == sample.row.id,
                                          SequencingResult.run_id == run.id)
    ).first()
    if existing is not None:
        raise ConflictError(
            f"run {run.run_id}: a result for {sample.specimen.code} in plan {plan.code} is already recorded",
            field="run_id", value=run.run_id,
        )
    outcome, note = SampleOutcome.sequenced.value, None
    if auto_qc:
        verdict = judge_result(assay=sample.assay, target_depth=sample.target_depth, mean_coverage=coverage,
                               contamination_pct=contamination)
        outcome, note = verdict.outcome or SampleOutcome.sequenced.value, verdict.note
    assert sample.row.id is not None and run.id is not None
    result = add_as(session, actor, SequencingResult(
        plan_specimen_id=sample.row.id, run_id=run.id, outcome=outcome, read_count=reads, mean_coverage=coverage,
        contamination_pct=contamination, purity=purity_value, ploidy=ploidy_value, qc_note=note,
    ))
    assert result.id is not None
    for f in checked:
        session.add(SequencingFile(result_id=result.id, uri=f.uri, file_kind=f.file_kind,
                                   checksum_kind=f.checksum_kind, checksum=f.checksum, size_bytes=f.size_bytes))
    session.flush()
    return result


def set_outcome(
    session: Session,
    *,
    actor: User | None,
    plan_code: str,
    specimen_code: str,
    run_id: str,
    outcome: str,
    note: str | None = None,
) -> SequencingResult:
    """A person's QC verdict on a ``sequenced`` result: ``passed`` or ``failed_qc`` (no other move; a judged result
    is final). ``failed_qc`` needs a note saying why."""
    _require_recorder(actor)
    if outcome not in FINAL_OUTCOMES:
        raise invalid("outcome", outcome, f"must be one of: {', '.join(FINAL_OUTCOMES)}")
    note_text = _text("note", note, NOTE_LENGTH)
    if outcome == SampleOutcome.failed_qc and not note_text:
        raise invalid("note", note, "must say why the sample failed QC")
    sample = _sample(session, plan_code, specimen_code)
    run = get_run(session, run_id)
    result = session.exec(
        select(SequencingResult).where(SequencingResult.plan_specimen_id == sample.row.id,
                                       SequencingResult.run_id == run.id)
    ).first()
    if result is None:
        raise NotFoundError(
            f"no result of run {run.run_id} for {sample.specimen.code} in plan {sample.plan.code}",
            field="run_id", value=run.run_id,
        )
    if result.outcome != SampleOutcome.sequenced:
        raise ConflictError(
            f"{sample.specimen.code} in run {run.run_id} is already {result.outcome}; only a sequenced result "
            "can be judged (sequence it again in another run, or amend the plan)",
            field="outcome", value=result.outcome,
        )
    act_as(session, actor)
    result.outcome = outcome
    result.qc_note = note_text or result.qc_note
    session.add(result)
    session.flush()
    return result


# ------------------------------------------------------------------------------------------------ replacement


def propose_replacement(session: Session, plan_code: str, specimen_code: str) -> Replacement:
    """For a sample whose latest result failed QC: the next best candidate of the same region (same sampling site,
    else another region of the same lesion) and role, available and not already in the plan, ranked as the planner
    ranks (:class:`biobank.services.planning._Judge`), with its reason; or no candidate and why. Reads only."""
    sample = _sample(session, plan_code, specimen_code)
    plan, row = sample.plan, sample.row
    latest = session.exec(
        select(SequencingResult.outcome).where(SequencingResult.plan_specimen_id == row.id)
        .order_by(col(SequencingResult.id).desc())
    ).first()
    if latest != SampleOutcome.failed_qc:
        raise ConflictError(
            f"{sample.specimen.code} in plan {plan.code} is {latest or plan.status}; a replacement is proposed "
            "only for a sample that failed QC",
            field="specimen", value=sample.specimen.code,
        )
    in_plan = set(session.exec(
        select(PlanSpecimen.specimen_id).where(PlanSpecimen.plan_id == plan.id, col(PlanSpecimen.included).is_(True))
    ).all())
    records = resolve_lineage(query.specimen_records(session, donor_ids=[row.donor_id]))
    failed = next(r for r in records if r["specimen_id"] == row.specimen_id)
    candidates = [r for r in records if r["specimen_id"] not in in_plan and r["status"] not in UNAVAILABLE]
    settings = get_settings()
    judge = _Judge(sample.assay, sample.target_depth, InputRequirements.from_settings(), settings.pmi_limit_hours)

    def answer(choice: dict[str, Any] | None, reason: str) -> Replacement:
        return Replacement(
            plan.code, sample.specimen.code, row.role,
            None if choice is None else str(choice["specimen_code"]),
            None if choice is None else str(choice["region_code"]),
            None if choice is None or not isinstance(choice.get("lesion_code"), str) else choice["lesion_code"],
            reason,
        )

    if row.role == PlanRole.germline_normal:
        lesions = lesion_facts(session, [row.donor_id])
        germline = _germline(candidates, judge, involvement(records, lesions).get(str(failed["donor_code"]), []))
        if germline is None:
            return answer(None, "no other germline blood or distant normal tissue is available")
        pick = next(r for r in candidates if r["specimen_id"] == germline.specimen_id)
        return answer(pick, germline.reason)
    if row.role != PlanRole.tumour:
        return answer(None, f"no automatic replacement for role {row.role}: choose one by amending the plan")
    regions, _acid = _tumour_regions(candidates, judge)
    same_site = [r for rs in regions.values() for r in rs if r["sampling_site_id"] == failed["sampling_site_id"]]
    lesion = failed.get("lesion_code")
    same_lesion = [
        r for rs in regions.values() for r in rs
        if isinstance(lesion, str) and r.get("lesion_code") == lesion and r["sampling_site_id"] != failed["sampling_site_id"]
    ]
    for pool, where in ((same_site, f"same region {failed['region_code']}"),
                        (same_lesion, f"another region of lesion {lesion}")):
        usable = sorted((r for r in pool if not judge.blockers(r)), key=judge.tumour_key)
        if usable:
            best = usable[0]
            bits = [judge.describe(best)]
            pct = best.get("tumour_cellularity_pct")
            bits.append(f"cellularity {pct:g} %" if isinstance(pct, int | float) and not math.isnan(pct)
                        else "cellularity not recorded")
            bits.extend(judge.details(best))
            return answer(best, f"{where}: " + ", ".join(bits) + f"; best of {len(usable)}")
    return answer(None, f"no other usable piece of region {failed['region_code']}"
                  + (f" or lesion {lesion}" if isinstance(lesion, str) else ""))


def failed_replacements(session: Session, plan_code: str) -> list[Replacement]:
    """A replacement proposal for every sample of the plan whose latest result failed QC."""
    from biobank.queries.sequencing import sample_states

    plan = get_plan(session, plan_code)
    assert plan.id is not None
    states = sample_states(session, plan_ids=[plan.id])
    failed = states[states["state"] == SampleOutcome.failed_qc.value]
    return [propose_replacement(session, plan.code, str(code)) for code in failed["specimen_code"]]


__all__ = [
    "CHECKSUM_LENGTH",
    "FileInput",
    "Replacement",
    "Verdict",
    "check_file",
    "check_measures",
    "check_run_id",
    "failed_replacements",
    "get_run",
    "judge_result",
    "parse_file",
    "propose_replacement",
    "record_result",
    "record_run",
    "set_outcome",
]
