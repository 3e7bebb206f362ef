"""Specimens after collection: aliquots and derivatives with quantity accounting, QC, corrections, disposal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, select

from biobank.domain.codes import aliquot_code, derivative_code
from biobank.domain.errors import ConflictError, invalid
from biobank.domain.plain import plain
from biobank.domain.vocab import (
    CustodyKind,
    Lineage,
    MaterialType,
    QuantityUnit,
    SiteKind,
    SpecimenStatus,
    StorageFormat,
)
from biobank.models import Autopsy, SamplingSite, Specimen, User
from biobank.models.audit import act_as, audit_reason, record_bulk
from biobank.models.base import utcnow
from biobank.services.auth import Action, require
from biobank.services.checks import check_enum, check_order, check_time, require_aware
from biobank.services.custody import record_event
from biobank.services.inputs import DeriveRequest, SpecimenCorrection, SpecimenQC, check_quantity, limits
from biobank.services.lookup import by_code

#: Statuses from which material can still be taken.
TAKEABLE = {SpecimenStatus.available.value, SpecimenStatus.reserved.value, SpecimenStatus.in_use.value}


def get_specimen(session: Session, code: str, *, for_update: bool = False) -> Specimen:
    """The specimen with this code, typed in any letter case."""
    return by_code(session, Specimen, Specimen.code, code, what="specimen", field="code", for_update=for_update)


def _require_takeable(specimen: Specimen, field: str = "parent") -> None:
    if specimen.status not in TAKEABLE:
        raise invalid(field, specimen.code, f"specimen is {specimen.status}; nothing can be taken from it")


def _consume(specimen: Specimen, amount: float, field: str) -> None:
    """Take ``amount`` from the specimen's remaining quantity; it becomes depleted when nothing is left."""
    if amount < 0:
        raise invalid(field, amount, "cannot be negative")
    remaining = specimen.quantity_remaining - amount
    if remaining < -1e-9:
        raise invalid(
            field,
            amount,
            f"is more than what remains: only {specimen.quantity_remaining:g} {specimen.unit} of {specimen.code} remain",
        )
    specimen.quantity_remaining = max(remaining, 0.0)
    if specimen.quantity_remaining == 0:
        specimen.status = SpecimenStatus.depleted.value


def _children_count(session: Session, parent: Specimen, lineage: Lineage, material_type: str | None = None) -> int:
    statement = select(func.count()).select_from(Specimen).where(Specimen.parent_id == parent.id, Specimen.lineage == lineage)
    if material_type is not None:
        statement = statement.where(Specimen.material_type == material_type)
    return session.exec(statement).one()


def _child(parent: Specimen, **fields: Any) -> Specimen:
    """A new specimen inheriting the parent's donor, site and pre-analytical times."""
    base: dict[str, Any] = {
        "donor_id": parent.donor_id,
        "sampling_site_id": parent.sampling_site_id,
        "parent_id": parent.id,
        "collected_at": parent.collected_at,
        "stabilised_at": parent.stabilised_at,
        "fixation_end_at": parent.fixation_end_at,
        "fixative": parent.fixative,
        "decalcification_agent": parent.decalcification_agent,
        "decalcification_hours": parent.decalcification_hours,
    }
    base.update(fields)
    return Specimen(**base)


