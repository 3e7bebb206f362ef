"""Processing work lists: a scanned rack or a pasted list of codes, and one operation applied to every specimen on it
(aliquot with the same portions, derive an extract, record QC, dispose of with a reason).

Every code is looked up first: one that names no specimen stops the list before anything is written. The operation
then runs on each specimen with the services' own rules (:mod:`biobank.services.specimens`, :func:`dispose`), each
in a savepoint, so every refusal of the list is collected, not only the first; when any specimen was refused, the
error names each code with its field and reason and the caller's unit of work writes nothing (all or nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from biobank.db.integrity import translate_integrity_error
from biobank.domain.errors import BiobankError, PermissionDeniedError, ValidationError, invalid
from biobank.domain.scanning import ScannedCodes, parse_codes
from biobank.domain.vocab import MaterialType, StorageFormat
from biobank.models import Specimen, User
from biobank.queries.cohort import resolve_specimen_code
from biobank.queries.storage import location_label
from biobank.services import specimens, storage
from biobank.services.auth import Action, require
from biobank.services.checks import check_time
from biobank.services.inputs import (
    AliquotRequest,
    DeriveRequest,
    DisposeRequest,
    ServiceInput,
    SpecimenQC,
)

#: The most specimens one work list takes (a few racks).
MAX_WORK_LIST = 1_000
#: Refusals spelled out in the message of a failed list; the error's ``problems`` hold them all.
SHOWN_PROBLEMS = 10


class Operation(StrEnum):
    aliquot = "aliquot"
    derive = "derive"
    qc = "qc"
    dispose = "dispose"


#: The input model each operation takes (built from typed values when a mapping is given).
REQUESTS: dict[Operation, type[ServiceInput]] = {
    Operation.aliquot: AliquotRequest,
    Operation.derive: DeriveRequest,
    Operation.qc: SpecimenQC,
    Operation.dispose: DisposeRequest,
}


@dataclass(frozen=True)
class Scanned:
    """One scanned code and the specimen it names (``code`` None: none)."""

    typed: str
    code: str | None = None
    material_type: str | None = None
    storage_format: str | None = None
    status: str | None = None
    quantity_remaining: float | None = None
    unit: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class WorkList:
    """What a scan names: a row per distinct code scanned, in scan order; ``duplicates`` were scanned more than once
    (as the same code in any letter case, or as a specimen's code and its barcode) and count once."""

    rows: tuple[Scanned, ...]
    duplicates: tuple[str, ...] = ()

    @property
    def codes(self) -> list[str]:
        """The specimens found, in scan order."""
        return [row.code for row in self.rows if row.code is not None]

    @property
    def missing(self) -> list[str]:
        """What was scanned but names no specimen."""
        return [row.typed for row in self.rows if row.code is None]


@dataclass(frozen=True)
class Done:
    """What the operation did to one specimen: the new specimens it made (aliquots, an extract), if any."""

    code: str
    made: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class WorkResult:
    operation: Operation
    done: tuple[Done, ...]
    duplicates: tuple[str, ...] = ()
    #: label stock (cryotube, cassette, slide) -> the new specimens to print on it, in order
    labels: dict[str, list[str]] = field(default_factory=dict)

    @property
    def new_codes(self) -> list[str]:
        return [code for done in self.done for code in done.made]


class WorkListError(ValidationError):
    """Specimens of a work list the operation was refused for: ``problems`` holds (code, error) for each."""

    def __init__(self, message: str, problems: Sequence[tuple[str, BiobankError]]) -> None:
        first = problems[0][1]
        super().__init__(message, field=first.field, value=first.value, row=problems[0][0], reason=first.reason)
        self.problems = list(problems)


def label_stock(material_type: str, storage_format: str) -> str:
    """The label stock a specimen goes on: slides for sections, cassettes for FFPE blocks, tubes otherwise."""
    if material_type == MaterialType.section:
        return "slide"
    if storage_format == StorageFormat.ffpe:
        return "cassette"
    return "cryotube"


# ------------------------------------------------------------------------------------------------ reading a scan


def look_up(session: Session, scanned: str | Iterable[str] | ScannedCodes) -> WorkList:
    """The specimens a scan or pasted list names (by code or barcode, in any letter case), each with its material,
    status, what remains and where it is; codes that name none are listed with ``code`` None."""
    parsed = scanned if isinstance(scanned, ScannedCodes) else parse_codes(scanned)
    if len(parsed.codes) > MAX_WORK_LIST:
        raise invalid("codes", f"{len(parsed.codes)} codes", f"are too many for one work list: at most {MAX_WORK_LIST:,}")
    resolved = {typed: resolve_specimen_code(session, typed) for typed in parsed.codes}
    found = {
        s.code: s
        for s in session.exec(select(Specimen).where(col(Specimen.code).in_([c for c in resolved.values() if c])))
    }
    rows: list[Scanned] = []
    duplicates = list(parsed.duplicates)
    seen: set[str] = set()
    for typed, code in resolved.items():
        if code is None:
            rows.append(Scanned(typed))
            continue
        if code in seen:  # its code and its barcode both scanned
            duplicates.append(typed)
            continue
        seen.add(code)
        specimen = found[code]
        rows.append(Scanned(typed, code, specimen.material_type, specimen.storage_format, specimen.status,
                            specimen.quantity_remaining, specimen.unit, location_label(session, specimen)))
    return WorkList(tuple(rows), tuple(duplicates))


def _codes(session: Session, scanned: str | Iterable[str] | ScannedCodes | WorkList) -> WorkList:
    """The work list of ``scanned``; an empty list, or a code that names no specimen, is refused naming it."""
    work = scanned if isinstance(scanned, WorkList) else look_up(session, scanned)
    if not work.rows:
        raise invalid("codes", "", "scan or paste at least one specimen code")
    missing = work.missing
    if len(missing) == 1:
        index = next(i for i, row in enumerate(work.rows, start=1) if row.code is None)
        raise invalid(f"codes[{index}]", missing[0], "is not the code or barcode of any specimen")
    if missing:
        raise invalid("codes", missing, "are not the codes or barcodes of any specimen")
    return work


# ------------------------------------------------------------------------------------------ applying an operation


def _request(operation: Operation, request: ServiceInput | Mapping[str, Any]) -> ServiceInput:
    model = REQUESTS[operation]
    if isinstance(request, ServiceInput):
        if not isinstance(request, model):
            raise invalid("operation", operation.value, f"takes a {model.__name__}, not a {type(request).__name__}")
        return request
    typed = {k: v for k, v in request.items() if v is not None and not (isinstance(v, str) and not v.strip())}
    return model.build(**typed)


def _run(session: Session, actor: User | None, operation: Operation, request: ServiceInput, code: str,
         at: datetime | None) -> Done:
    """The operation on one specimen, through the service that holds its rules."""
    if isinstance(request, AliquotRequest):
        children = specimens.aliquot(session, actor=actor, parent_code=code, portions=request.amounts(), at=at)
        return Done(code, tuple(c.code for c in children), f"{len(children)} aliquot(s)")
    if isinstance(request, DeriveRequest):
        child = specimens.derive(session, actor=actor, parent_code=code, at=at, **request.model_dump())
        return Done(code, (child.code,), f"{child.quantity:g} {child.unit} {child.material_type}")
    if isinstance(request, SpecimenQC):
        values = request.model_dump(exclude_none=True)
        reviewer, slide = values.pop("pathology_reviewer", None), values.pop("slide_ref", None)
        specimens.record_qc(session, actor=actor, code=code, pathology_reviewer=reviewer, slide_ref=slide, at=at,
                            **values)
        return Done(code, (), "QC recorded")
    if isinstance(request, DisposeRequest):
        storage.dispose(session, actor=actor, code=code, reason=request.reason, at=at)
        return Done(code, (), "disposed of")
    raise invalid("operation", operation.value, f"choose one of {', '.join(o.value for o in Operation)}")


def _refusal(problems: list[tuple[str, BiobankError]]) -> BiobankError:
    """One refusal as it was (its kind and field), with the code first; several as a :class:`WorkListError`."""
    if len(problems) == 1:
        code, exc = problems[0]
        return type(exc)(f"{code}: {exc}", field=exc.field, value=exc.value, row=code, reason=exc.reason)
    lines = [f"{code}: {exc}" for code, exc in problems[:SHOWN_PROBLEMS]]
    more = len(problems) - SHOWN_PROBLEMS
    tail = f"; and {more} more" if more > 0 else ""
    return WorkListError(f"{len(problems)} specimens refused, nothing was done: " + "; ".join(lines) + tail, problems)


def apply(
    session: Session,
    *,
    actor: User | None,
    codes: str | Iterable[str] | ScannedCodes | WorkList,
    operation: str,
    request: ServiceInput | Mapping[str, Any],
    at: datetime | None = None,
) -> WorkResult:
    """Apply one operation to every specimen of a work list, in the caller's unit of work: all or nothing.

    ``codes`` is the scan (text, codes, or a list already looked up); ``request`` the operation's input model
    (:data:`REQUESTS`), or the values typed for it (text is read as numbers there, each bad value refused naming its
    field). Every code is looked up before anything is written; then each specimen is processed, and every refusal
    is collected and raised together, each naming its code and field.
    """
    require(actor, Action.enter)
    if operation not in {o.value for o in Operation}:
        raise invalid("operation", operation, f"choose one of {', '.join(o.value for o in Operation)}")
    chosen = Operation(operation)
    check_time("at", at)  # the same time for every specimen: its collection is checked for each
    checked = _request(chosen, request)
    if isinstance(checked, AliquotRequest):
        checked.amounts()  # no portion given is the form's mistake, not each specimen's
    if isinstance(checked, SpecimenQC) and not checked.model_dump(exclude_none=True):
        raise invalid("qc", {}, "give at least one QC value")
    work = _codes(session, codes)
    done: list[Done] = []
    problems: list[tuple[str, BiobankError]] = []
    for code in work.codes:
        try:
            with session.begin_nested():
                done.append(_run(session, actor, chosen, checked, code, at))
        except PermissionDeniedError:
            raise
        except IntegrityError as exc:
            problems.append((code, translate_integrity_error(exc)))
        except BiobankError as exc:
            problems.append((code, exc))
    if problems:
        raise _refusal(problems)
    return WorkResult(chosen, tuple(done), work.duplicates, _labels(session, [c for d in done for c in d.made]))


def _labels(session: Session, codes: list[str]) -> dict[str, list[str]]:
    """The new specimens by the label stock each goes on, in the order they were made."""
    if not codes:
        return {}
    rows = {
        code: (material, fmt)
        for code, material, fmt in session.exec(
            select(Specimen.code, Specimen.material_type, Specimen.storage_format).where(col(Specimen.code).in_(codes))
        )
    }
    stocks: dict[str, list[str]] = {}
    for code in codes:
        stocks.setdefault(label_stock(*rows[code]), []).append(code)
    return stocks
