"""Derived models: organoids, PDX and cell lines from a viable specimen; passages as a tree; QC; status.

Every function validates everything before it writes and never commits (the caller's session scope does). The
database holds the same rules where it can: named CHECKs, the composite foreign keys that keep a model on its
source's donor and a parent passage on its model, and triggers for the viable source, the passage numbering, the
status transitions and the donor of passage specimens (migration 0003).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

from sqlalchemy import func
from sqlmodel import Session, select

from biobank.config import Settings, get_settings
from biobank.domain.codes import compact, require_safe
from biobank.domain.errors import ConflictError, ValidationError, invalid
from biobank.domain.vocab import (
    FORMAT_ABBREVIATION,
    CustodyKind,
    Fixative,
    MaterialType,
    QuantityUnit,
    SpecimenStatus,
    StorageFormat,
)
from biobank.domain.vocab_derived import (
    KIND_ABBREVIATION,
    STATUS_TRANSITIONS,
    VIABLE_SOURCE_FORMATS,
    EngraftmentType,
    GrowthProperties,
    IdentityMethod,
    Matrix,
    ModelKind,
    ModelStatus,
    MycoplasmaResult,
    QcRequirement,
    TumourPreparation,
)
from biobank.models import (
    DerivedModel,
    Donor,
    ModelPassage,
    ModelQC,
    SamplingSite,
    Specimen,
    User,
)
from biobank.models.audit import act_as, add_as
from biobank.models.base import utcnow
from biobank.services.auth import Action, require
from biobank.services.checks import check_enum, check_order, check_range, check_time
from biobank.services.custody import record_event
from biobank.services.donors import require_consent
from biobank.services.inputs import MAX_PIECES, ModelCreate, ModelQCCreate, PassageCreate, check_quantity
from biobank.services.lookup import by_code
from biobank.services.specimens import TAKEABLE, get_specimen

#: The consent scope a derived model needs (DOMAIN.md §2 "Consent").
MODEL_SCOPE = "model_derivation"
#: Materials a passage may produce, and the formats that make sense for each.
PASSAGE_MATERIALS: dict[str, frozenset[str]] = {
    MaterialType.cells: frozenset({StorageFormat.viable_cryo, StorageFormat.frozen, StorageFormat.fresh}),
    MaterialType.tissue: frozenset(
        {
            StorageFormat.snap_frozen,
            StorageFormat.ffpe,
            StorageFormat.oct,
            StorageFormat.rnalater,
            StorageFormat.viable_cryo,
        }
    ),
    MaterialType.dna: frozenset({StorageFormat.frozen}),
    MaterialType.rna: frozenset({StorageFormat.frozen}),
}
PDX_FIELDS = (
    "host_strain_name",
    "host_strain_nomenclature",
    "engraftment_site",
    "engraftment_type",
    "tumour_preparation",
    "humanisation_type",
)
CULTURE_FIELDS = ("medium", "matrix", "growth_properties")


def _midday_or_now(day: date) -> datetime:
    """The time a custody event of a day-only record gets: midday of that day, or now if midday is still ahead."""
    return min(datetime.combine(day, time(12), UTC), utcnow())


def get_model(session: Session, code: str, *, for_update: bool = False) -> DerivedModel:
    """The model with this code, typed in any letter case."""
    return by_code(session, DerivedModel, DerivedModel.code, code, what="model", field="model", for_update=for_update)


def get_passage(session: Session, model: DerivedModel, label: str) -> ModelPassage:
    """The model's passage with this label (``p2`` finds ``P2``)."""
    return by_code(session, ModelPassage, ModelPassage.label, label, what=f"model {model.code}: passage",
                   field="passage", where=[ModelPassage.model_id == model.id])


def model_donor(session: Session, model: DerivedModel) -> Donor:
    donor = session.get(Donor, model.donor_id)
    assert donor is not None  # the foreign key guarantees it
    return donor


def _text(value: str | None) -> str | None:
    """Blank text is no text (stored as NULL)."""
    return value.strip() if value is not None and value.strip() else None