def aliquot(
    session: Session,
    *,
    actor: User | None,
    parent_code: str,
    portions: Sequence[float],
    at: datetime | None = None,
) -> list[Specimen]:
    """Split a specimen into aliquots of the same material; the parent's remaining quantity drops by their sum."""
    require(actor, Action.enter)
    require_aware("at", at)
    parent = get_specimen(session, parent_code, for_update=True)
    _require_takeable(parent)
    check_time("at", at, after=[("the parent's collection", parent.collected_at)])
    if not portions:
        raise invalid("portions", [], "give at least one aliquot quantity")
    for index, portion in enumerate(portions, start=1):
        if portion is None:
            raise invalid(f"portions[{index}]", portion, "must be positive")
        check_quantity(f"portions[{index}]", portion, parent.unit)
    act_as(session, actor)
    _consume(parent, float(sum(portions)), "portions")
    parent.version += 1  # every edit moves the version on, so a stale correction elsewhere is refused
    start = _children_count(session, parent, Lineage.aliquot)
    children = [
        _child(
            parent,
            code=aliquot_code(parent.code, start + index),
            lineage=Lineage.aliquot.value,
            material_type=parent.material_type,
            storage_format=parent.storage_format,
            quantity=float(portion),
            quantity_remaining=float(portion),
            unit=parent.unit,
            parent_quantity_used=float(portion),
            concentration_ng_ul=parent.concentration_ng_ul,
            tumour_cellularity_pct=parent.tumour_cellularity_pct,
            necrosis_pct=parent.necrosis_pct,
            er_status=parent.er_status,
            pr_status=parent.pr_status,
            her2_status=parent.her2_status,
        )
        for index, portion in enumerate(portions, start=1)
    ]
    session.add_all(children)
    session.flush()
    when = at or utcnow()
    record_event(session, specimen=parent, kind=CustodyKind.aliquoted, actor=actor, at=when,
                 note=f"{len(children)} aliquot(s): {', '.join(c.code for c in children)}")
    for child in children:
        record_event(session, specimen=child, kind=CustodyKind.aliquoted, actor=actor, at=when, note=f"from {parent.code}")
    session.flush()
    return children


#: Which derivative materials make sense from which parent materials.
DERIVABLE: dict[str, set[str]] = {
    MaterialType.tissue: {MaterialType.dna, MaterialType.rna, MaterialType.section, MaterialType.cells},
    MaterialType.whole_blood: {MaterialType.dna, MaterialType.rna, MaterialType.plasma, MaterialType.buffy_coat},
    MaterialType.buffy_coat: {MaterialType.dna, MaterialType.rna},
    MaterialType.bone_marrow: {MaterialType.dna, MaterialType.rna, MaterialType.cells, MaterialType.plasma},
    MaterialType.cells: {MaterialType.dna, MaterialType.rna},
    MaterialType.section: {MaterialType.dna, MaterialType.rna},
    MaterialType.plasma: {MaterialType.dna},  # cell-free DNA
}


def derive(
    session: Session,
    *,
    actor: User | None,
    parent_code: str,
    material_type: str,
    quantity: float | None = None,
    unit: str,
    parent_quantity_used: float,
    storage_format: str | None = None,
    concentration_ng_ul: float | None = None,
    at: datetime | None = None,
    extraction_method: str | None = None,
    extraction_kit: str | None = None,
    elution_volume_ul: float | None = None,
    yield_ng: float | None = None,
) -> Specimen:
    """Make new material (DNA, RNA, sections, cells...) from a specimen, recording what it consumed; an extract
    records its method, kit, elution volume, concentration and yield (concentration × elution volume unless
    stated), and its quantity follows from the yield (ng) or the elution volume (µl) unless stated."""
    require(actor, Action.enter)
    require_aware("at", at)
    data = DeriveRequest.build(
        material_type=material_type, unit=unit, parent_quantity_used=parent_quantity_used, quantity=quantity,
        storage_format=storage_format, extraction_method=_text(extraction_method),
        extraction_kit=_text(extraction_kit), elution_volume_ul=elution_volume_ul,
        concentration_ng_ul=concentration_ng_ul, yield_ng=yield_ng,
    )  # typed text becomes numbers here, each bad value refused naming its field
    material_type, unit, storage_format = data.material_type, data.unit, data.storage_format
    parent = get_specimen(session, parent_code, for_update=True)
    _require_takeable(parent)
    check_enum("material_type", material_type, MaterialType)
    check_enum("unit", unit, QuantityUnit)
    if material_type not in DERIVABLE.get(parent.material_type, set()):
        raise invalid("material_type", material_type, f"cannot be derived from {parent.material_type}")
    extract = _extract(data)
    quantity = _derived_quantity(data, extract["yield_ng"])
    check_quantity("quantity", quantity, unit)
    if storage_format is None:
        storage_format = StorageFormat.ffpe if material_type == MaterialType.section and parent.storage_format == StorageFormat.ffpe else StorageFormat.frozen
    check_enum("storage_format", storage_format, StorageFormat)
    check_time("at", at, after=[("the parent's collection", parent.collected_at)])
    act_as(session, actor)
    parent_quantity_used = data.parent_quantity_used
    _consume(parent, float(parent_quantity_used), "parent_quantity_used")
    parent.version += 1
    number = _children_count(session, parent, Lineage.derivative, str(material_type)) + 1
    child = _child(
        parent,
        code=derivative_code(parent.code, material_type, number),
        lineage=Lineage.derivative.value,
        material_type=str(material_type),
        storage_format=str(storage_format),
        quantity=float(quantity),
        quantity_remaining=float(quantity),
        unit=str(unit),
        parent_quantity_used=float(parent_quantity_used),
        tumour_cellularity_pct=parent.tumour_cellularity_pct,
        **extract,
    )
    if storage_format != StorageFormat.ffpe:
        child.fixative = None
        child.fixation_end_at = None
    session.add(child)
    session.flush()
    when = at or utcnow()
    record_event(session, specimen=parent, kind=CustodyKind.derived, actor=actor, at=when,
                 note=f"{child.code}: used {parent_quantity_used:g} {parent.unit}")
    record_event(session, specimen=child, kind=CustodyKind.derived, actor=actor, at=when, note=f"from {parent.code}")
    session.flush()
    return child


