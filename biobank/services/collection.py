"""The autopsy table: open the case, add lesions and sampling sites, collect one region into several formats."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from biobank.domain.codes import (
    LESION_CODE,
    REGION_LABEL,
    other_site_code,
    primary_specimen_code,
    region_site_code,
    require_safe,
)
from biobank.domain.errors import ConflictError, ConsentError, ValidationError, invalid, shown_time
from biobank.domain.fields import field_label
from biobank.domain.vocab import (
    AutopsyStatus,
    BonePhenotype,
    CustodyKind,
    DecalcificationAgent,
    DonorStatus,
    Fixative,
    ImagingResponse,
    Laterality,
    LesionKind,
    MaterialType,
    QuantityUnit,
    ReceptorStatus,
    SiteKind,
    StorageFormat,
    TissueStatus,
)
from biobank.domain.vocab_derived import VIABLE_SOURCE_FORMATS
from biobank.models import AnatomicalSite, Autopsy, Donor, Lesion, SamplingSite, Specimen, User
from biobank.models.audit import act_as, add_as, audit_reason
from biobank.models.base import pk
from biobank.services.auth import Action, require
from biobank.services.checks import check_enum, check_order, check_positive, check_time, require_aware
from biobank.services.custody import record_event
from biobank.services.donors import get_donor, withdrawal_of
from biobank.services.inputs import (
    MAX_PIECES,
    AutopsyOpen,
    FormatRequest,
    LesionCreate,
    RegionCollect,
    check_quantity,
)
from biobank.services.lookup import by_code, typed_code


def get_autopsy(session: Session, case_code: str, *, for_update: bool = False) -> Autopsy:
    return by_code(session, Autopsy, Autopsy.case_code, case_code, what="autopsy", field="case", for_update=for_update)


def check_autopsy_times(
    death_at: datetime | None, refrigerated_at: datetime | None, start_at: datetime | None, end_at: datetime | None
) -> None:
    """Impossible autopsy times are errors (DOMAIN.md §3): none in the future, none before death, no end before
    the start; shared by the services and the importer."""
    if death_at is None and any(t is not None for t in (refrigerated_at, start_at, end_at)):
        raise invalid("death_at", None, "comes before any other autopsy time: give the time of death first")
    check_time("death_at", death_at)
    check_time("refrigerated_at", refrigerated_at, after=[("death_at", death_at)])
    check_time("start_at", start_at, after=[("death_at", death_at)])
    if end_at is not None and start_at is None:
        raise invalid("end_at", end_at, "needs the autopsy start: an autopsy cannot end without a start time")
    check_time("end_at", end_at, after=[("start_at", start_at)])


def open_autopsy(session: Session, *, actor: User | None, data: AutopsyOpen) -> Autopsy:
    """Open (or schedule) the case. Status follows the times unless given: start → in progress, end → complete."""
    require(actor, Action.enrol)
    donor_code, case_code, death_at = data.donor_code, data.case_code, data.death_at
    refrigerated_at, start_at, end_at = data.refrigerated_at, data.start_at, data.end_at
    institution, prosector, team, status = data.institution, data.prosector, data.team, data.status
    donor = get_donor(session, donor_code)
    case_code = typed_code(case_code)
    require_safe("case_code", case_code)
    check_autopsy_times(death_at, refrigerated_at, start_at, end_at)
    check_time("death_reported_at", data.death_reported_at, after=[("death_at", death_at)])
    if status is None:
        status = AutopsyStatus.complete if end_at else AutopsyStatus.in_progress if start_at else AutopsyStatus.scheduled
    check_enum("status", status, AutopsyStatus)
    if status != AutopsyStatus.scheduled and death_at is None:
        raise invalid("death_at", None, f"an autopsy {status} needs the time of death")
    if withdrawal_of(session, donor.id) is not None:
        raise ConsentError(f"donor {donor_code}: consent was withdrawn; no autopsy can be opened", field="donor")
    if session.exec(select(Autopsy.id).where(Autopsy.donor_id == donor.id)).first() is not None:
        raise ConflictError(f"donor {donor_code}: already has an autopsy", field="donor", value=donor_code)
    if session.exec(select(Autopsy.id).where(Autopsy.case_code == case_code)).first() is not None:
        raise ConflictError(f"case_code={case_code!r}: already used", field="case_code", value=case_code)
    autopsy = Autopsy(
        donor_id=pk(donor),
        case_code=case_code,
        death_at=death_at,
        refrigerated_at=refrigerated_at,
        start_at=start_at,
        end_at=end_at,
        institution=institution,
        prosector=prosector,
        team=team,
        status=str(status),
        death_place=data.death_place,
        death_reported_by=data.death_reported_by,
        death_reported_at=data.death_reported_at,
    )
    act_as(session, actor)
    session.add(autopsy)
    if death_at is not None and donor.status == DonorStatus.enrolled:
        donor.status = DonorStatus.deceased.value
    if status == AutopsyStatus.complete:
        donor.status = DonorStatus.autopsy_done.value
    session.flush()
    return autopsy


def update_autopsy_times(
    session: Session,
    *,
    actor: User | None,
    case_code: str,
    death_at: datetime | None = None,
    refrigerated_at: datetime | None = None,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    reason: str | None = None,
) -> Autopsy:
    """Set times as the case runs (death, refrigeration, start, end); status follows. Changing a time already
    recorded is a correction: it needs a reason, which the audit log keeps with the old and the new time (the case
    figures follow, as they are computed from these times)."""
    require(actor, Action.enrol)
    autopsy = get_autopsy(session, case_code, for_update=True)
    given = {"death_at": death_at, "refrigerated_at": refrigerated_at, "start_at": start_at, "end_at": end_at}
    for name, value in given.items():
        require_aware(name, value)
    new = {name: value if value is not None else getattr(autopsy, name) for name, value in given.items()}
    check_autopsy_times(**new)
    earliest = session.exec(
        select(func.min(SamplingSite.excised_at)).where(
            SamplingSite.autopsy_id == autopsy.id, SamplingSite.kind != SiteKind.premortem_blood
        )
    ).first()
    if earliest is not None and new["death_at"] is not None and earliest < new["death_at"]:
        raise invalid("death_at", new["death_at"], f"cannot be after the first excision of this case ({shown_time(earliest)})")
    reported = autopsy.death_reported_at
    if reported is not None and new["death_at"] is not None and reported < new["death_at"]:
        raise invalid("death_at", new["death_at"], f"cannot be after the death was reported ({shown_time(reported)})")
    corrected = [name for name, value in given.items() if value is not None and _changes(getattr(autopsy, name), value)]
    why = correction_reason(reason, corrected, autopsy) if corrected else None
    act_as(session, actor)
    with audit_reason(session, why) if why else nullcontext():
        for key, value in new.items():
            setattr(autopsy, key, value)
        _follow_times(session, autopsy, new)
        session.flush()
    return autopsy


def _changes(recorded: datetime | None, value: datetime) -> bool:
    """Whether ``value`` replaces a time already recorded (the same time again is no change)."""
    return recorded is not None and recorded != value


#: The longest reason the audit log keeps (its column).
MAX_REASON = 500


def correction_reason(reason: str | None, corrected: list[str], autopsy: Autopsy) -> str:
    """The reason a correction of recorded case times is kept with, or an error: it is required and fits the log."""
    why = (reason or "").strip()
    if not why:
        times = ", ".join(f"{field_label(name)} {shown_time(getattr(autopsy, name))}" for name in corrected)
        raise invalid("reason", reason, f"is required: changing a time already recorded ({times}) is a correction, "
                                         "kept in the audit log with its reason")
    if len(why) > MAX_REASON:
        raise invalid("reason", why, f"is too long: at most {MAX_REASON} characters")
    return why


def _follow_times(session: Session, autopsy: Autopsy, new: dict[str, datetime | None]) -> None:
    """The case's status and its donor's follow the times: a death makes an enrolled donor deceased; a start puts
    the case in progress, an end completes it (and the donor's autopsy is done)."""
    donor = session.get(Donor, autopsy.donor_id)
    if donor is not None and new["death_at"] is not None and donor.status == DonorStatus.enrolled:
        donor.status = DonorStatus.deceased.value
    if new["end_at"] is not None:
        autopsy.status = AutopsyStatus.complete.value
        if donor is not None and donor.status != DonorStatus.withdrawn:
            donor.status = DonorStatus.autopsy_done.value
    elif new["start_at"] is not None:
        autopsy.status = AutopsyStatus.in_progress.value


def _site(session: Session, code: str) -> AnatomicalSite:
    site = session.get(AnatomicalSite, code)
    if site is None:
        from biobank.domain.sites import unknown_site  # rapidfuzz: loaded for a wrong site only

        raise invalid("site_code", code, unknown_site(code))
    return site


def _laterality(site: AnatomicalSite, laterality: str | None) -> str:
    if laterality is None:
        return Laterality.unknown if site.laterality_applies else Laterality.not_applicable
    check_enum("laterality", laterality, Laterality)
    return laterality


def add_lesion(session: Session, *, actor: User | None, data: LesionCreate) -> Lesion:
    require(actor, Action.enrol)  # a lesion is clinical history: known from imaging (coordinator) or found at the table
    donor_code, code, site_code, kind = data.donor_code, data.code, data.site_code, data.kind
    laterality, bone_phenotype, size_mm = data.laterality, data.bone_phenotype, data.size_mm
    imaging_response, er_status, pr_status = data.imaging_response, data.er_status, data.pr_status
    her2_status, description = data.her2_status, data.description
    donor = get_donor(session, donor_code)
    if not LESION_CODE.match(code or ""):
        raise invalid("code", code, "lesion codes look like 'L01'")
    site = _site(session, site_code)
    check_enum("kind", kind, LesionKind)
    check_enum("bone_phenotype", bone_phenotype, BonePhenotype, nullable=True)
    if bone_phenotype is not None and site.category != "bone":
        raise invalid("bone_phenotype", bone_phenotype, f"only bone lesions have one; {site_code} is not bone")
    check_enum("imaging_response", imaging_response, ImagingResponse)
    for name, value in (("er_status", er_status), ("pr_status", pr_status), ("her2_status", her2_status)):
        check_enum(name, value, ReceptorStatus, nullable=True)
    check_positive("size_mm", size_mm)
    taken = session.exec(select(Lesion.id).where(Lesion.donor_id == donor.id, Lesion.code == code)).first()
    if taken is not None:
        raise ConflictError(f"donor {donor_code}: lesion {code} already exists", field="code", value=code)
    lesion = Lesion(
        donor_id=pk(donor),
        code=code,
        site_code=site_code,
        laterality=_laterality(site, laterality),
        kind=str(kind),
        bone_phenotype=bone_phenotype,
        size_mm=size_mm,
        imaging_response=str(imaging_response),
        er_status=er_status,
        pr_status=pr_status,
        her2_status=her2_status,
        description=description,
    )
    return add_as(session, actor, lesion)


def next_lesion_code(session: Session, donor: Donor) -> str:
    count = session.exec(select(func.count()).select_from(Lesion).where(Lesion.donor_id == donor.id)).one()
    return f"L{count + 1:02d}"


def get_lesion(session: Session, donor: Donor, code: str) -> Lesion:
    return by_code(session, Lesion, Lesion.code, code, what=f"donor {donor.code}: lesion", field="lesion",
                   where=[Lesion.donor_id == donor.id])


#: The formats the board offers for a tumour region, with default quantities.
DEFAULT_REGION_FORMATS: tuple[FormatRequest, ...] = (
    FormatRequest(StorageFormat.snap_frozen, 50, QuantityUnit.mg, count=2),
    FormatRequest(StorageFormat.oct, 1, QuantityUnit.blocks),
    FormatRequest(StorageFormat.ffpe, 1, QuantityUnit.blocks, fixative=Fixative.nbf),
    FormatRequest(StorageFormat.rnalater, 30, QuantityUnit.mg),
    FormatRequest(StorageFormat.viable_cryo, 100, QuantityUnit.mg),
)

def offered_formats(kind: str, *, model_consent: bool) -> list[tuple[FormatRequest, bool]]:
    """The formats a collection form offers for a kind of sample, with default pieces and quantities, each with
    whether it is ticked by default: a region's usual formats (living material for models only when the donor
    consented to model derivation; no OCT for normal tissue), blood as 2 x 1000 uL frozen, marrow as 2 x 1000 uL
    viable plus 1000 uL frozen."""
    if kind == SiteKind.germline_blood:
        return [(FormatRequest(StorageFormat.frozen, 1000, QuantityUnit.ul, count=2), True)]
    if kind == SiteKind.bone_marrow:
        return [
            (FormatRequest(StorageFormat.viable_cryo, 1000, QuantityUnit.ul, count=2), True),
            (FormatRequest(StorageFormat.frozen, 1000, QuantityUnit.ul), True),
        ]
    offered = [*DEFAULT_REGION_FORMATS, FormatRequest(StorageFormat.fresh, 100, QuantityUnit.mg)]
    ticked = {r.storage_format for r in DEFAULT_REGION_FORMATS if r.storage_format not in VIABLE_SOURCE_FORMATS}
    if kind == SiteKind.normal_tissue:
        ticked -= {StorageFormat.oct}
    elif model_consent:
        ticked |= {StorageFormat.viable_cryo}
    return [(request, request.storage_format in ticked) for request in offered]


_DEFAULT_MATERIAL = {
    SiteKind.tumour_region: MaterialType.tissue,
    SiteKind.normal_tissue: MaterialType.tissue,
    SiteKind.germline_blood: MaterialType.whole_blood,
    SiteKind.premortem_blood: MaterialType.whole_blood,
    SiteKind.bone_marrow: MaterialType.bone_marrow,
}


@dataclass(frozen=True)
class Collected:
    site: SamplingSite
    specimens: list[Specimen]


def _validate_format(request: FormatRequest, excised_at: datetime, row: str) -> None:
    check_enum(f"{row}.storage_format", request.storage_format, StorageFormat)
    check_enum(f"{row}.unit", request.unit, QuantityUnit)
    check_enum(f"{row}.material_type", request.material_type, MaterialType, nullable=True)
    check_enum(f"{row}.fixative", request.fixative, Fixative, nullable=True)
    check_enum(f"{row}.decalcification_agent", request.decalcification_agent, DecalcificationAgent, nullable=True)
    if request.quantity is None:
        raise invalid(f"{row}.quantity", request.quantity, "must be positive")
    check_quantity(f"{row}.quantity", request.quantity, request.unit)
    if not 1 <= request.count <= MAX_PIECES:
        raise invalid(f"{row}.count", request.count, f"must lie between 1 and {MAX_PIECES} pieces per format")
    check_time(f"{row}.stabilised_at", request.stabilised_at, after=[("excised_at", excised_at)])
    if request.fixation_end_at is not None and request.stabilised_at is None:
        raise invalid(f"{row}.fixation_end_at", request.fixation_end_at, "needs the time fixation started (Stabilised)")
    check_time(f"{row}.fixation_end_at", request.fixation_end_at, after=[("stabilised_at", request.stabilised_at)])
    if request.decalcification_hours is not None:
        if request.decalcification_agent is None:
            raise invalid(f"{row}.decalcification_hours", request.decalcification_hours,
                          "needs a decalcification agent: name the agent")
        check_positive(f"{row}.decalcification_hours", request.decalcification_hours, allow_zero=True)


def collect_region(session: Session, *, actor: User | None, data: RegionCollect) -> Collected:
    """Record one region (or normal tissue, blood, marrow) and create all its specimens at once.

    Everything is validated before anything is written; an error leaves the database as it was.
    """
    require(actor, Action.enter)
    case_code, kind, site_code, excised_at = data.case_code, data.kind, data.site_code, data.excised_at
    formats, lesion_code, region_label = data.formats, data.lesion_code, data.region_label
    laterality, tissue_status = data.laterality, data.tissue_status
    distance_to_tumour_mm, prosector = data.distance_to_tumour_mm, data.prosector
    gross_description = data.gross_description
    autopsy = get_autopsy(session, case_code)
    donor = session.get(Donor, autopsy.donor_id)
    assert donor is not None
    check_enum("kind", kind, SiteKind)
    site_kind = SiteKind(kind)
    site = _site(session, site_code)
    check_time("excised_at", excised_at)
    if withdrawal_of(session, donor.id) is not None:
        raise ConsentError(f"donor {donor.code}: consent was withdrawn; nothing more can be collected", field="donor")
    if autopsy.status == AutopsyStatus.scheduled and site_kind != SiteKind.premortem_blood:
        raise invalid("case", case_code, "the autopsy has not started: record the time of death and start first")
    if site_kind == SiteKind.premortem_blood:
        if autopsy.death_at is not None and excised_at >= autopsy.death_at:
            raise invalid("excised_at", excised_at,
                          f"must be before the time of death ({shown_time(autopsy.death_at)}) for a pre-mortem draw")
    else:
        check_order("death_at", autopsy.death_at, "excised_at", excised_at)
    if not formats:
        raise invalid("formats", [], "choose at least one storage format")
    for index, request in enumerate(formats, start=1):
        _validate_format(request, excised_at, f"formats[{index}]")

    lesion: Lesion | None = None
    if site_kind == SiteKind.tumour_region:
        if not lesion_code:
            raise invalid("lesion_code", lesion_code, "a tumour region belongs to a lesion")
        lesion = get_lesion(session, donor, lesion_code)
        if not region_label or not REGION_LABEL.match(region_label):
            raise invalid("region_label", region_label, "a region label such as 'A' or 'B'")
        code = region_site_code(lesion.code, region_label)
        status = TissueStatus.tumour
        if tissue_status not in (None, TissueStatus.tumour):
            raise invalid("tissue_status", tissue_status, "a tumour region is tumour tissue")
        if distance_to_tumour_mm is not None:
            raise invalid("distance_to_tumour_mm", distance_to_tumour_mm, "only normal tissue has a distance to tumour")
        if site_code != lesion.site_code and site.parent_code != lesion.site_code:
            raise invalid("site_code", site_code, f"lesion {lesion.code} is in {lesion.site_code}")
    else:
        if lesion_code:
            raise invalid("lesion_code", lesion_code, f"a {kind} sample has no lesion")
        count = session.exec(
            select(func.count()).select_from(SamplingSite).where(SamplingSite.donor_id == donor.id, SamplingSite.kind == kind)
        ).one()
        code = other_site_code(site_kind, count + 1)
        status = TissueStatus(tissue_status) if tissue_status else TissueStatus.normal
        check_enum("tissue_status", status, TissueStatus)
        if status == TissueStatus.tumour:
            raise invalid("tissue_status", tissue_status, "tumour tissue is a region of a lesion")
        if distance_to_tumour_mm is not None:
            check_positive("distance_to_tumour_mm", distance_to_tumour_mm, allow_zero=True)
        region_label = None
    require_safe("code", code)
    if session.exec(select(SamplingSite.id).where(SamplingSite.donor_id == donor.id, SamplingSite.code == code)).first():
        raise ConflictError(f"donor {donor.code}: region {code} was already collected", field="region_label", value=region_label)

    act_as(session, actor)
    sampling_site = SamplingSite(
        donor_id=donor.id,  # type: ignore[arg-type]  # the row was flushed, so its primary key is set
        autopsy_id=autopsy.id,
        lesion_id=lesion.id if lesion else None,
        code=code,
        region_label=region_label,
        kind=site_kind.value,
        tissue_status=status.value,
        distance_to_tumour_mm=distance_to_tumour_mm,
        site_code=site_code,
        laterality=_laterality(site, laterality if laterality else (lesion.laterality if lesion else None)),
        excised_at=excised_at,
        prosector=prosector or autopsy.prosector,
        gross_description=gross_description,
    )
    session.add(sampling_site)
    session.flush()

    specimens: list[Specimen] = []
    sequence: dict[str, int] = {}
    for request in formats:
        material = request.material_type or _DEFAULT_MATERIAL[site_kind]
        fixative = request.fixative or (Fixative.nbf if request.storage_format == StorageFormat.ffpe else None)
        for _ in range(request.count):
            sequence[request.storage_format] = sequence.get(request.storage_format, 0) + 1
            specimen = Specimen(
                code=primary_specimen_code(donor.code, code, request.storage_format, sequence[request.storage_format]),
                donor_id=donor.id,  # type: ignore[arg-type]  # the row was flushed, so its primary key is set
                sampling_site_id=sampling_site.id,  # type: ignore[arg-type]  # the row was flushed, so its primary key is set
                lineage="primary",
                material_type=str(material),
                storage_format=str(request.storage_format),
                collected_at=excised_at,
                stabilised_at=request.stabilised_at,
                fixation_end_at=request.fixation_end_at,
                fixative=str(fixative) if fixative else None,
                decalcification_agent=request.decalcification_agent,
                decalcification_hours=request.decalcification_hours,
                quantity=request.quantity,
                quantity_remaining=request.quantity,
                unit=str(request.unit),
                collected_by=data.collected_by.strip() if data.collected_by and data.collected_by.strip() else None,
            )
            session.add(specimen)
            specimens.append(specimen)
    session.flush()
    for specimen in specimens:
        record_event(session, specimen=specimen, kind=CustodyKind.collected, actor=actor, at=excised_at, to_location=code)
        if specimen.stabilised_at is not None:
            record_event(
                session,
                specimen=specimen,
                kind=CustodyKind.stabilised,
                actor=actor,
                at=specimen.stabilised_at,
                note=specimen.storage_format,
            )
    session.flush()
    return Collected(sampling_site, specimens)


def sampling_site_of(session: Session, specimen: Specimen) -> SamplingSite:
    site = session.get(SamplingSite, specimen.sampling_site_id)
    if site is None:  # impossible with the foreign key; keeps the type checker honest
        raise ValidationError(f"specimen {specimen.code}: sampling site missing")
    return site