def next_model_code(session: Session, source: Specimen, kind: str) -> str:
    """``RA0001-L02A-ORG1``: donor, region, kind and a number counting models of that kind from the region."""
    site = session.get(SamplingSite, source.sampling_site_id)
    donor = session.get(Donor, source.donor_id)
    assert site is not None and donor is not None
    count = session.exec(
        select(func.count())
        .select_from(DerivedModel)
        .join(Specimen, Specimen.id == DerivedModel.source_specimen_id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
        .where(Specimen.sampling_site_id == site.id, DerivedModel.kind == kind)
    ).one()
    prefix = f"{compact(donor.code)}-{compact(site.code)}-{KIND_ABBREVIATION[ModelKind(kind)]}"
    number = int(count) + 1
    while (
        session.exec(select(DerivedModel.id).where(DerivedModel.code == f"{prefix}{number}")).first()
        is not None
    ):
        number += 1
    return f"{prefix}{number}"


def create_model(session: Session, *, actor: User | None, data: ModelCreate) -> DerivedModel:
    """Start a model from a fresh or viable cryopreserved specimen; needs the donor's consent to model derivation.

    ``quantity_used`` (in the source's unit) is taken from the source's remaining quantity, as for a derivative.
    """
    require(actor, Action.enter)
    source_code, kind, initiated_on, quantity_used = data.source_code, data.kind, data.initiated_on, data.quantity_used
    code, humanised = data.code, data.humanised
    check_enum("kind", kind, ModelKind)
    source = get_specimen(session, source_code, for_update=True)
    donor = session.get(Donor, source.donor_id)
    assert donor is not None
    if source.storage_format not in VIABLE_SOURCE_FORMATS:
        raise invalid(
            "source",
            source_code,
            f"is {source.storage_format}; a model needs living material (fresh or viable_cryo)",
        )
    if source.status not in TAKEABLE:
        raise invalid("source", source_code, f"specimen is {source.status}; nothing can be taken from it")
    require_consent(session, donor, MODEL_SCOPE)
    check_time("initiated_on", initiated_on, after=[("the source's collection", source.collected_at)])
    if quantity_used is not None:
        if quantity_used < 0:
            raise invalid("quantity_used", quantity_used, "cannot be negative")
        if quantity_used > source.quantity_remaining + 1e-9:
            raise invalid(
                "quantity_used",
                quantity_used,
                f"only {source.quantity_remaining:g} {source.unit} of {source.code} remain",
            )
    values = {
        name: _text(value)
        for name, value in data.model_dump(include={*CULTURE_FIELDS, *PDX_FIELDS, "humanisation_type"}).items()
    }
    check_enum("engraftment_type", values["engraftment_type"], EngraftmentType, nullable=True)
    check_enum("tumour_preparation", values["tumour_preparation"], TumourPreparation, nullable=True)
    check_enum("matrix", values["matrix"], Matrix, nullable=True)
    check_enum("growth_properties", values["growth_properties"], GrowthProperties, nullable=True)
    if kind == ModelKind.pdx:
        if values["host_strain_name"] is None:
            raise invalid("host_strain_name", data.host_strain_name, "a PDX names its host strain (e.g. NSG)")
        for name in CULTURE_FIELDS:
            if values[name] is not None:
                raise invalid(name, values[name], "applies to organoids and cell lines, not to a PDX")
    else:
        for name in PDX_FIELDS:
            if values[name] is not None:
                raise invalid(name, values[name], f"applies to a PDX, not to a {kind}")
        if humanised:
            raise invalid("humanised", humanised, f"only a PDX host is humanised, not a {kind}")
    if values["humanisation_type"] is not None and not humanised:
        raise invalid(
            "humanisation_type", values["humanisation_type"], "given for a host that is not humanised"
        )
    if code is None:
        code = next_model_code(session, source, kind)
    require_safe("code", code)
    if session.exec(select(DerivedModel.id).where(DerivedModel.code == code)).first() is not None:
        raise ConflictError(f"code={code!r}: a model with this code already exists", field="code", value=code)

    act_as(session, actor)
    model = DerivedModel(
        code=code,
        kind=str(kind),
        donor_id=donor.id,  # type: ignore[arg-type]  # the row was flushed, so its primary key is set
        source_specimen_id=source.id,  # type: ignore[arg-type]  # the row was flushed, so its primary key is set
        status=ModelStatus.initiated.value,
        initiated_on=initiated_on,
        humanised=bool(humanised),
        notes=_text(data.notes),
        **values,  # type: ignore[arg-type]  # a dict of this table's own columns
    )
    session.add(model)
    if quantity_used:
        source.quantity_remaining = max(source.quantity_remaining - quantity_used, 0.0)
        if source.quantity_remaining == 0:
            source.status = SpecimenStatus.depleted.value
        source.version += 1
    session.flush()
    used = f"; used {quantity_used:g} {source.unit}" if quantity_used else ""
    record_event(
        session,
        specimen=source,
        kind=CustodyKind.derived,
        actor=actor,
        at=_midday_or_now(initiated_on),
        note=f"model {model.code} ({kind}) initiated{used}",
    )
    session.flush()
    return model


def _passage_label(session: Session, model: DerivedModel, number: int) -> str:
    """``P2`` for the first passage at that number; a split line gets ``P2-B``, ``P2-C``..."""
    taken = set(session.exec(select(ModelPassage.label).where(ModelPassage.model_id == model.id)).all())
    label = f"P{number}"
    letter = ord("B")
    while label in taken:
        label = f"P{number}-{chr(letter)}"
        letter += 1
    return label


def record_passage(session: Session, *, actor: User | None, data: PassageCreate) -> ModelPassage:
    """P0 (no parent) is the first engraftment or plating; a later passage names its parent, possibly a split."""
    require(actor, Action.enter)
    model_code, passaged_on, parent_label = data.model_code, data.passaged_on, data.parent_label
    label, mouse_or_vessel_id, latency_days = data.label, data.mouse_or_vessel_id, data.latency_days
    doubling_time_hours, notes = data.doubling_time_hours, data.notes
    model = get_model(session, model_code, for_update=True)
    model_code = model.code
    if model.status in (ModelStatus.failed, ModelStatus.discontinued):
        raise invalid("model", model_code, f"model is {model.status}; no passage can be recorded")
    check_time("passaged_on", passaged_on, after=[("the model's initiation", model.initiated_on)])
    parent: ModelPassage | None = None
    if parent_label is not None:
        parent = get_passage(session, model, parent_label)
        check_time("passaged_on", passaged_on, after=[(f"its parent passage {parent.label}", parent.passaged_on)])
    number = parent.number + 1 if parent is not None else 0
    if latency_days is not None:
        if model.kind != ModelKind.pdx:
            raise invalid(
                "latency_days", latency_days, f"latency applies to a PDX; give a {model.kind} a doubling time"
            )
        if latency_days < 0:
            raise invalid("latency_days", latency_days, "cannot be negative")
    if doubling_time_hours is not None:
        if model.kind == ModelKind.pdx:
            raise invalid(
                "doubling_time_hours", doubling_time_hours, "a PDX passage records its latency in days"
            )
        if doubling_time_hours <= 0:
            raise invalid("doubling_time_hours", doubling_time_hours, "must be positive")
    if label is None:
        label = _passage_label(session, model, number)
    else:
        require_safe("label", label)
        if session.exec(
            select(ModelPassage.id).where(ModelPassage.model_id == model.id, ModelPassage.label == label)
        ).first():
            raise ConflictError(
                f"model {model_code}: passage {label} already exists", field="label", value=label
            )
    passage = ModelPassage(
        model_id=model.id,  # type: ignore[arg-type]  # the row was flushed, so its primary key is set
        number=number,
        label=label,
        parent_passage_id=parent.id if parent is not None else None,
        passaged_on=passaged_on,
        mouse_or_vessel_id=_text(mouse_or_vessel_id),
        latency_days=latency_days,
        doubling_time_hours=doubling_time_hours,
        notes=_text(notes),
    )
    return add_as(session, actor, passage)


def distribute_passage(
    session: Session,
    *,
    actor: User | None,
    model_code: str,
    label: str,
    distributed_to: str,
    distributed_on: date,
) -> ModelPassage:
    """Record that a passage went to a recipient; refused once the donor withdrew (or never consented)."""
    require(actor, Action.ship)
    model = get_model(session, model_code, for_update=True)
    passage = get_passage(session, model, label)
    require_consent(session, model_donor(session, model), MODEL_SCOPE)
    recipient = _text(distributed_to)
    if recipient is None:
        raise invalid("distributed_to", distributed_to, "name the recipient")
    check_time("distributed_on", distributed_on, after=[(f"passage {passage.label}", passage.passaged_on)])
    if passage.distributed_on is not None:
        raise ConflictError(
            f"model {model_code}: passage {label} was already distributed", field="label", value=label
        )
    act_as(session, actor)
    passage.distributed_to = recipient
    passage.distributed_on = distributed_on
    session.flush()
    return passage


@dataclass(frozen=True)
class QcVerdict:
    passed: bool
    failures: tuple[str, ...] = field(default_factory=tuple)


def judge_qc(
    *,
    identity_match_pct: float | None,
    mycoplasma: str,
    mouse_content_pct: float | None,
    histology_concordant: bool | None,
    not_mouse_or_ebv_origin: bool | None,
    settings: Settings,
) -> QcVerdict:
    """Pure: a QC row passes when nothing it measured fails the thresholds of the settings."""
    failures = []
    if identity_match_pct is not None and identity_match_pct < settings.model_identity_min_pct:
        failures.append(f"identity {identity_match_pct:g} % < {settings.model_identity_min_pct:g} %")
    if mycoplasma == MycoplasmaResult.positive:
        failures.append("mycoplasma positive")
    if mouse_content_pct is not None and mouse_content_pct > settings.model_mouse_content_max_pct:
        failures.append(f"mouse content {mouse_content_pct:g} % > {settings.model_mouse_content_max_pct:g} %")
    if histology_concordant is False:
        failures.append("histology not concordant")
    if not_mouse_or_ebv_origin is False:
        failures.append("mouse or EBV origin")
    return QcVerdict(not failures, tuple(failures))


def check_passage_yield(material_type: str, storage_format: str) -> None:
    """What a passage can produce: the materials of PASSAGE_MATERIALS, each in the formats it is kept in."""
    if material_type not in PASSAGE_MATERIALS:
        raise invalid("material_type", material_type, f"a passage yields {', '.join(PASSAGE_MATERIALS)}")
    if storage_format not in PASSAGE_MATERIALS[material_type]:
        raise invalid(
            "storage_format",
            storage_format,
            f"{material_type} is kept as {', '.join(sorted(PASSAGE_MATERIALS[material_type]))}",
        )


def check_qc_results(
    *,
    identity_method: str | None,
    identity_match_pct: float | None,
    mycoplasma: str | None,
    mouse_content_pct: float | None,
    histology_concordant: bool | None,
    not_mouse_or_ebv_origin: bool | None,
) -> None:
    """A QC row measured something, and identity comes with both its method and its match."""
    if identity_match_pct is not None and identity_method is None:
        raise invalid("identity_method", None, "say whether identity was tested by STR or SNP")
    if identity_method is not None and identity_match_pct is None:
        raise invalid("identity_match_pct", None, f"give the {identity_method} match to the donor's germline")
    measured = (
        identity_match_pct is not None
        or mycoplasma not in (None, MycoplasmaResult.not_tested)
        or mouse_content_pct is not None
        or histology_concordant is not None
        or not_mouse_or_ebv_origin is not None
    )
    if not measured:
        raise invalid("qc", {}, "give at least one QC result")


def record_model_qc(session: Session, *, actor: User | None, data: ModelQCCreate) -> ModelQC:
    """QC of one tested passage: STR/SNP identity, mycoplasma, mouse content, histology, origin."""
    require(actor, Action.enter)
    model_code, passage_label, tested_on = data.model_code, data.passage_label, data.tested_on
    identity_method, identity_match_pct = data.identity_method, data.identity_match_pct
    mycoplasma, mouse_content_pct = data.mycoplasma, data.mouse_content_pct
    histology_concordant, not_mouse_or_ebv_origin = data.histology_concordant, data.not_mouse_or_ebv_origin
    notes = data.notes
    model = get_model(session, model_code)
    passage = get_passage(session, model, passage_label)
    check_enum("identity_method", identity_method, IdentityMethod, nullable=True)
    check_enum("mycoplasma", mycoplasma, MycoplasmaResult)
    check_range("identity_match_pct", identity_match_pct, 0, 100)
    check_range("mouse_content_pct", mouse_content_pct, 0, 100)
    # a culture can be overgrown by mouse feeder cells too: its mouse content is recorded and judged like a PDX's
    check_qc_results(identity_method=identity_method, identity_match_pct=identity_match_pct, mycoplasma=mycoplasma,
                     mouse_content_pct=mouse_content_pct, histology_concordant=histology_concordant,
                     not_mouse_or_ebv_origin=not_mouse_or_ebv_origin)
    check_time("tested_on", tested_on, after=[(f"passage {passage.label}", passage.passaged_on)])
    verdict = judge_qc(
        identity_match_pct=identity_match_pct,
        mycoplasma=str(mycoplasma),
        mouse_content_pct=mouse_content_pct,
        histology_concordant=histology_concordant,
        not_mouse_or_ebv_origin=not_mouse_or_ebv_origin,
        settings=get_settings(),
    )
    qc = ModelQC(
        passage_id=passage.id,  # type: ignore[arg-type]  # the row was flushed, so its primary key is set
        tested_on=tested_on,
        identity_method=identity_method,
        identity_match_pct=identity_match_pct,
        mycoplasma=str(mycoplasma),
        mouse_content_pct=mouse_content_pct,
        histology_concordant=histology_concordant,
        not_mouse_or_ebv_origin=not_mouse_or_ebv_origin,
        passed=verdict.passed,
        notes=_text(notes) or ("; ".join(verdict.failures) or None),
    )
    return add_as(session, actor, qc)


def model_qc_rows(session: Session, model: DerivedModel) -> list[tuple[ModelQC, ModelPassage]]:
    """(QC row, tested passage) of a model, oldest first."""
    rows = session.exec(
        select(ModelQC, ModelPassage)
        .join(ModelPassage, ModelPassage.id == ModelQC.passage_id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
        .where(ModelPassage.model_id == model.id)
        .order_by(ModelQC.tested_on, ModelQC.id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
    ).all()
    return [(qc, passage) for qc, passage in rows]


def qc_requirements_met(
    session: Session, model: DerivedModel, settings: Settings | None = None
) -> dict[str, bool]:
    """For each requirement the settings name: does some passage's QC satisfy it? (Mycoplasma: the latest test.)"""
    settings = settings or get_settings()
    rows = [qc for qc, _ in model_qc_rows(session, model)]
    tested = [qc for qc in rows if qc.mycoplasma != MycoplasmaResult.not_tested]
    checks = {
        QcRequirement.identity: any(
            qc.identity_match_pct is not None and qc.identity_match_pct >= settings.model_identity_min_pct
            for qc in rows
        ),
        QcRequirement.mycoplasma: bool(tested) and tested[-1].mycoplasma == MycoplasmaResult.negative,
        QcRequirement.mouse_content: any(
            qc.mouse_content_pct is not None and qc.mouse_content_pct <= settings.model_mouse_content_max_pct
            for qc in rows
        ),
        QcRequirement.histology: any(qc.histology_concordant is True for qc in rows),
        QcRequirement.origin: any(qc.not_mouse_or_ebv_origin is True for qc in rows),
    }
    return {str(name): checks[QcRequirement(name)] for name in settings.model_qc_requirements}


def set_status(
    session: Session,
    *,
    actor: User | None,
    model_code: str,
    status: str,
    on: date,
    note: str | None = None,
) -> DerivedModel:
    """Move a model along its allowed transitions; establishing needs the QC the settings require."""
    require(actor, Action.enter)
    check_enum("status", status, ModelStatus)
    model = get_model(session, model_code, for_update=True)
    current = ModelStatus(model.status)
    target = ModelStatus(status)
    allowed = STATUS_TRANSITIONS[current]
    if target not in allowed:
        options = ", ".join(sorted(s.value for s in allowed)) or "none (final)"
        raise invalid("status", status, f"model {model_code} is {current}; allowed next: {options}")
    check_time("on", on, after=[("the model's initiation", model.initiated_on)])
    if target == ModelStatus.established:
        met = qc_requirements_met(session, model)
        missing = [name for name, ok in met.items() if not ok]
        if missing:
            raise ValidationError(
                f"model {model_code}: cannot be established without passing QC: {', '.join(missing)}"
                f" (setting BIOBANK_MODEL_QC_REQUIRED={get_settings().model_qc_required!r})",
                field="status",
                value=status,
            )
        if (
            session.exec(
                select(func.count()).select_from(ModelPassage).where(ModelPassage.model_id == model.id)
            ).one()
            == 0
        ):
            raise invalid("status", status, f"model {model_code} has no passage yet")
    if (
        target in (ModelStatus.cryobanked, ModelStatus.discontinued)
        and model.established_on
    ):
        check_order("established_on", model.established_on, "on", on)
    act_as(session, actor)
    model.status = target.value
    if target == ModelStatus.established:
        model.established_on = on
    elif target == ModelStatus.failed:
        model.failed_on = on
    elif target == ModelStatus.discontinued:
        model.ended_on = on
    if note and note.strip():
        model.notes = f"{model.notes}\n{on}: {note.strip()}" if model.notes else f"{on}: {note.strip()}"
    session.flush()
    return model


def passage_specimens(
    session: Session,
    *,
    actor: User | None,
    model_code: str,
    passage_label: str,
    material_type: str,
    storage_format: str,
    quantity: float,
    unit: str,
    count: int = 1,
    at: datetime | None = None,
) -> list[Specimen]:
    """Specimens a passage produced (frozen vials, xenograft tissue, DNA): ordinary specimens with the passage as
    origin; their donor and sampling site are the source's, their parent the source specimen (lineage derivative)."""
    require(actor, Action.enter)
    model = get_model(session, model_code)
    passage = get_passage(session, model, passage_label)
    check_enum("material_type", material_type, MaterialType)
    check_enum("storage_format", storage_format, StorageFormat)
    check_enum("unit", unit, QuantityUnit)
    check_passage_yield(material_type, storage_format)
    if quantity is None:
        raise invalid("quantity", quantity, "must be positive")
    check_quantity("quantity", quantity, unit)
    if not 1 <= count <= MAX_PIECES:
        raise invalid("count", count, f"must lie between 1 and {MAX_PIECES} specimens at once")
    check_time("at", at, after=[(f"passage {passage.label}", passage.passaged_on)])
    when = at or _midday_or_now(passage.passaged_on)
    require_consent(session, model_donor(session, model), MODEL_SCOPE)
    source = session.get(Specimen, model.source_specimen_id)
    assert source is not None
    abbreviation = FORMAT_ABBREVIATION[StorageFormat(storage_format)]
    prefix = f"{model.code}-{passage.label}-{abbreviation}"
    existing = session.exec(
        select(func.count())
        .select_from(Specimen)
        .where(Specimen.passage_id == passage.id, Specimen.storage_format == storage_format)
    ).one()
    act_as(session, actor)
    made = []
    for offset in range(1, count + 1):
        specimen = Specimen(
            code=f"{prefix}{int(existing) + offset}",
            donor_id=model.donor_id,
            sampling_site_id=source.sampling_site_id,
            parent_id=source.id,
            passage_id=passage.id,
            lineage="derivative",
            material_type=str(material_type),
            storage_format=str(storage_format),
            collected_at=when,
            stabilised_at=when,
            fixative=Fixative.nbf.value if storage_format == StorageFormat.ffpe else None,
            quantity=float(quantity),
            quantity_remaining=float(quantity),
            unit=str(unit),
        )
        session.add(specimen)
        made.append(specimen)
    session.flush()
    for specimen in made:
        record_event(
            session,
            specimen=specimen,
            kind=CustodyKind.derived,
            actor=actor,
            at=when,
            note=f"from model {model.code} passage {passage.label}",
        )
    session.flush()
    return made


# --- reading -------------------------------------------------------------------------------------------------