#: Materials extracted with a method and kit, eluted in a volume.
EXTRACTS = frozenset({MaterialType.dna.value, MaterialType.rna.value})


def _text(value: str | None) -> str | None:
    """Typed text without the spaces around it; nothing typed is None."""
    return (value.strip() or None) if isinstance(value, str) else value


def _extract(data: DeriveRequest) -> dict[str, Any]:
    """The extraction details a derivative records: method, kit, elution volume, concentration and yield (from
    concentration × elution volume when the yield is not stated)."""
    details = {"extraction_method": data.extraction_method, "extraction_kit": data.extraction_kit,
               "elution_volume_ul": data.elution_volume_ul}
    if data.material_type not in EXTRACTS:
        given = next((name for name, value in details.items() if value is not None), None)
        if given is not None:
            raise invalid(given, details[given], f"applies to a DNA or RNA extract, not {data.material_type}")
    yield_ng = data.yield_ng
    if yield_ng is None and data.concentration_ng_ul is not None and data.elution_volume_ul is not None:
        yield_ng = data.concentration_ng_ul * data.elution_volume_ul
        SpecimenQC.check_fields({"yield_ng": yield_ng})  # a slip in either number shows as an impossible yield
    return {**details, "concentration_ng_ul": data.concentration_ng_ul, "yield_ng": yield_ng}


def _derived_quantity(data: DeriveRequest, yield_ng: float | None) -> float:
    """The quantity stated, else the yield (kept in ng) or the elution volume (kept in µl)."""
    if data.quantity is not None:
        return data.quantity
    if data.unit == QuantityUnit.ng and yield_ng is not None:
        return yield_ng
    if data.unit == QuantityUnit.ul and data.elution_volume_ul is not None:
        return data.elution_volume_ul
    raise invalid("quantity", None, f"is required (in {data.unit}); an extract in ng takes its yield, one in ul its "
                                    "elution volume")


#: Text a review records besides the numbers: who read it, and from which slide.
QC_TEXT = ("pathology_reviewer", "slide_ref")
#: The QC results ``record_qc`` takes, with their scales (declared in :class:`SpecimenQC`).
QC_FIELDS: dict[str, tuple[float | None, float | None]] = {
    name: (limits(SpecimenQC, name).minimum, limits(SpecimenQC, name).maximum)
    for name in SpecimenQC.model_fields
    if name not in QC_TEXT
}


def record_qc(
    session: Session,
    *,
    actor: User | None,
    code: str,
    pathology_reviewer: str | None = None,
    at: datetime | None = None,
    slide_ref: str | None = None,
    **values: float | str | None,
) -> Specimen:
    """Record a pathology review (cellularity, necrosis, reviewer, slide) or nucleic-acid QC (yield, concentration,
    A260/280, A260/230, RIN, DIN, DV200). Numbers may come as typed text: each is read, or refused naming its field."""
    require(actor, Action.enter)
    specimen = get_specimen(session, code, for_update=True)
    unknown = set(values) - set(QC_FIELDS)
    if unknown:
        raise invalid("qc", sorted(unknown), f"QC fields are {', '.join(QC_FIELDS)}")
    typed = {k: v for k, v in values.items() if v is not None and not (isinstance(v, str) and not v.strip())}
    pathology_reviewer, slide_ref = _text(pathology_reviewer), _text(slide_ref)
    if not typed and pathology_reviewer is None and slide_ref is None:
        raise invalid("qc", {}, "give at least one QC value")
    checked = SpecimenQC.build(**typed, pathology_reviewer=pathology_reviewer, slide_ref=slide_ref)
    given: dict[str, float] = {k: getattr(checked, k) for k in typed}
    require_aware("at", at)
    check_time("at", at, after=[(f"{specimen.code}'s collection", specimen.collected_at)])
    nucleic = {"yield_ng", "a260_280", "a260_230", "rin", "din", "dv200_pct", "concentration_ng_ul"} & set(given)
    if {"rin", "din", "a260_280", "a260_230"} & nucleic and specimen.material_type not in EXTRACTS:
        first = sorted(nucleic)[0]
        raise invalid(first, given[first], f"nucleic-acid QC applies to DNA or RNA, not {specimen.material_type}")
    if "rin" in given and specimen.material_type != MaterialType.rna:
        raise invalid("rin", given["rin"], "RIN is measured on RNA")
    if "din" in given and specimen.material_type != MaterialType.dna:
        raise invalid("din", given["din"], "DIN is measured on DNA")
    for name, text in (("pathology_reviewer", pathology_reviewer), ("slide_ref", slide_ref)):
        if text is not None and "tumour_cellularity_pct" not in given and "necrosis_pct" not in given:
            raise invalid(name, text, "a pathology review records cellularity or necrosis")
    act_as(session, actor)
    for name, value in given.items():
        setattr(specimen, name, value)
    if pathology_reviewer is not None:
        specimen.pathology_reviewer = pathology_reviewer
    if slide_ref is not None:
        specimen.slide_ref = slide_ref
    specimen.version += 1
    note = [f"{k}={v:g}" for k, v in given.items()] + [f"slide {slide_ref}"] * (slide_ref is not None)
    record_event(session, specimen=specimen, kind=CustodyKind.qc_recorded, actor=actor, at=at, note=", ".join(note))
    session.flush()
    return specimen


def _check_corrected_times(session: Session, specimen: Specimen, proposed: dict[str, Any]) -> None:
    """The corrected times keep their order: collected after death (unless a pre-mortem draw), stabilised after
    collected, fixation ended after it started."""
    if proposed["collected_at"] != specimen.collected_at:
        site = session.get(SamplingSite, specimen.sampling_site_id)
        autopsy = session.get(Autopsy, site.autopsy_id) if site is not None and site.autopsy_id is not None else None
        if site is not None and site.kind != SiteKind.premortem_blood and autopsy is not None:
            check_order("death_at", autopsy.death_at, "collected_at", proposed["collected_at"])
    check_order("collected_at", proposed["collected_at"], "stabilised_at", proposed["stabilised_at"])
    if proposed["fixation_end_at"] is not None and proposed["stabilised_at"] is None:
        raise invalid("fixation_end_at", proposed["fixation_end_at"], "needs the time fixation started (Stabilised)")
    check_order("stabilised_at", proposed["stabilised_at"], "fixation_end_at", proposed["fixation_end_at"])


def _check_corrected_quantities(proposed: dict[str, Any], changes: dict[str, Any]) -> None:
    """Quantities stay plausible for their unit and what remains stays within the quantity; a problem is reported
    against the field the person typed (the quantity, when the remainder only followed it)."""
    unit = proposed["unit"]
    quantity, remaining = proposed["quantity"], proposed["quantity_remaining"]
    check_quantity("quantity", quantity, unit, allow_zero=True)
    check_quantity("quantity_remaining", remaining, unit, allow_zero=True)
    if remaining > quantity + 1e-9:
        if "quantity" in changes and changes.get("quantity_remaining") is None:
            raise invalid("quantity", quantity, f"cannot be less than what remains ({remaining:g} {unit})")
        raise invalid("quantity_remaining", remaining, f"cannot be more than the quantity ({quantity:g} {unit})")


#: Fields a correction may change; identity (code, donor, site, lineage, parent) never changes.
CORRECTABLE = {
    "collected_at", "stabilised_at", "fixation_end_at", "fixative", "decalcification_agent", "decalcification_hours",
    "quantity", "quantity_remaining", "unit", "material_type", "storage_format", "concentration_ng_ul",
    "er_status", "pr_status", "her2_status", "notes", "barcode",
}


def correct_specimen(
    session: Session,
    *,
    actor: User | None,
    code: str,
    reason: str,
    expected_version: int | None = None,
    **changes: Any,
) -> Specimen:
    """Correct a mistaken entry: audited with its reason, refused if the specimen changed since it was read."""
    require(actor, Action.correct)
    if not reason or not reason.strip():
        raise invalid("reason", reason, "a correction needs a reason (it goes into the audit trail)")
    specimen = get_specimen(session, code, for_update=True)
    code = specimen.code
    bad = set(changes) - CORRECTABLE
    if bad:
        raise invalid(sorted(bad)[0], changes[sorted(bad)[0]], "cannot be corrected")
    if not changes:
        raise invalid("changes", {}, "nothing to correct")
    for name in ("collected_at", "stabilised_at", "fixation_end_at"):
        require_aware(name, changes.get(name))
    SpecimenCorrection.check_fields(changes)  # each value as the form typed it: limits, no time in the future
    current = {name: getattr(specimen, name) for name in CORRECTABLE}
    proposed = {**current, **changes}
    _check_corrected_times(session, specimen, proposed)
    check_enum("storage_format", proposed["storage_format"], StorageFormat)
    check_enum("material_type", proposed["material_type"], MaterialType)
    check_enum("unit", proposed["unit"], QuantityUnit)
    _check_corrected_quantities(proposed, changes)
    if proposed["barcode"] is not None and not str(proposed["barcode"]).strip():
        proposed["barcode"] = None
        changes["barcode"] = None
    act_as(session, actor)
    version = specimen.version
    if expected_version is not None and expected_version != version:
        raise ConflictError(
            f"specimen {code}: changed by someone else since you read it (version {expected_version}, now {version});"
            " reload and try again",
            field="version",
            value=expected_version,
        )
    values = {name: value for name, value in changes.items()}
    values["version"] = version + 1
    # Compare-and-set on the version: a concurrent edit between our read and this write is refused too.
    with audit_reason(session, reason.strip()):
        result = session.execute(
            update(Specimen).where(Specimen.id == specimen.id, Specimen.version == version).values(**values)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]  # a DML result has a rowcount
            raise ConflictError(f"specimen {code}: changed by someone else meanwhile; reload and try again", field="version")
        session.refresh(specimen)
        # A Core UPDATE bypasses the ORM hook: its audit row is written explicitly, in the same transaction.
        record_bulk(session, "specimen", [(specimen.id, {k: [plain(current.get(k)), plain(v)] for k, v in changes.items()})],
                    "update", reason=reason.strip())
        record_event(session, specimen=specimen, kind=CustodyKind.corrected, actor=actor, note=reason.strip())
    if specimen.quantity_remaining == 0 and specimen.status == SpecimenStatus.available:
        specimen.status = SpecimenStatus.depleted.value
        session.flush()
    return specimen
