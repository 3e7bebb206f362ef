"""The import kinds: donors, consents, treatment lines, autopsies, lesions, sampling sites, specimens, storage
containers and placements, derived models and their passages.

Each is one :class:`~biobank.imports.engine.Kind`: its columns (the template), natural key, the services' rules
for one row (:meth:`check`), set-based reference resolution building the table record (:meth:`resolve`), and the
current table in template format (:meth:`export_rows`, for the round trip). Rules are the services' rules, called
through the same helpers (``biobank.services.checks``, ``biobank.domain.codes``, the collection service's time checks).

Historic spreadsheets record the present state, so a specimen row carries its own remaining quantity and status:
importing an aliquot does not take its quantity from the parent again (the parent's row says what is left).

Specimens a passage produced (``specimen.passage_id``) are their own kind, ``passage_specimens``, imported after the
models and passages they come from; what was made from them (aliquots, DNA) is ``passage_descendants``, with the
specimens columns; placements come last, so every specimen exists before it is placed.

Model QC results are ``model_qc`` (after the passages). Not (yet) kinds: check-outs and distributions (they are
recorded through their services).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, text, tuple_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session

from biobank.db.bulk import id_filter, insert_rows
from biobank.db.engine import UTCDateTime
from biobank.domain.codes import (
    DONOR_CODE,
    LESION_CODE,
    REGION_LABEL,
    SITE_PREFIX,
    region_site_code,
    require_safe,
)
from biobank.domain.errors import BiobankError, invalid
from biobank.domain.storage import compat
from biobank.domain.storage.coords import CoordinateError
from biobank.domain.storage.kinds import KINDS as STORAGE_KINDS
from biobank.domain.storage.kinds import ContainerKind, grid_of, may_hold
from biobank.domain.storage.kinds import spec as storage_kind
from biobank.domain.vocab import (
    AutopsyStatus,
    BonePhenotype,
    ConsentGiver,
    CustodyKind,
    DecalcificationAgent,
    DonorStatus,
    Fixative,
    ImagingResponse,
    Laterality,
    LesionKind,
    Lineage,
    MaterialType,
    QuantityUnit,
    ReceptorStatus,
    Response,
    Sex,
    SiteKind,
    SpecimenStatus,
    StorageFormat,
    TissueStatus,
    TreatmentCategory,
    TreatmentIntent,
)
from biobank.domain.vocab_derived import (
    ESTABLISHED_OR_BEYOND,
    STATUS_TRANSITIONS,
    VIABLE_SOURCE_FORMATS,
    EngraftmentType,
    GrowthProperties,
    IdentityMethod,
    Matrix,
    ModelKind,
    ModelStatus,
    MycoplasmaResult,
    TumourPreparation,
)
from biobank.imports import coerce as c
from biobank.imports.engine import (
    Column,
    Context,
    Kind,
    Resolver,
    RowFailed,
    Staged,
    bool_col,
    date_col,
    datetime_col,
    int_col,
    num_col,
    pct_col,
    quantity_col,
    register,
    text_col,
    vocab_col,
)
from biobank.models import (
    AnatomicalSite,
    Autopsy,
    Consent,
    ConsentWithdrawal,
    Container,
    CustodyEvent,
    DerivedModel,
    Donor,
    Lesion,
    ModelPassage,
    ModelQC,
    SamplingSite,
    Specimen,
    SpecimenLocation,
    TreatmentLine,
    User,
)
from biobank.models.audit import record_bulk
from biobank.models.base import utcnow
from biobank.services.checks import check_order
from biobank.services.collection import check_autopsy_times
from biobank.services.derived import (
    CULTURE_FIELDS,
    PASSAGE_MATERIALS,
    PDX_FIELDS,
    check_passage_yield,
    check_qc_results,
    judge_qc,
    qc_requirements_met,
)
from biobank.services.specimens import DERIVABLE
from biobank.services.storage import STORABLE

RECEPTORS = ("er_status", "pr_status", "her2_status")


def template_rows(kind: Kind, session: Session, statement: Any, *names: str) -> Iterator[dict[str, Any]]:
    """The rows of ``statement`` (a table row, then the codes the template names ``names``) in ``kind``'s columns."""
    for obj, *codes in session.execute(statement):
        row = {col.name: getattr(obj, col.name, None) for col in kind.columns}
        row.update(zip(names, codes, strict=True))
        yield row


def receptor_cols(what: str) -> tuple[Column, ...]:
    return tuple(
        vocab_col(name, ReceptorStatus, f"{label} status {what}")
        for name, label in zip(RECEPTORS, ("ER", "PR", "HER2"), strict=True)
    )


def each(rows: list[Staged], handle: Callable[[Staged], None]) -> None:
    """Run ``handle`` per row; a rule broken in one row becomes that row's error, the others go on."""
    for row in rows:
        try:
            handle(row)
        except RowFailed:
            row.record = None
        except BiobankError as exc:
            row.record = None
            column = (exc.field or "").split(".")[-1]
            row.error(column, str(exc), value=exc.value)


# ------------------------------------------------------------------------------------------------ shared lookups


class DonorInfo(NamedTuple):
    id: int
    code: str
    status: str
    withdrawn: bool
    autopsy_id: int | None
    case_code: str | None
    death_at: datetime | None
    autopsy_status: str | None
    prosector: str | None


def donors(res: Resolver, codes: set[Any]) -> dict[str, DonorInfo]:
    def fetch(batch: list[Any]) -> dict[str, DonorInfo]:
        statement = (
            select(  # type: ignore[call-overload,misc]
                Donor.id, Donor.code, Donor.status, ConsentWithdrawal.id, Autopsy.id, Autopsy.case_code,
                Autopsy.death_at, Autopsy.status, Autopsy.prosector,
            )
            .outerjoin(ConsentWithdrawal, ConsentWithdrawal.donor_id == Donor.id)  # type: ignore[arg-type]
            .outerjoin(Autopsy, Autopsy.donor_id == Donor.id)  # type: ignore[arg-type]
            .where(Donor.code.in_(batch))  # type: ignore[attr-defined]
        )
        return {
            r[1]: DonorInfo(r[0], r[1], r[2], r[3] is not None, r[4], r[5], r[6], r[7], r[8])
            for r in res.session.execute(statement)
        }

    return res.lookup("donor", codes, fetch)


def donor_of(row: Staged, found: dict[str, DonorInfo], column: str = "donor_code", *, unwithdrawn: bool = True) -> DonorInfo:
    code = row.values[column]
    donor = found.get(code)
    if donor is None:
        raise row.fail(column, f"donor {code!r} not found (import donors first)", expected="a registered donor code")
    if unwithdrawn and donor.withdrawn:
        raise row.fail(column, f"donor {code}: consent was withdrawn; nothing new can be recorded",
                       expected="a donor who has not withdrawn")
    return donor


class SiteInfo(NamedTuple):
    code: str
    category: str
    laterality_applies: bool
    parent_code: str | None


def anatomical_sites(res: Resolver) -> dict[str, SiteInfo]:
    cached = res.state.get("anatomical_sites")
    if cached is None:
        rows = res.session.execute(
            select(AnatomicalSite.code, AnatomicalSite.category, AnatomicalSite.laterality_applies,  # type: ignore[call-overload,misc]
                   AnatomicalSite.parent_code)
        )
        cached = {r[0]: SiteInfo(*r) for r in rows}
        res.state["anatomical_sites"] = cached
    return cached  # type: ignore[no-any-return]


def site_of(row: Staged, res: Resolver, column: str = "site_code") -> SiteInfo:
    code = row.values.get(column)
    sites = anatomical_sites(res)
    site = sites.get(str(code)) or sites.get(str(code).upper().replace(" ", "_"))
    if site is None:
        raise row.fail(column, f"site_code={code!r}: not in the anatomical-site vocabulary",
                       expected="an anatomical-site code such as LIVER or VERTEBRA_T12")
    return site


def laterality(site: SiteInfo, given: str | None) -> str:
    """As the collection service does: unknown where laterality applies, else not applicable."""
    if given is not None:
        return given
    return Laterality.unknown.value if site.laterality_applies else Laterality.not_applicable.value


def with_defaults(row: Staged, defaults: dict[str, Any]) -> dict[str, Any]:
    return {name: (row.values.get(name) if row.values.get(name) is not None else default)
            for name, default in defaults.items()}


def existing_by(res: Resolver, kind: Kind, rows: list[Staged], columns: tuple[str, ...],
                key: Callable[[Staged], tuple[Any, ...]]) -> None:
    """Attach each row's current table row (same natural key), one query per 500 keys."""
    keys = {row: key(row) for row in rows if row.record is not None}
    found = res.rows_by(kind.table, columns, list(set(keys.values())))
    for row, k in keys.items():
        row.existing = found.get(k)


# ---------------------------------------------------------------------------------------------------------- donors


@register
class Donors(Kind):
    name = "donors"
    noun = "donor"
    title = "Donors"
    help = "One row per donor: a pseudonymous code, never a name, address, birth date or hospital number."
    table = Donor.__table__  # type: ignore[attr-defined]
    order = 10
    key = ("code",)
    columns = (
        text_col("code", "Pseudonymous donor code such as RA-0001 (letters, optional '-', digits)", required=True),
        vocab_col("sex", Sex, "MIABIS sex (empty: unknown)"),
        int_col("age_at_death", "Age at death in years", minimum=0, maximum=130),
        text_col("primary_diagnosis", "Primary diagnosis as free text", max_length=200),
        text_col("primary_site_code", "Anatomical-site code of the primary (e.g. BREAST)", max_length=40),
        text_col("icdo3_topography", "ICD-O-3 topography, e.g. C50.9", max_length=8),
        text_col("icdo3_morphology", "ICD-O-3 morphology, e.g. 8500/3", max_length=10),
        int_col("diagnosis_days_before_death", "Days from first diagnosis to death", minimum=0, maximum=36500),
        *receptor_cols("at diagnosis"),
        text_col("cause_of_death", "Cause of death", max_length=200),
        int_col("hardy_scale", "Hardy scale 0-4", minimum=0, maximum=4),
        vocab_col("status", DonorStatus, "Donor status (empty: enrolled); withdrawals are recorded with "
                  "'biobank donors withdraw', not imported"),
    )

    def check(self, row: Staged) -> None:
        code = row.values["code"]
        require_safe("code", code)
        if not DONOR_CODE.match(code):
            raise invalid("code", code, "a pseudonymous code such as 'RA-0001' (letters, optional '-', digits)")
        if row.values.get("status") == DonorStatus.withdrawn:
            raise invalid("status", "withdrawn", "record a withdrawal with 'biobank donors withdraw'; it is not imported")

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        def build(row: Staged) -> None:
            site = row.values.get("primary_site_code")
            if site is not None:
                row.values["primary_site_code"] = site_of(row, res, "primary_site_code").code
            row.record = with_defaults(row, {
                "code": None, "sex": Sex.unknown.value, "age_at_death": None, "primary_diagnosis": None,
                "primary_site_code": None, "icdo3_topography": None, "icdo3_morphology": None,
                "diagnosis_days_before_death": None, "er_status": None, "pr_status": None, "her2_status": None,
                "cause_of_death": None, "hardy_scale": None, "status": DonorStatus.enrolled.value,
            })

        each(rows, build)
        existing_by(res, self, rows, ("code",), lambda r: (r.values["code"],))
        for row in rows:
            if row.existing is not None and row.existing["status"] == DonorStatus.withdrawn and row.record:
                row.record["status"] = DonorStatus.withdrawn.value  # a withdrawal is never undone by an import

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        for d in session.execute(select(Donor).order_by(Donor.id)).scalars():  # type: ignore[arg-type]
            yield {col.name: getattr(d, col.name) for col in self.columns}


# -------------------------------------------------------------------------------------------------------- consents

SCOPES = ("research_use", "genomic_sequencing", "model_derivation", "external_sharing", "recontact")


@register
class Consents(Kind):
    name = "consents"
    noun = "consent"
    title = "Consents"
    help = "One row per consent; a scope left empty is not consented to."
    table = Consent.__table__  # type: ignore[attr-defined]
    order = 20
    key = ("donor_code", "consented_on", "given_by")
    identity = frozenset({"donor_id"})
    columns = (
        text_col("donor_code", "Code of the donor", required=True),
        vocab_col("given_by", ConsentGiver, "Who consented", required=True),
        date_col("consented_on", "Date of the consent", required=True),
        bool_col("research_use", "Research use (yes/no)"),
        bool_col("genomic_sequencing", "Genomic sequencing including germline (yes/no)"),
        bool_col("model_derivation", "Derivation of organoids and xenografts (yes/no)"),
        bool_col("external_sharing", "Data sharing outside the institution (yes/no)"),
        bool_col("recontact", "Recontact of the family (yes/no)"),
        text_col("document_ref", "Reference of the signed form", max_length=120),
    )

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        found = donors(res, {r.values["donor_code"] for r in rows})

        def build(row: Staged) -> None:
            donor = donor_of(row, found)
            row.record = {
                "donor_id": donor.id,
                "given_by": row.values["given_by"],
                "consented_on": row.values["consented_on"],
                **{scope: bool(row.values.get(scope)) for scope in SCOPES},
                "document_ref": row.values.get("document_ref"),
            }

        each(rows, build)
        existing_by(res, self, rows, ("donor_id", "consented_on", "given_by"),
                    lambda r: (r.record["donor_id"], r.values["consented_on"], r.values["given_by"]))  # type: ignore[index]

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = select(Consent, Donor.code).join(Donor, Donor.id == Consent.donor_id).order_by(Consent.id)  # type: ignore[arg-type,call-overload,misc]
        for consent, code in session.execute(statement):
            yield {"donor_code": code, **{col.name: getattr(consent, col.name) for col in self.columns[1:]}}


# ------------------------------------------------------------------------------------------------ treatment lines


@register
class TreatmentLines(Kind):
    name = "treatment_lines"
    noun = "treatment line"
    title = "Treatment lines"
    help = "One row per line of treatment; times are days before death."
    table = TreatmentLine.__table__  # type: ignore[attr-defined]
    order = 30
    key = ("donor_code", "line_number")
    identity = frozenset({"donor_id"})
    columns = (
        text_col("donor_code", "Code of the donor", required=True),
        int_col("line_number", "Line number, from 1", required=True, minimum=1, maximum=99),
        text_col("agents", "Agents, e.g. 'letrozole + palbociclib'", required=True, max_length=300),
        vocab_col("category", TreatmentCategory, "Kind of treatment (empty: other)"),
        vocab_col("intent", TreatmentIntent, "Intent (empty: unknown)"),
        int_col("start_days_before_death", "Start, in days before death", required=True, minimum=0),
        int_col("end_days_before_death", "End, in days before death (empty: ongoing at death)", minimum=0),
        vocab_col("best_response", Response, "Best response (empty: unknown)"),
    )

    def check(self, row: Staged) -> None:
        start, end = row.values["start_days_before_death"], row.values.get("end_days_before_death")
        if end is not None and not 0 <= end <= start:
            raise invalid("end_days_before_death", end, f"must lie between 0 and the start ({start} days before death)")

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        found = donors(res, {r.values["donor_code"] for r in rows})

        def build(row: Staged) -> None:
            donor = donor_of(row, found, unwithdrawn=False)
            row.record = {
                "donor_id": donor.id,
                **with_defaults(row, {
                    "line_number": None, "agents": None, "category": TreatmentCategory.other.value,
                    "intent": TreatmentIntent.unknown.value, "start_days_before_death": None,
                    "end_days_before_death": None, "best_response": Response.unknown.value,
                }),
            }

        each(rows, build)
        existing_by(res, self, rows, ("donor_id", "line_number"),
                    lambda r: (r.record["donor_id"], r.values["line_number"]))  # type: ignore[index]

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = (
            select(TreatmentLine, Donor.code).join(Donor, Donor.id == TreatmentLine.donor_id)  # type: ignore[arg-type,call-overload,misc]
            .order_by(TreatmentLine.id)
        )
        for line, code in session.execute(statement):
            yield {"donor_code": code, **{col.name: getattr(line, col.name) for col in self.columns[1:]}}


# ------------------------------------------------------------------------------------------------------ autopsies


@register
class Autopsies(Kind):
    name = "autopsies"
    noun = "autopsy"
    title = "Autopsies (cases)"
    help = "One row per case; status follows the times unless given (start: in progress, end: complete)."
    table = Autopsy.__table__  # type: ignore[attr-defined]
    order = 40
    key = ("case_code",)
    identity = frozenset({"donor_id"})
    columns = (
        text_col("case_code", "Case code, e.g. RAP-2024-001", required=True, max_length=32),
        text_col("donor_code", "Code of the donor", required=True),
        datetime_col("death_at", "Time of death"),
        datetime_col("refrigerated_at", "Time the body was refrigerated"),
        datetime_col("start_at", "Autopsy start"),
        datetime_col("end_at", "Autopsy end"),
        text_col("institution", "Institution", max_length=200),
        text_col("prosector", "Prosector", max_length=120),
        text_col("team", "Team", max_length=300),
        vocab_col("status", AutopsyStatus, "Status (empty: from the times)"),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        require_safe("case_code", v["case_code"])
        check_autopsy_times(v.get("death_at"), v.get("refrigerated_at"), v.get("start_at"), v.get("end_at"))
        if v.get("status") is None:
            v["status"] = (AutopsyStatus.complete if v.get("end_at") else
                           AutopsyStatus.in_progress if v.get("start_at") else AutopsyStatus.scheduled).value
        if v["status"] != AutopsyStatus.scheduled and v.get("death_at") is None:
            raise invalid("death_at", None, f"an autopsy {v['status']} needs the time of death")

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        found = donors(res, {r.values["donor_code"] for r in rows})
        in_file: dict[int, int] = res.state.setdefault("autopsy_donors", {})

        def build(row: Staged) -> None:
            donor = donor_of(row, found)
            if donor.case_code is not None and donor.case_code != row.values["case_code"]:
                raise row.fail("donor_code", f"donor {donor.code} already has an autopsy ({donor.case_code})",
                               expected="one autopsy per donor")
            first = in_file.setdefault(donor.id, row.number)
            if first != row.number:
                raise row.fail("donor_code", f"donor {donor.code} already has an autopsy in row {first}",
                               expected="one autopsy per donor")
            row.record = {
                "donor_id": donor.id,
                **with_defaults(row, {name: None for name in (
                    "case_code", "death_at", "refrigerated_at", "start_at", "end_at", "institution", "prosector",
                    "team", "status")}),
            }

        each(rows, build)
        existing_by(res, self, rows, ("case_code",), lambda r: (r.values["case_code"],))

    def after_insert(self, session: Session, rows: list[tuple[int, dict[str, Any]]], actor: User | None) -> None:
        """As opening a case does: a death makes an enrolled donor deceased; a complete case, autopsy done."""
        targets: dict[int, str] = {}
        for _id, rec in rows:
            if rec["status"] == AutopsyStatus.complete:
                targets[rec["donor_id"]] = DonorStatus.autopsy_done.value
            elif rec["death_at"] is not None:
                targets[rec["donor_id"]] = DonorStatus.deceased.value
        if not targets:
            return
        table = Donor.__table__  # type: ignore[attr-defined]
        current = dict(session.execute(select(table.c.id, table.c.status).where(table.c.id.in_(targets))).all())
        audit = []
        for donor_id, status in targets.items():
            old = current.get(donor_id)
            if old in (status, DonorStatus.withdrawn.value) or (
                status == DonorStatus.deceased and old != DonorStatus.enrolled
            ):
                continue
            session.execute(update(table).where(table.c.id == donor_id).values(
                status=status, updated_at=utcnow(), updated_by_id=actor.id if actor else None))
            audit.append((donor_id, {"status": [old, status]}))
        record_bulk(session, "donor", audit, "update")

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = select(Autopsy, Donor.code).join(Donor, Donor.id == Autopsy.donor_id).order_by(Autopsy.id)  # type: ignore[arg-type,call-overload,misc]
        yield from template_rows(self, session, statement, "donor_code")


# --------------------------------------------------------------------------------------------------------- lesions


@register
class Lesions(Kind):
    name = "lesions"
    noun = "lesion"
    title = "Lesions"
    help = "One row per lesion of a donor (L01, L02...)."
    table = Lesion.__table__  # type: ignore[attr-defined]
    order = 50
    key = ("donor_code", "code")
    identity = frozenset({"donor_id"})
    columns = (
        text_col("donor_code", "Code of the donor", required=True),
        text_col("code", "Lesion code such as L01", required=True, max_length=8),
        text_col("site_code", "Anatomical-site code, e.g. LIVER or VERTEBRA_T12", required=True),
        vocab_col("kind", LesionKind, "Kind of lesion", required=True),
        vocab_col("laterality", Laterality, "Side (empty: unknown where a side applies)"),
        vocab_col("bone_phenotype", BonePhenotype, "Bone lesions only"),
        num_col("size_mm", "Largest diameter in mm", minimum=0),
        vocab_col("imaging_response", ImagingResponse, "Last imaging response (empty: unknown)"),
        *receptor_cols("tested on this lesion"),
        text_col("description", "Description", max_length=500),
    )

    def check(self, row: Staged) -> None:
        code = row.values["code"]
        if not LESION_CODE.match(code):
            raise invalid("code", code, "lesion codes look like 'L01'")
        size = row.values.get("size_mm")
        if size is not None and size <= 0:
            raise invalid("size_mm", size, "must be positive")

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        found = donors(res, {r.values["donor_code"] for r in rows})

        def build(row: Staged) -> None:
            donor = donor_of(row, found)
            site = site_of(row, res)
            phenotype = row.values.get("bone_phenotype")
            if phenotype is not None and site.category != "bone":
                raise row.fail("bone_phenotype", f"only bone lesions have one; {site.code} is not bone",
                               expected="empty for a lesion outside bone")
            row.record = {
                "donor_id": donor.id,
                "code": row.values["code"],
                "site_code": site.code,
                "laterality": laterality(site, row.values.get("laterality")),
                **with_defaults(row, {
                    "kind": None, "bone_phenotype": None, "size_mm": None,
                    "imaging_response": ImagingResponse.unknown.value, "er_status": None, "pr_status": None,
                    "her2_status": None, "description": None,
                }),
            }

        each(rows, build)
        existing_by(res, self, rows, ("donor_id", "code"),
                    lambda r: (r.record["donor_id"], r.values["code"]))  # type: ignore[index]

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = select(Lesion, Donor.code).join(Donor, Donor.id == Lesion.donor_id).order_by(Lesion.id)  # type: ignore[arg-type,call-overload,misc]
        for lesion, code in session.execute(statement):
            yield {"donor_code": code, **{col.name: getattr(lesion, col.name) for col in self.columns[1:]}}


# -------------------------------------------------------------------------------------------------- sampling sites


class LesionInfo(NamedTuple):
    id: int
    site_code: str
    laterality: str


@register
class SamplingSites(Kind):
    name = "sampling_sites"
    noun = "sampling site"
    title = "Sampling sites (regions)"
    help = ("One row per piece of tissue taken from one place: a region of a lesion (code L01-A from lesion_code "
            "and region_label), normal tissue (N01), germline blood (GB1), bone marrow (BM1) or a pre-mortem draw (PB1).")
    table = SamplingSite.__table__  # type: ignore[attr-defined]
    order = 60
    key = ("donor_code", "code")
    identity = frozenset({"donor_id", "kind", "lesion_id", "autopsy_id"})
    columns = (
        text_col("donor_code", "Code of the donor", required=True),
        text_col("code", "Site code: L01-A for a region (may be left empty), N01, GB1, BM1, PB1 otherwise", max_length=16),
        vocab_col("kind", SiteKind, "What was sampled", required=True),
        text_col("lesion_code", "Lesion of a tumour region (e.g. L01)", max_length=8),
        text_col("region_label", "Region label of a tumour region (A, B...)", max_length=8),
        text_col("site_code", "Anatomical-site code", required=True),
        vocab_col("laterality", Laterality, "Side (empty: the lesion's side)"),
        vocab_col("tissue_status", TissueStatus, "tumour for a region; normal or adjacent_normal otherwise"),
        num_col("distance_to_tumour_mm", "Normal tissue: distance to the nearest tumour in mm", minimum=0),
        datetime_col("excised_at", "Time of excision (or of the pre-mortem draw)", required=True),
        text_col("prosector", "Prosector (empty: the case's prosector)", max_length=120),
        text_col("gross_description", "Gross description", max_length=500),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        kind = SiteKind(v["kind"])
        if kind == SiteKind.tumour_region:
            if not v.get("lesion_code"):
                raise invalid("lesion_code", None, "a tumour region belongs to a lesion")
            label = v.get("region_label")
            if not label or not REGION_LABEL.match(label):
                raise invalid("region_label", label, "a region label such as 'A' or 'B'")
            code = region_site_code(v["lesion_code"], label)
            if v.get("code") not in (None, code):
                raise invalid("code", v["code"], f"a region of {v['lesion_code']} labelled {label} is {code}")
            v["code"] = code
            if v.get("tissue_status") not in (None, TissueStatus.tumour):
                raise invalid("tissue_status", v["tissue_status"], "a tumour region is tumour tissue")
            if v.get("distance_to_tumour_mm") is not None:
                raise invalid("distance_to_tumour_mm", v["distance_to_tumour_mm"], "only normal tissue has a distance to tumour")
        else:
            if v.get("lesion_code"):
                raise invalid("lesion_code", v["lesion_code"], f"a {kind.value} sample has no lesion")
            if v.get("region_label"):
                raise invalid("region_label", v["region_label"], f"a {kind.value} sample has no region label")
            code = v.get("code") or ""
            prefix = SITE_PREFIX[kind]
            if not code or not code.startswith(prefix) or not code[len(prefix):].isdigit():
                raise invalid("code", code, f"a {kind.value} site code such as {prefix}{'01' if prefix == 'N' else '1'}")
            if v.get("tissue_status") == TissueStatus.tumour:
                raise invalid("tissue_status", "tumour", "tumour tissue is a region of a lesion")
        require_safe("code", v["code"])

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        found = donors(res, {r.values["donor_code"] for r in rows})
        lesion_keys = {(found[r.values["donor_code"]].id, r.values["lesion_code"])
                       for r in rows if r.values.get("lesion_code") and r.values["donor_code"] in found}

        def fetch(batch: list[Any]) -> dict[Any, LesionInfo]:
            from sqlalchemy import tuple_

            statement = select(Lesion.donor_id, Lesion.code, Lesion.id, Lesion.site_code, Lesion.laterality).where(  # type: ignore[call-overload,misc]
                tuple_(Lesion.donor_id, Lesion.code).in_(batch))
            return {(r[0], r[1]): LesionInfo(r[2], r[3], r[4]) for r in res.session.execute(statement)}

        lesions = res.lookup("lesion", lesion_keys, fetch)

        def build(row: Staged) -> None:
            v = row.values
            donor = donor_of(row, found)
            site = site_of(row, res)
            kind = v["kind"]
            premortem = kind == SiteKind.premortem_blood
            if donor.autopsy_id is None and not premortem:
                raise row.fail("donor_code", f"donor {donor.code} has no autopsy (import autopsies first)",
                               expected="a donor with an autopsy")
            if donor.autopsy_status == AutopsyStatus.scheduled and not premortem:
                raise row.fail("donor_code", f"case {donor.case_code} has not started: record death and start first",
                               expected="a started autopsy")
            excised = v["excised_at"]
            if premortem:
                if donor.death_at is not None and excised >= donor.death_at:
                    raise row.fail("excised_at", "a pre-mortem draw is taken before death",
                                   expected=f"before {donor.death_at.isoformat()}")
            else:
                check_order("death_at", donor.death_at, "excised_at", excised)
            lesion: LesionInfo | None = None
            if kind == SiteKind.tumour_region:
                lesion = lesions.get((donor.id, v["lesion_code"]))
                if lesion is None:
                    raise row.fail("lesion_code", f"donor {donor.code}: lesion {v['lesion_code']!r} not found "
                                   "(import lesions first)", expected="a lesion of this donor")
                if site.code != lesion.site_code and site.parent_code != lesion.site_code:
                    raise row.fail("site_code", f"lesion {v['lesion_code']} is in {lesion.site_code}",
                                   expected=lesion.site_code)
            status = v.get("tissue_status") or (TissueStatus.tumour.value if lesion else TissueStatus.normal.value)
            row.record = {
                "donor_id": donor.id,
                "autopsy_id": donor.autopsy_id,
                "lesion_id": lesion.id if lesion else None,
                "code": v["code"],
                "region_label": v.get("region_label") if lesion else None,
                "kind": kind,
                "tissue_status": status,
                "distance_to_tumour_mm": v.get("distance_to_tumour_mm"),
                "site_code": site.code,
                "laterality": laterality(site, v.get("laterality") or (lesion.laterality if lesion else None)),
                "excised_at": excised,
                "prosector": v.get("prosector") or donor.prosector,
                "gross_description": v.get("gross_description"),
            }

        each(rows, build)
        existing_by(res, self, rows, ("donor_id", "code"),
                    lambda r: (r.record["donor_id"], r.values["code"]))  # type: ignore[index]

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = (
            select(SamplingSite, Donor.code, Lesion.code)  # type: ignore[call-overload,misc]
            .join(Donor, Donor.id == SamplingSite.donor_id)  # type: ignore[arg-type]
            .outerjoin(Lesion, Lesion.id == SamplingSite.lesion_id)  # type: ignore[arg-type]
            .order_by(SamplingSite.id)
        )
        yield from template_rows(self, session, statement, "donor_code", "lesion_code")


# ------------------------------------------------------------------------------------------------------- specimens


class ParentInfo(NamedTuple):
    id: int | None  # None while the parent is only in this file
    donor_id: int
    donor_code: str
    site_id: int
    site_code: str
    site_kind: str
    material_type: str
    unit: str
    collected_at: datetime


class SiteRef(NamedTuple):
    id: int
    kind: str
    excised_at: datetime


#: Material of a primary specimen by sampling-site kind (as the collection service chooses).
DEFAULT_MATERIAL = {
    SiteKind.tumour_region.value: MaterialType.tissue.value,
    SiteKind.normal_tissue.value: MaterialType.tissue.value,
    SiteKind.germline_blood.value: MaterialType.whole_blood.value,
    SiteKind.premortem_blood.value: MaterialType.whole_blood.value,
    SiteKind.bone_marrow.value: MaterialType.bone_marrow.value,
}

def specimen_quantities(row: Staged, *, positive: bool) -> None:
    """A specimen row's quantity with its unit (from the cell or the unit column, which must agree) and what is left
    (in the same unit, at most the quantity), as ``_quantity``, ``_unit`` and ``_remaining`` in its values."""
    v = row.values
    amount, unit = v["quantity"]
    given_unit = v.get("unit")
    if unit is None:
        if given_unit is None:
            raise invalid("quantity", amount, "give the unit in the cell ('50 mg') or in the unit column")
        unit = given_unit
    elif given_unit is not None and given_unit != unit:
        raise invalid("quantity", row.raw.get("quantity"), f"is in {unit} but the unit column says {given_unit}")
    if positive and amount <= 0:
        raise invalid("quantity", amount, "must be positive")
    remaining = v.get("quantity_remaining")
    if remaining is not None:
        if remaining[1] not in (None, unit):
            raise invalid("quantity_remaining", row.raw.get("quantity_remaining"), f"must be in {unit}, as the quantity")
        if remaining[0] > amount + 1e-9:
            raise invalid("quantity_remaining", remaining[0], f"must lie between 0 and the quantity ({amount:g})")
    v["_quantity"], v["_unit"] = amount, unit
    v["_remaining"] = amount if remaining is None else remaining[0]


SPECIMEN_VALUE_COLUMNS = (
    "stabilised_at", "fixation_end_at", "fixative", "decalcification_agent", "decalcification_hours",
    "concentration_ng_ul", "barcode", "er_status", "pr_status", "her2_status", "tumour_cellularity_pct",
    "necrosis_pct", "pathology_reviewer", "yield_ng", "a260_280", "rin", "din", "dv200_pct", "notes",
)


@register
class Specimens(Kind):
    name = "specimens"
    noun = "specimen"
    title = "Specimens"
    help = ("One row per specimen. A primary names its donor and sampling site; an aliquot or derivative names its "
            "parent_code instead (the parent may be an earlier row of the same file). Quantities may carry their "
            "unit ('5 mg', '200 ul', '0.2 ml'); the row records the present state (remaining quantity, status).")
    table = Specimen.__table__  # type: ignore[attr-defined]
    order = 70
    key = ("code",)
    identity = frozenset({"donor_id", "sampling_site_id", "parent_id", "lineage"})
    self_referencing = True
    columns = (
        text_col("code", "Unique specimen code, e.g. RA0001-L01A-SF1", required=True, max_length=64),
        text_col("donor_code", "Donor code (primary specimens; for others it must match the parent's)"),
        text_col("sampling_site", "Sampling-site code of a primary, e.g. L01-A or GB1", max_length=16,
                 targets=()),
        text_col("parent_code", "Parent specimen of an aliquot or derivative", max_length=64, targets=()),
        vocab_col("lineage", Lineage, "primary, aliquot or derivative (empty: from the parent and material)"),
        vocab_col("material_type", MaterialType, "Material (empty: from the site kind or the parent)"),
        vocab_col("storage_format", StorageFormat, "Storage format ('snap frozen', 'LN2', 'FFPE block'...)", required=True),
        datetime_col("collected_at", "Time collected (empty: the site's excision time or the parent's)"),
        datetime_col("stabilised_at", "Time into liquid nitrogen, fixative or medium"),
        datetime_col("fixation_end_at", "End of fixation"),
        vocab_col("fixative", Fixative, "Fixative (FFPE without one: nbf)"),
        vocab_col("decalcification_agent", DecalcificationAgent, "Decalcification agent (bone)"),
        num_col("decalcification_hours", "Hours of decalcification", minimum=0),
        quantity_col("quantity", "Quantity with its unit ('50 mg') or a number with the unit column", required=True,
                     targets=("quantity", "unit")),
        vocab_col("unit", QuantityUnit, "Unit when the quantity cell is a bare number"),
        quantity_col("quantity_remaining", "What is left (empty: the whole quantity)"),
        quantity_col("parent_quantity_used", "What making it took from the parent, in the parent's unit"),
        num_col("concentration_ng_ul", "Concentration of an analyte, ng/µl", minimum=0),
        int_col("freeze_thaw_count", "Freeze-thaw cycles so far", minimum=0),
        vocab_col("status", SpecimenStatus, "Status (empty: available, or depleted when nothing remains)"),
        text_col("barcode", "Barcode when different from the code", max_length=64),
        *receptor_cols("on this specimen"),
        pct_col("tumour_cellularity_pct", "Tumour cellularity, %"),
        pct_col("necrosis_pct", "Necrosis, %"),
        text_col("pathology_reviewer", "Who reviewed the pathology", max_length=120),
        num_col("yield_ng", "Nucleic-acid yield, ng", minimum=0),
        num_col("a260_280", "A260/280", minimum=0, maximum=5),
        num_col("rin", "RIN (RNA only)", minimum=0, maximum=10),
        num_col("din", "DIN (DNA only)", minimum=0, maximum=10),
        pct_col("dv200_pct", "DV200, %"),
        text_col("notes", "Notes", max_length=1000),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        require_safe("code", v["code"])
        parent, lineage = v.get("parent_code"), v.get("lineage")
        if parent is None:
            if lineage not in (None, Lineage.primary):
                raise invalid("parent_code", None, f"an {lineage} names its parent specimen")
            if not v.get("donor_code") or not v.get("sampling_site"):
                column = "donor_code" if not v.get("donor_code") else "sampling_site"
                raise invalid(column, None, "a primary specimen names its donor and sampling site")
        elif lineage == Lineage.primary:
            raise invalid("parent_code", parent, "a primary specimen has no parent")
        elif parent == v["code"]:
            raise invalid("parent_code", parent, "a specimen cannot be its own parent")
        specimen_quantities(row, positive=parent is None)
        check_order("stabilised_at", v.get("stabilised_at"), "fixation_end_at", v.get("fixation_end_at"))
        if v.get("fixation_end_at") is not None and v.get("stabilised_at") is None:
            raise invalid("fixation_end_at", v["fixation_end_at"].isoformat(), "needs the time fixation started")
        if v.get("decalcification_hours") is not None and v.get("decalcification_agent") is None:
            raise invalid("decalcification_hours", v["decalcification_hours"], "name the decalcification agent")
        if v["storage_format"] == StorageFormat.ffpe and v.get("fixative") is None:
            v["fixative"] = Fixative.nbf.value

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        in_file: dict[str, ParentInfo] = res.state.setdefault("specimens", {})
        session = res.session
        parent_codes = {r.values["parent_code"] for r in rows if r.values.get("parent_code")} - set(in_file)

        def fetch_parents(batch: list[Any]) -> dict[str, ParentInfo]:
            d, s = aliased(Donor), aliased(SamplingSite)
            statement = (
                select(Specimen.code, Specimen.id, Specimen.donor_id, d.code, Specimen.sampling_site_id, s.code,  # type: ignore[call-overload,misc]
                       s.kind, Specimen.material_type, Specimen.unit, Specimen.collected_at)
                .join(d, d.id == Specimen.donor_id)  # type: ignore[arg-type]
                .join(s, s.id == Specimen.sampling_site_id)  # type: ignore[arg-type]
                .where(Specimen.code.in_(batch))  # type: ignore[attr-defined]
            )
            return {r[0]: ParentInfo(*r[1:]) for r in session.execute(statement)}

        parents = res.lookup("specimen", parent_codes, fetch_parents)
        donor_codes = {r.values["donor_code"] for r in rows if r.values.get("donor_code")}
        donor_codes |= {p.donor_code for p in parents.values()}
        found = donors(res, donor_codes)
        site_keys = {(found[r.values["donor_code"]].id, r.values["sampling_site"])
                     for r in rows if r.values.get("sampling_site") and r.values.get("donor_code") in found}

        def fetch_sites(batch: list[Any]) -> dict[Any, SiteRef]:
            from sqlalchemy import tuple_

            statement = select(SamplingSite.donor_id, SamplingSite.code, SamplingSite.id, SamplingSite.kind,  # type: ignore[call-overload,misc]
                               SamplingSite.excised_at).where(tuple_(SamplingSite.donor_id, SamplingSite.code).in_(batch))
            return {(r[0], r[1]): SiteRef(r[2], r[3], r[4]) for r in session.execute(statement)}

        sites = res.lookup("sampling_site", site_keys, fetch_sites)
        # The value columns this file gives (and the fixative, which the checks fill in): the others stay NULL.
        present = res.state.get("present", SPECIMEN_VALUE_COLUMNS)
        value_names = [name for name in SPECIMEN_VALUE_COLUMNS if name in present or name == "fixative"]

        def build(row: Staged) -> None:
            v = row.values
            parent_code = v.get("parent_code")
            pending: dict[str, Any] = {}
            parent: ParentInfo | None = None
            if parent_code is None:
                donor = donor_of(row, found)
                site = sites.get((donor.id, v["sampling_site"]))
                if site is None:
                    raise row.fail("sampling_site", f"donor {donor.code}: sampling site {v['sampling_site']!r} not "
                                   "found (import sampling sites first)", expected="a sampling site of this donor")
                lineage = Lineage.primary.value
                material = v.get("material_type") or DEFAULT_MATERIAL[site.kind]
                collected = v.get("collected_at") or site.excised_at
                site_id, site_code, site_kind = site.id, v["sampling_site"], site.kind
            else:
                parent = in_file.get(parent_code) or parents.get(parent_code)
                if parent is None:
                    raise row.fail("parent_code", f"parent specimen {parent_code!r} not found in the database or in "
                                   "an earlier row of this file", expected="an existing specimen code")
                if parent.id is None:
                    pending["parent_id"] = parent_code
                known = donor_of(row, found, "donor_code") if v.get("donor_code") else found.get(parent.donor_code)
                if known is None:
                    raise row.fail("parent_code", f"donor of {parent_code} not found")
                donor = known
                if donor.id != parent.donor_id:
                    raise row.fail("donor_code", f"the parent {parent_code} belongs to donor {parent.donor_code}",
                                   expected=parent.donor_code)
                if donor.withdrawn:
                    raise row.fail("donor_code", f"donor {donor.code}: consent was withdrawn; nothing new can be recorded")
                if v.get("sampling_site") not in (None, parent.site_code):
                    raise row.fail("sampling_site", f"the parent {parent_code} is from {parent.site_code}",
                                   expected=parent.site_code)
                material = v.get("material_type") or parent.material_type
                lineage = v.get("lineage") or (Lineage.aliquot.value if material == parent.material_type
                                               else Lineage.derivative.value)
                if lineage == Lineage.aliquot and material != parent.material_type:
                    raise row.fail("material_type", f"an aliquot is the parent's material ({parent.material_type})",
                                   expected=parent.material_type)
                if lineage == Lineage.derivative and material not in DERIVABLE.get(parent.material_type, set()):
                    raise row.fail("material_type", f"{material} cannot be derived from {parent.material_type}",
                                   expected=", ".join(sorted(DERIVABLE.get(parent.material_type, set()))) or "nothing")
                if lineage == Lineage.aliquot and v["_unit"] != parent.unit:
                    raise row.fail("quantity", f"an aliquot is measured in the parent's unit ({parent.unit})",
                                   expected=parent.unit)
                used = v.get("parent_quantity_used")
                if used is not None and used[1] not in (None, parent.unit):
                    raise row.fail("parent_quantity_used", f"must be in the parent's unit ({parent.unit})",
                                   expected=parent.unit)
                collected = v.get("collected_at") or parent.collected_at
                site_id, site_code, site_kind = parent.site_id, parent.site_code, parent.site_kind
            if donor.death_at is not None and site_kind != SiteKind.premortem_blood and collected < donor.death_at:
                raise row.fail("collected_at", "a specimen cannot be collected before death (only a pre-mortem blood "
                               "draw can)", value=collected.isoformat(), expected=f"at or after {donor.death_at.isoformat()}")
            check_order("collected_at", collected, "stabilised_at", v.get("stabilised_at"))
            if material != MaterialType.rna and v.get("rin") is not None:
                raise row.fail("rin", "RIN is measured on RNA", expected="empty unless the material is rna")
            if material != MaterialType.dna and v.get("din") is not None:
                raise row.fail("din", "DIN is measured on DNA", expected="empty unless the material is dna")
            used = v.get("parent_quantity_used")
            status = v.get("status") or (SpecimenStatus.depleted.value if v["_remaining"] == 0
                                         else SpecimenStatus.available.value)
            row.record = {
                "code": v["code"],
                "donor_id": donor.id,
                "sampling_site_id": site_id,
                "parent_id": parent.id if parent is not None else None,
                "lineage": lineage,
                "material_type": material,
                "storage_format": v["storage_format"],
                "collected_at": collected,
                "quantity": v["_quantity"],
                "quantity_remaining": v["_remaining"],
                "unit": v["_unit"],
                "parent_quantity_used": None if used is None else used[0],
                "freeze_thaw_count": v.get("freeze_thaw_count") or 0,
                "status": status,
                **{name: v.get(name) for name in value_names},
            }
            row.pending = pending
            in_file[v["code"]] = ParentInfo(None, donor.id, donor.code, site_id, site_code, site_kind, material,
                                            v["_unit"], collected)

        each(rows, build)
        existing_by(res, self, rows, ("code",), lambda r: (r.values["code"],))
        for row in rows:
            if row.existing is not None and row.record is not None:
                info = in_file[row.values["code"]]
                in_file[row.values["code"]] = info._replace(id=row.existing["id"])
        for row in rows:
            if row.record is not None and "parent_id" in row.pending:
                parent_info = in_file.get(row.values["parent_code"])
                if parent_info is not None and parent_info.id is not None:
                    row.record["parent_id"] = parent_info.id
                    del row.pending["parent_id"]

    def after_insert(self, session: Session, rows: list[tuple[int, dict[str, Any]]], actor: User | None) -> None:
        """The chain of custody starts at collection: one event per imported specimen (a primary's at its collection
        time, an aliquot's or derivative's now), written by the database from the rows just inserted."""
        ids = [new_id for new_id, _rec in rows]
        if not ids:
            return
        where, params = id_filter(session.get_bind().dialect.name, ids)
        statement = text(
            "INSERT INTO custody_event (specimen_id, kind, occurred_at, user_id, note) "
            "SELECT id, CASE lineage WHEN :primary THEN :collected WHEN :aliquot THEN :aliquoted ELSE :derived END, "
            f"CASE WHEN lineage = :primary THEN collected_at ELSE :now END, :actor, 'imported' FROM specimen WHERE {where} "
            "ORDER BY id"
        ).bindparams(bindparam("now", type_=UTCDateTime()))
        session.execute(statement, {
            "primary": Lineage.primary.value, "aliquot": Lineage.aliquot.value,
            "collected": CustodyKind.collected.value, "aliquoted": CustodyKind.aliquoted.value,
            "derived": CustodyKind.derived.value, "now": utcnow(), "actor": actor.id if actor is not None else None,
            **params,
        })

    @staticmethod
    def _exported(tree: Any) -> Any:
        """Which specimens this kind's export holds: not those a passage produced nor anything made from them."""
        return Specimen.id.not_in(select(tree.c.id))  # type: ignore[union-attr]

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        parent = aliased(Specimen)
        statement = (
            select(Specimen, Donor.code, SamplingSite.code, parent.code)  # type: ignore[call-overload,misc]
            .join(Donor, Donor.id == Specimen.donor_id)  # type: ignore[arg-type]
            .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)  # type: ignore[arg-type]
            .outerjoin(parent, parent.id == Specimen.parent_id)  # type: ignore[arg-type]
            .where(self._exported(from_passages()))
            .order_by(Specimen.id)
        )
        yield from template_rows(self, session, statement, "donor_code", "sampling_site", "parent_code")


# ------------------------------------------------------------------------------------------------------ containers


class ContainerInfo(NamedTuple):
    id: int | None  # None while the container is only in this file
    code: str
    kind: str
    parent_code: str | None
    temperature_class: str | None
    grid_rows: int | None
    grid_cols: int | None


def containers(res: Resolver) -> dict[str, ContainerInfo]:
    """Every container by code (the storage tree is small: one query per import), plus those of this file."""
    cached = res.state.get("containers")
    if cached is None:
        parent = aliased(Container)
        rows = res.session.execute(
            select(Container.id, Container.code, Container.kind, parent.code, Container.temperature_class,  # type: ignore[call-overload,misc]
                   Container.grid_rows, Container.grid_cols)
            .outerjoin(parent, parent.id == Container.parent_id)  # type: ignore[arg-type]
        )
        cached = {r[1]: ContainerInfo(*r) for r in rows}
        res.state["containers"] = cached
    return cached  # type: ignore[no-any-return]


def temperature_in(tree: dict[str, ContainerInfo], code: str) -> str | None:
    """The MIABIS class a container sits at: its own or the nearest ancestor's (as ``storage.temperature_of_container``)."""
    seen: set[str] = set()
    node: ContainerInfo | None = tree.get(code)
    while node is not None and node.code not in seen:
        if node.temperature_class is not None:
            return node.temperature_class
        seen.add(node.code)
        node = tree.get(node.parent_code) if node.parent_code else None
    return None


def path_in(tree: dict[str, ContainerInfo], code: str) -> str:
    """``UH/PATH-B12/FRZ-01/R1/BOX-001`` (as ``storage.path_of``)."""
    parts: list[str] = []
    node: ContainerInfo | None = tree.get(code)
    while node is not None and node.code not in parts:
        parts.insert(0, node.code)
        node = tree.get(node.parent_code) if node.parent_code else None
    return "/".join(parts)


@register
class Containers(Kind):
    name = "containers"
    noun = "container"
    title = "Storage containers (the freezer layout)"
    help = ("One row per container: site, room, freezer or tank, rack or shelf, box, bag. A container names its "
            "parent (which may be an earlier row of the same file); its kind decides its grid, its temperature and "
            "what it may hold, as 'biobank storage add' does. Containers are moved with 'biobank storage move'.")
    table = Container.__table__  # type: ignore[attr-defined]
    order = 80
    key = ("code",)
    identity = frozenset({"kind", "parent_id"})
    self_referencing = True
    columns = (
        text_col("code", "Unique container code, e.g. FRZ-01 or BOX80-001", required=True, max_length=40),
        vocab_col("kind", ContainerKind, "Kind of container", required=True),
        text_col("parent_code", "Code of the container it stands in (empty only for a site)", max_length=40,
                 targets=()),
        text_col("name", "Name shown in listings, e.g. '-80 °C upright 1'", max_length=120),
        text_col("note", "Note", max_length=300),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        require_safe("code", v["code"])
        kind_spec = storage_kind(v["kind"])
        parent = v.get("parent_code")
        if parent is None and not kind_spec.root:
            roots = ", ".join(k.value for k, s in STORAGE_KINDS.items() if s.root)
            raise invalid("parent_code", None, f"a {v['kind']} goes inside another container (only {roots} stand alone)")
        if parent is not None and kind_spec.root:
            raise invalid("kind", v["kind"], f"a {v['kind']} stands at the top of the tree; it cannot go inside {parent}")
        if parent == v["code"]:
            raise invalid("parent_code", parent, "a container cannot stand inside itself")

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        tree = containers(res)

        def build(row: Staged) -> None:
            v = row.values
            kind_spec = storage_kind(v["kind"])
            parent_code = v.get("parent_code")
            pending: dict[str, Any] = {}
            parent: ContainerInfo | None = None
            if parent_code is not None:
                parent = tree.get(parent_code)
                if parent is None:
                    raise row.fail("parent_code", f"container {parent_code!r} not found in the database or in an "
                                   "earlier row of this file", expected="an existing container code")
                if not may_hold(parent.kind, v["kind"]):
                    allowed = ", ".join(sorted(k.value for k in storage_kind(parent.kind).holds)) or "no containers"
                    raise row.fail("kind", f"a {parent.kind} ({parent.code}) holds {allowed}, not a {v['kind']}",
                                   expected=allowed)
                if parent.id is None:
                    pending["parent_id"] = parent_code
            row.record = {
                "code": v["code"],
                "kind": v["kind"],
                "name": v.get("name"),
                "parent_id": parent.id if parent is not None else None,
                "temperature_class": kind_spec.temperature.value if kind_spec.temperature else None,
                "grid_rows": kind_spec.grid.rows if kind_spec.grid else None,
                "grid_cols": kind_spec.grid.cols if kind_spec.grid else None,
                "note": v.get("note"),
            }
            row.pending = pending
            known = tree.get(v["code"])
            tree[v["code"]] = ContainerInfo(
                known.id if known is not None else None, v["code"], v["kind"], parent_code,
                row.record["temperature_class"], row.record["grid_rows"], row.record["grid_cols"],
            ) if known is None else known

        each(rows, build)
        existing_by(res, self, rows, ("code",), lambda r: (r.values["code"],))
        for row in rows:
            if row.record is not None and "parent_id" in row.pending:
                parent = tree.get(row.values["parent_code"])
                if parent is not None and parent.id is not None:
                    row.record["parent_id"] = parent.id
                    del row.pending["parent_id"]

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        parent = aliased(Container)
        statement = (
            select(Container, parent.code)  # type: ignore[call-overload,misc]
            .outerjoin(parent, parent.id == Container.parent_id)  # type: ignore[arg-type]
            .order_by(Container.id)
        )
        for container, parent_code in session.execute(statement):
            yield {"code": container.code, "kind": container.kind, "parent_code": parent_code,
                   "name": container.name, "note": container.note}


# ------------------------------------------------------------------------------------------------------ placements


class StoredInfo(NamedTuple):
    id: int
    code: str
    status: str
    storage_format: str
    material_type: str


#: Statuses a placed specimen may have: storable ones, and in use (a checked-out specimen keeps its position).
PLACEABLE = frozenset(STORABLE | {SpecimenStatus.in_use.value})


@register
class Placements(Kind):
    name = "placements"
    noun = "placement of specimen"
    title = "Storage placements"
    help = ("One row per stored specimen: its code, the box, bag or drawer, and the position (empty for containers "
            "without a grid). The same rules as 'biobank storage store': one position holds one specimen, only a box, "
            "bag, bin or drawer holds specimens, and the format must suit the temperature. Each placement is a "
            "'stored' custody event. Import containers first; moves are made with 'biobank storage move'.")
    table = SpecimenLocation.__table__  # type: ignore[attr-defined]
    order = 99  # after every kind that makes specimens (passage_specimens: 97)
    key = ("specimen_code",)
    identity = frozenset({"specimen_id", "container_id", "position"})
    columns = (
        text_col("specimen_code", "Code of the specimen", required=True, max_length=64, targets=()),
        text_col("container_code", "Code of the box, bag, bin or drawer", required=True, max_length=40, targets=()),
        text_col("position", "Position such as A1 or 17 (empty for a bag or bin)", max_length=8, targets=()),
        datetime_col("placed_at", "When it was put there (empty: now)"),
    )

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        session = res.session
        tree = containers(res)
        taken: dict[tuple[int, str], str] = res.state.setdefault("placements_taken", {})
        now = res.state.setdefault("placements_now", utcnow())

        def fetch(batch: list[Any]) -> dict[str, StoredInfo]:
            statement = select(Specimen.id, Specimen.code, Specimen.status, Specimen.storage_format,  # type: ignore[call-overload,misc]
                               Specimen.material_type).where(Specimen.code.in_(batch))  # type: ignore[attr-defined]
            return {r[1]: StoredInfo(*r) for r in session.execute(statement)}

        found = res.lookup("specimen_stored", {r.values["specimen_code"] for r in rows}, fetch)
        box_ids = {tree[r.values["container_code"]].id for r in rows if r.values["container_code"] in tree}
        box_ids.discard(None)
        if box_ids:
            location = SpecimenLocation.__table__  # type: ignore[attr-defined]
            specimen = Specimen.__table__  # type: ignore[attr-defined]
            statement = (
                select(location.c.container_id, location.c.position, specimen.c.code)
                .join(specimen, specimen.c.id == location.c.specimen_id)
                .where(location.c.container_id.in_(box_ids), location.c.position.is_not(None))
            )
            for container_id, position, code in session.execute(statement):
                taken.setdefault((container_id, position), code)

        def build(row: Staged) -> None:
            v = row.values
            stored = found.get(v["specimen_code"])
            if stored is None:
                raise row.fail("specimen_code", f"specimen {v['specimen_code']!r} not found (import specimens first)",
                               expected="an existing specimen code")
            box = tree.get(v["container_code"])
            if box is None or box.id is None:
                raise row.fail("container_code", f"container {v['container_code']!r} not found (import containers "
                               "first)", expected="an existing box, bag, bin or drawer")
            if not storage_kind(box.kind).holds_specimens:
                raise row.fail("container_code", f"a {box.kind} holds containers, not specimens",
                               expected="a box, bag, bin or drawer")
            if stored.status not in PLACEABLE:
                raise row.fail("specimen_code", f"specimen is {stored.status}; only available, reserved or in-use "
                               "material has a place in storage", expected="a specimen in the biobank")
            verdict = compat.check(stored.storage_format, stored.material_type, temperature_in(tree, box.code))
            if not verdict.allowed:
                raise row.fail("container_code", f"{stored.code}: {verdict.reason}",
                               expected="a container at a suitable temperature")
            position = v.get("position")
            box_grid = grid_of(box.kind, box.grid_rows, box.grid_cols)
            if box_grid is None:
                if position is not None:
                    raise row.fail("position", f"{box.code} is a {box.kind} without positions",
                                   expected="empty for a container without a grid")
            else:
                if position is None:
                    raise row.fail("position", f"{box.code} is a {box.kind}: give the position",
                                   expected=f"a position of the {box_grid.describe()} grid")
                try:
                    position = box_grid.normalise(position)
                except CoordinateError as exc:
                    raise row.fail("position", f"{box.code}: {exc}",
                                   expected=f"a position of the {box_grid.describe()} grid") from None
                holder = taken.get((box.id, position))
                if holder is not None and holder != stored.code:
                    raise row.fail("position", f"box {box.code} position {position}: already holds {holder} "
                                   "(one position, one specimen)", expected="a free position")
                taken[(box.id, position)] = stored.code
            row.record = {
                "specimen_id": stored.id,
                "container_id": box.id,
                "position": position,
                "placed_at": v.get("placed_at") or now,
            }

        each(rows, build)
        existing_by(res, self, rows, ("specimen_id",), lambda r: (r.record["specimen_id"],))  # type: ignore[index]
        for row in rows:
            if row.existing is not None and row.record is not None and row.values.get("placed_at") is None:
                row.record["placed_at"] = row.existing["placed_at"]  # an empty cell does not restamp a placement

    def after_insert(self, session: Session, rows: list[tuple[int, dict[str, Any]]], actor: User | None) -> None:
        """As storing does: a 'stored' custody event per placement, to the container's path and position."""
        parent = aliased(Container)
        tree: dict[str, ContainerInfo] = {}
        codes: dict[int, str] = {}
        for r in session.execute(
            select(Container.id, Container.code, Container.kind, parent.code, Container.temperature_class,  # type: ignore[call-overload,misc]
                   Container.grid_rows, Container.grid_cols)
            .outerjoin(parent, parent.id == Container.parent_id)  # type: ignore[arg-type]
        ):
            tree[r[1]] = ContainerInfo(*r)
            codes[r[0]] = r[1]
        paths: dict[int, str] = {}
        events = []
        for _id, rec in rows:
            box_id = rec["container_id"]
            if box_id not in paths:
                paths[box_id] = path_in(tree, codes[box_id])
            where = f"{paths[box_id]}:{rec['position']}" if rec["position"] else paths[box_id]
            events.append({
                "specimen_id": rec["specimen_id"], "kind": CustodyKind.stored.value, "occurred_at": rec["placed_at"],
                "user_id": actor.id if actor is not None else None, "from_location": None, "to_location": where,
                "note": "imported",
            })
        insert_rows(session, CustodyEvent.__table__, events)  # type: ignore[attr-defined]

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = (
            select(SpecimenLocation, Specimen.code, Container.code)  # type: ignore[call-overload,misc]
            .join(Specimen, Specimen.id == SpecimenLocation.specimen_id)  # type: ignore[arg-type]
            .join(Container, Container.id == SpecimenLocation.container_id)  # type: ignore[arg-type]
            .order_by(SpecimenLocation.id)
        )
        for location, specimen_code, container_code in session.execute(statement):
            yield {"specimen_code": specimen_code, "container_code": container_code,
                   "position": location.position, "placed_at": location.placed_at}


# --------------------------------------------------------------------------------------------------- derived models


def matrix_col(name: str, help: str) -> Column:
    """The culture matrix: 'none' is a value here (no matrix), not an empty cell."""
    coercer = c.vocab(Matrix)

    def run(raw: Any, _ctx: Context) -> c.Coerced[Any]:
        if isinstance(raw, str) and raw.strip().casefold() == Matrix.none.value:
            return c.Coerced(Matrix.none.value)
        result = coercer(raw)
        return c.Coerced(None if result.value is None else result.value.value, result.note)

    return Column(name, run, help, vocabulary=tuple(m.value for m in Matrix), type="vocabulary")


class SourceInfo(NamedTuple):
    id: int
    donor_id: int
    donor_code: str
    storage_format: str
    collected_at: datetime


def model_consent(res: Resolver, donor_ids: set[int]) -> set[int]:
    """Donors whose consents cover model derivation and who have not withdrawn (as ``require_consent``)."""
    def fetch(batch: list[Any]) -> dict[int, bool]:
        consented = {r[0] for r in res.session.execute(
            select(Consent.donor_id).where(Consent.donor_id.in_(batch), Consent.model_derivation.is_(True)))}  # type: ignore[attr-defined,call-overload,union-attr]
        withdrawn = {r[0] for r in res.session.execute(
            select(ConsentWithdrawal.donor_id).where(ConsentWithdrawal.donor_id.in_(batch)))}  # type: ignore[attr-defined,call-overload]
        return {donor_id: donor_id in consented and donor_id not in withdrawn for donor_id in batch}

    return {donor_id for donor_id, ok in res.lookup("model_consent", donor_ids, fetch).items() if ok}


def noon(day: date) -> datetime:
    """A day as a time, as the models service records it (12:00 UTC)."""
    return datetime.combine(day, time(12), UTC)


@register
class Models(Kind):
    name = "models"
    noun = "model"
    title = "Derived models (organoids, PDX, cell lines)"
    help = ("One row per model derived from a fresh or viable cryopreserved specimen of a donor who consented to model "
            "derivation. The row records the model's present state: its status with the dates that go with it "
            "(established_on for established or cryobanked, failed_on for failed, ended_on for discontinued). "
            "The source's remaining quantity is the specimens file's business. QC results are recorded with "
            "'biobank models qc'; an upsert that establishes a model needs the QC the settings require.")
    table = DerivedModel.__table__  # type: ignore[attr-defined]
    order = 90
    key = ("code",)
    identity = frozenset({"donor_id", "source_specimen_id", "kind"})
    columns = (
        text_col("code", "Unique model code, e.g. RA0001-L02A-ORG1", required=True, max_length=64),
        vocab_col("kind", ModelKind, "organoid, pdx or cell_line", required=True),
        text_col("source_code", "Code of the fresh or viable_cryo specimen it was derived from", required=True,
                 max_length=64, targets=()),
        vocab_col("status", ModelStatus, "Status (empty: initiated)"),
        date_col("initiated_on", "Day of plating or first engraftment", required=True),
        date_col("established_on", "Day it was established (established, cryobanked, or discontinued after that)"),
        date_col("failed_on", "Day it failed (failed only)"),
        date_col("ended_on", "Day it was discontinued (discontinued only)"),
        text_col("host_strain_name", "PDX: host strain, e.g. NSG", max_length=60),
        text_col("host_strain_nomenclature", "PDX: official strain nomenclature", max_length=120),
        text_col("engraftment_site", "PDX: where it was engrafted, e.g. subcutaneous flank", max_length=120),
        vocab_col("engraftment_type", EngraftmentType, "PDX: orthotopic or heterotopic"),
        vocab_col("tumour_preparation", TumourPreparation, "PDX: fragment or cell suspension"),
        bool_col("humanised", "PDX: humanised host (yes/no; empty: no)"),
        text_col("humanisation_type", "PDX: how the host was humanised", max_length=120),
        text_col("medium", "Organoid or cell line: culture medium", max_length=200),
        matrix_col("matrix", "Organoid or cell line: matrix"),
        vocab_col("growth_properties", GrowthProperties, "Organoid or cell line: how it grows"),
        text_col("notes", "Notes", max_length=1000),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        require_safe("code", v["code"])
        kind = v["kind"]
        if kind == ModelKind.pdx:
            if v.get("host_strain_name") is None:
                raise invalid("host_strain_name", None, "a PDX names its host strain (e.g. NSG)")
            for name in CULTURE_FIELDS:
                if v.get(name) is not None:
                    raise invalid(name, v[name], "applies to organoids and cell lines, not to a PDX")
        else:
            for name in PDX_FIELDS:
                if v.get(name) is not None:
                    raise invalid(name, v[name], f"applies to a PDX, not to a {kind}")
            if v.get("humanised"):
                raise invalid("humanised", "yes", f"only a PDX host is humanised, not a {kind}")
        if v.get("humanisation_type") is not None and not v.get("humanised"):
            raise invalid("humanisation_type", v["humanisation_type"], "given for a host that is not humanised")
        status = v.get("status") or ModelStatus.initiated.value
        v["status"] = status
        initiated = v["initiated_on"]
        for name in ("established_on", "failed_on", "ended_on"):
            day = v.get(name)
            if day is not None and day < initiated:
                raise invalid(name, day.isoformat(), f"is before the model was initiated ({initiated})")
        established, failed, ended = v.get("established_on"), v.get("failed_on"), v.get("ended_on")
        if status in (ModelStatus.established, ModelStatus.cryobanked) and established is None:
            raise invalid("established_on", None, f"a {status} model has the day it was established")
        if status == ModelStatus.failed and failed is None:
            raise invalid("failed_on", None, "a failed model has the day it failed")
        if status == ModelStatus.discontinued and ended is None:
            raise invalid("ended_on", None, "a discontinued model has the day it was discontinued")
        if failed is not None and status != ModelStatus.failed:
            raise invalid("failed_on", failed.isoformat(), f"only a failed model has one (status is {status})")
        if ended is not None and status != ModelStatus.discontinued:
            raise invalid("ended_on", ended.isoformat(), f"only a discontinued model has one (status is {status})")
        if established is not None and status not in ESTABLISHED_OR_BEYOND | {ModelStatus.discontinued}:
            raise invalid("established_on", established.isoformat(), f"a {status} model was not established")
        if established is not None and ended is not None and ended < established:
            raise invalid("ended_on", ended.isoformat(), f"is before the model was established ({established})")

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        session = res.session

        def fetch(batch: list[Any]) -> dict[str, SourceInfo]:
            statement = (
                select(Specimen.code, Specimen.id, Specimen.donor_id, Donor.code, Specimen.storage_format,  # type: ignore[call-overload,misc]
                       Specimen.collected_at)
                .join(Donor, Donor.id == Specimen.donor_id)  # type: ignore[arg-type]
                .where(Specimen.code.in_(batch))  # type: ignore[attr-defined]
            )
            return {r[0]: SourceInfo(*r[1:]) for r in session.execute(statement)}

        sources = res.lookup("model_source", {r.values["source_code"] for r in rows}, fetch)
        consenting = model_consent(res, {s.donor_id for s in sources.values()})

        def build(row: Staged) -> None:
            v = row.values
            source = sources.get(v["source_code"])
            if source is None:
                raise row.fail("source_code", f"specimen {v['source_code']!r} not found (import specimens first)",
                               expected="an existing specimen code")
            if source.storage_format not in VIABLE_SOURCE_FORMATS:
                raise row.fail("source_code", f"{v['source_code']} is {source.storage_format}; a model needs living "
                               "material", expected="a fresh or viable_cryo specimen")
            if source.donor_id not in consenting:
                raise row.fail("source_code", f"donor {source.donor_code}: no consent to model derivation, or "
                               "consent was withdrawn", expected="a specimen of a donor who consented to model_derivation")
            if v["initiated_on"] < source.collected_at.date():
                raise row.fail("initiated_on", f"is before the source was collected ({source.collected_at.date()})",
                               value=v["initiated_on"].isoformat(), expected=f"on or after {source.collected_at.date()}")
            row.record = {
                "code": v["code"],
                "kind": v["kind"],
                "donor_id": source.donor_id,
                "source_specimen_id": source.id,
                "status": v["status"],
                "humanised": bool(v.get("humanised")),
                **{name: v.get(name) for name in (
                    "initiated_on", "established_on", "failed_on", "ended_on", *PDX_FIELDS, *CULTURE_FIELDS, "notes")},
            }

        each(rows, build)
        existing_by(res, self, rows, ("code",), lambda r: (r.values["code"],))
        for row in rows:
            if row.existing is None or row.record is None or row.existing["status"] == row.record["status"]:
                continue
            current, target = ModelStatus(row.existing["status"]), ModelStatus(row.record["status"])
            if target not in STATUS_TRANSITIONS[current]:
                options = ", ".join(sorted(s.value for s in STATUS_TRANSITIONS[current])) or "none (final)"
                row.error("status", f"model {row.values['code']} is {current}; allowed next: {options}",
                          expected=options)
                row.record = None
            elif target == ModelStatus.established:
                model = session.get(DerivedModel, row.existing["id"])
                assert model is not None
                missing = [name for name, ok in qc_requirements_met(session, model).items() if not ok]
                if missing:
                    row.error("status", f"model {model.code}: cannot be established without passing QC: "
                              f"{', '.join(missing)} (record QC with 'biobank models qc' first)",
                              expected="the QC the settings require")
                    row.record = None

    def after_insert(self, session: Session, rows: list[tuple[int, dict[str, Any]]], actor: User | None) -> None:
        """As starting a model does: a 'derived' custody event on the source specimen."""
        events = [
            {
                "specimen_id": rec["source_specimen_id"], "kind": CustodyKind.derived.value,
                "occurred_at": noon(rec["initiated_on"]), "user_id": actor.id if actor is not None else None,
                "from_location": None, "to_location": None,
                "note": f"model {rec['code']} ({rec['kind']}) initiated; imported",
            }
            for _id, rec in rows
        ]
        insert_rows(session, CustodyEvent.__table__, events)  # type: ignore[attr-defined]

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = (
            select(DerivedModel, Specimen.code)  # type: ignore[call-overload,misc]
            .join(Specimen, Specimen.id == DerivedModel.source_specimen_id)  # type: ignore[arg-type]
            .order_by(DerivedModel.id)
        )
        yield from template_rows(self, session, statement, "source_code")


# -------------------------------------------------------------------------------------------------------- passages


class ModelInfo(NamedTuple):
    id: int
    kind: str
    donor_id: int
    initiated_on: date
    failed_on: date | None
    ended_on: date | None


class PassageInfo(NamedTuple):
    id: int | None  # None while the passage is only in this file
    number: int
    passaged_on: date


@register
class Passages(Kind):
    name = "passages"
    noun = "passage"
    title = "Passages of derived models"
    help = ("One row per passage: P0 (no parent) is the first plating or engraftment; every later passage names its "
            "parent passage of the same model (which may be an earlier row of the same file) and its number is the "
            "parent's plus one. A PDX passage records latency in days, a culture its doubling time.")
    table = ModelPassage.__table__  # type: ignore[attr-defined]
    order = 95
    key = ("model_code", "label")
    identity = frozenset({"model_id", "parent_passage_id", "number"})
    self_referencing = True
    columns = (
        text_col("model_code", "Code of the model", required=True, max_length=64, targets=()),
        text_col("label", "Passage label, e.g. P0, P1, P2-B", required=True, max_length=16),
        text_col("parent_label", "Label of the parent passage (empty for P0)", max_length=16, targets=()),
        date_col("passaged_on", "Day of the passage", required=True),
        text_col("mouse_or_vessel_id", "Mouse or vessel identifier", max_length=64),
        int_col("latency_days", "PDX: days to a palpable tumour", minimum=0),
        num_col("doubling_time_hours", "Organoid or cell line: doubling time in hours", minimum=0),
        date_col("distributed_on", "Day it was sent to a recipient"),
        text_col("distributed_to", "Recipient it was sent to", max_length=200),
        text_col("notes", "Notes", max_length=1000),
    )

    def natural(self, record: dict[str, Any]) -> Any:
        return (record["model_id"], record["label"])

    def check(self, row: Staged) -> None:
        v = row.values
        require_safe("label", v["label"])
        if v.get("parent_label") == v["label"]:
            raise invalid("parent_label", v["parent_label"], "a passage cannot be its own parent")
        hours = v.get("doubling_time_hours")
        if hours is not None and hours <= 0:
            raise invalid("doubling_time_hours", hours, "must be positive")
        on, to = v.get("distributed_on"), v.get("distributed_to")
        if (on is None) != (to is None):
            raise invalid("distributed_to" if to is None else "distributed_on", None,
                          "a distribution names both its recipient and its day")
        check_order("passaged_on", v["passaged_on"], "distributed_on", on)

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        session = res.session
        in_file: dict[tuple[int, str], PassageInfo] = res.state.setdefault("passages", {})

        def fetch_models(batch: list[Any]) -> dict[str, ModelInfo]:
            statement = select(DerivedModel.code, DerivedModel.id, DerivedModel.kind, DerivedModel.donor_id,  # type: ignore[call-overload,misc]
                               DerivedModel.initiated_on, DerivedModel.failed_on, DerivedModel.ended_on).where(
                DerivedModel.code.in_(batch))  # type: ignore[attr-defined]
            return {r[0]: ModelInfo(*r[1:]) for r in session.execute(statement)}

        models = res.lookup("model", {r.values["model_code"] for r in rows}, fetch_models)
        parent_keys = {(models[r.values["model_code"]].id, r.values["parent_label"]) for r in rows
                       if r.values.get("parent_label") and r.values["model_code"] in models}

        def fetch_passages(batch: list[Any]) -> dict[Any, PassageInfo]:
            statement = select(ModelPassage.model_id, ModelPassage.label, ModelPassage.id, ModelPassage.number,  # type: ignore[call-overload,misc]
                               ModelPassage.passaged_on).where(tuple_(ModelPassage.model_id, ModelPassage.label).in_(batch))
            return {(r[0], r[1]): PassageInfo(*r[2:]) for r in session.execute(statement)}

        stored = res.lookup("passage", set(parent_keys) - set(in_file), fetch_passages)
        distributing = {models[r.values["model_code"]].donor_id for r in rows
                        if r.values.get("distributed_on") and r.values["model_code"] in models}
        consenting = model_consent(res, distributing) if distributing else set()

        def build(row: Staged) -> None:
            v = row.values
            model = models.get(v["model_code"])
            if model is None:
                raise row.fail("model_code", f"model {v['model_code']!r} not found (import models first)",
                               expected="an existing model code")
            on = v["passaged_on"]
            if on < model.initiated_on:
                raise row.fail("passaged_on", f"is before the model was initiated ({model.initiated_on})",
                               value=on.isoformat(), expected=f"on or after {model.initiated_on}")
            last = model.failed_on or model.ended_on
            if last is not None and on > last:
                raise row.fail("passaged_on", f"model {v['model_code']} stopped on {last}; no passage comes after",
                               value=on.isoformat(), expected=f"on or before {last}")
            pending: dict[str, Any] = {}
            parent: PassageInfo | None = None
            if v.get("parent_label") is not None:
                parent = in_file.get((model.id, v["parent_label"])) or stored.get((model.id, v["parent_label"]))
                if parent is None:
                    raise row.fail("parent_label", f"model {v['model_code']}: passage {v['parent_label']!r} not found "
                                   "in the database or in an earlier row of this file", expected="an existing passage label")
                if on < parent.passaged_on:
                    raise row.fail("passaged_on", f"is before its parent {v['parent_label']} ({parent.passaged_on})",
                                   value=on.isoformat(), expected=f"on or after {parent.passaged_on}")
                if parent.id is None:
                    pending["parent_passage_id"] = (model.id, v["parent_label"])
            if v.get("latency_days") is not None and model.kind != ModelKind.pdx:
                raise row.fail("latency_days", f"latency applies to a PDX; give a {model.kind} a doubling time",
                               expected="empty for an organoid or cell line")
            if v.get("doubling_time_hours") is not None and model.kind == ModelKind.pdx:
                raise row.fail("doubling_time_hours", "a PDX passage records its latency in days",
                               expected="empty for a PDX")
            if v.get("distributed_on") is not None and model.donor_id not in consenting:
                raise row.fail("distributed_to", f"model {v['model_code']}: the donor has no consent to model "
                               "derivation or withdrew it; the passage cannot be distributed",
                               expected="empty (not distributed)")
            number = parent.number + 1 if parent is not None else 0
            row.record = {
                "model_id": model.id,
                "number": number,
                "label": v["label"],
                "parent_passage_id": parent.id if parent is not None else None,
                **{name: v.get(name) for name in (
                    "passaged_on", "mouse_or_vessel_id", "latency_days", "doubling_time_hours", "distributed_on",
                    "distributed_to", "notes")},
            }
            row.pending = pending
            key = (model.id, v["label"])
            if key not in in_file:
                in_file[key] = PassageInfo(None, number, on)

        each(rows, build)
        existing_by(res, self, rows, ("model_id", "label"),
                    lambda r: (r.record["model_id"], r.values["label"]))  # type: ignore[index]
        for row in rows:
            if row.existing is not None and row.record is not None:
                key = (row.record["model_id"], row.values["label"])
                in_file[key] = in_file[key]._replace(id=row.existing["id"])
        for row in rows:
            if row.record is not None and "parent_passage_id" in row.pending:
                parent_info = in_file.get(row.pending["parent_passage_id"])
                if parent_info is not None and parent_info.id is not None:
                    row.record["parent_passage_id"] = parent_info.id
                    del row.pending["parent_passage_id"]

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        parent = aliased(ModelPassage)
        statement = (
            select(ModelPassage, DerivedModel.code, parent.label)  # type: ignore[call-overload,misc]
            .join(DerivedModel, DerivedModel.id == ModelPassage.model_id)  # type: ignore[arg-type]
            .outerjoin(parent, parent.id == ModelPassage.parent_passage_id)  # type: ignore[arg-type]
            .order_by(ModelPassage.id)
        )
        yield from template_rows(self, session, statement, "model_code", "parent_label")


# ----------------------------------------------------------------------------------------------- passage specimens


class PassageOrigin(NamedTuple):
    passage_id: int
    passaged_on: date
    model_id: int
    donor_id: int
    source_id: int
    site_id: int


@register
class PassageSpecimens(Kind):
    name = "passage_specimens"
    noun = "specimen"
    title = "Specimens produced by a passage"
    help = ("One row per specimen a passage of a derived model produced (frozen vials, xenograft tissue, DNA), as "
            "'biobank models specimens' records them: the donor and sampling site are the model's source specimen's, "
            "which is also the parent (a derivative). Import models and passages first.")
    table = Specimen.__table__  # type: ignore[attr-defined]
    order = 97
    key = ("code",)
    identity = frozenset({"donor_id", "sampling_site_id", "parent_id", "passage_id", "lineage", "material_type"})
    columns = (
        text_col("code", "Unique specimen code, e.g. ORG-0001-P3-VC1", required=True, max_length=64),
        text_col("model_code", "Code of the model", required=True, max_length=64, targets=()),
        text_col("passage_label", "Label of the passage that produced it, e.g. P3", required=True, max_length=16,
                 targets=()),
        vocab_col("material_type", MaterialType, "Material: " + ", ".join(PASSAGE_MATERIALS), required=True),
        vocab_col("storage_format", StorageFormat, "Storage format (as the material allows)", required=True),
        quantity_col("quantity", "Quantity with its unit ('50 mg', '1000000 cells') or a number with the unit column",
                     required=True, targets=("quantity", "unit")),
        vocab_col("unit", QuantityUnit, "Unit when the quantity cell is a bare number"),
        quantity_col("quantity_remaining", "What is left (empty: the whole quantity)"),
        datetime_col("collected_at", "Time it was taken from the passage (empty: noon UTC on the passage day)"),
        datetime_col("stabilised_at", "Time frozen or fixed (empty: the time it was taken)"),
        int_col("freeze_thaw_count", "Freeze-thaw cycles so far", minimum=0),
        vocab_col("status", SpecimenStatus, "Status (empty: available, or depleted when nothing remains)"),
        text_col("barcode", "Barcode when different from the code", max_length=64),
        text_col("notes", "Notes", max_length=1000),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        require_safe("code", v["code"])
        check_passage_yield(v["material_type"], v["storage_format"])
        specimen_quantities(row, positive=True)
        check_order("collected_at", v.get("collected_at"), "stabilised_at", v.get("stabilised_at"))

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        session = res.session

        def fetch_origins(batch: list[Any]) -> dict[Any, PassageOrigin]:
            statement = (
                select(DerivedModel.code, ModelPassage.label, ModelPassage.id, ModelPassage.passaged_on,  # type: ignore[call-overload,misc]
                       DerivedModel.id, DerivedModel.donor_id, Specimen.id, Specimen.sampling_site_id)
                .join(ModelPassage, ModelPassage.model_id == DerivedModel.id)  # type: ignore[arg-type]
                .join(Specimen, Specimen.id == DerivedModel.source_specimen_id)  # type: ignore[arg-type]
                .where(tuple_(DerivedModel.code, ModelPassage.label).in_(batch))
            )
            return {(r[0], r[1]): PassageOrigin(*r[2:]) for r in session.execute(statement)}

        origins = res.lookup("passage_origin", {(r.values["model_code"], r.values["passage_label"]) for r in rows},
                             fetch_origins)
        consenting = model_consent(res, {origin.donor_id for origin in origins.values()})

        def build(row: Staged) -> None:
            v = row.values
            origin = origins.get((v["model_code"], v["passage_label"]))
            if origin is None:
                raise row.fail("passage_label", f"model {v['model_code']!r} has no passage {v['passage_label']!r} "
                               "(import models and passages first)", expected="an existing model and passage")
            if origin.donor_id not in consenting:
                raise row.fail("model_code", f"model {v['model_code']}: the donor has no consent to model derivation "
                               "or withdrew it; nothing new can be recorded", expected="a model of a consenting donor")
            collected = v.get("collected_at") or noon(origin.passaged_on)
            if collected.date() < origin.passaged_on:
                raise row.fail("collected_at", f"is before passage {v['passage_label']} ({origin.passaged_on})",
                               value=collected.isoformat(), expected=f"on or after {origin.passaged_on}")
            stabilised = v.get("stabilised_at") or collected
            check_order("collected_at", collected, "stabilised_at", stabilised)
            row.record = {
                "code": v["code"],
                "donor_id": origin.donor_id,
                "sampling_site_id": origin.site_id,
                "parent_id": origin.source_id,
                "passage_id": origin.passage_id,
                "lineage": Lineage.derivative.value,
                "material_type": v["material_type"],
                "storage_format": v["storage_format"],
                "collected_at": collected,
                "stabilised_at": stabilised,
                "fixative": Fixative.nbf.value if v["storage_format"] == StorageFormat.ffpe else None,
                "quantity": v["_quantity"],
                "quantity_remaining": v["_remaining"],
                "unit": v["_unit"],
                "freeze_thaw_count": v.get("freeze_thaw_count") or 0,
                "status": v.get("status") or (SpecimenStatus.depleted.value if v["_remaining"] == 0
                                              else SpecimenStatus.available.value),
                "barcode": v.get("barcode"),
                "notes": v.get("notes"),
            }

        each(rows, build)
        existing_by(res, self, rows, ("code",), lambda r: (r.values["code"],))

    def after_insert(self, session: Session, rows: list[tuple[int, dict[str, Any]]], actor: User | None) -> None:
        """The chain of custody starts when the passage produced the specimen: one 'derived' event at that time."""
        ids = [new_id for new_id, _rec in rows]
        if not ids:
            return
        where, params = id_filter(session.get_bind().dialect.name, ids)
        session.execute(text(
            "INSERT INTO custody_event (specimen_id, kind, occurred_at, user_id, note) "
            f"SELECT id, :derived, collected_at, :actor, 'imported' FROM specimen WHERE {where} ORDER BY id"
        ), {"derived": CustodyKind.derived.value, "actor": actor.id if actor is not None else None, **params})

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = (
            select(Specimen, DerivedModel.code, ModelPassage.label)  # type: ignore[call-overload,misc]
            .join(ModelPassage, ModelPassage.id == Specimen.passage_id)  # type: ignore[arg-type]
            .join(DerivedModel, DerivedModel.id == ModelPassage.model_id)  # type: ignore[arg-type]
            .order_by(Specimen.id)
        )
        yield from template_rows(self, session, statement, "model_code", "passage_label")


def from_passages() -> Any:
    """A recursive CTE of the ids of the specimens passages produced and of everything made from them."""
    tree = select(Specimen.id).where(Specimen.passage_id.is_not(None)).cte("from_passage", recursive=True)  # type: ignore[call-overload,union-attr]
    child = aliased(Specimen)
    return tree.union_all(select(child.id).where(child.parent_id == tree.c.id))  # type: ignore[call-overload,arg-type]


@register
class PassageDescendants(Specimens):
    name = "passage_descendants"
    title = "Specimens made from passage specimens"
    help = ("Aliquots and derivatives of the specimens a passage produced (DNA from an organoid vial, sections of "
            "xenograft tissue): the columns and rules of 'specimens', imported after 'passage_specimens' so that "
            "their parents exist. The export of 'specimens' leaves these rows out.")
    order = 98

    @staticmethod
    def _exported(tree: Any) -> Any:
        return Specimen.id.in_(select(tree.c.id)) & Specimen.passage_id.is_(None)  # type: ignore[union-attr]


# -------------------------------------------------------------------------------------------------------- model QC


class TestedPassage(NamedTuple):
    id: int
    passaged_on: date


@register
class ModelQCResults(Kind):
    name = "model_qc"
    noun = "QC result"
    title = "QC of derived models"
    help = ("One row per QC of a tested passage, as 'biobank models qc' records it: identity (STR or SNP match to the "
            "donor's germline), mycoplasma, mouse content, histology, origin. Whether it passed is judged from the "
            "thresholds of the settings, as for a QC entered by hand. Import after the passages.")
    table = ModelQC.__table__  # type: ignore[attr-defined]
    order = 96
    key = ("model_code", "passage_label", "tested_on")
    identity = frozenset({"passage_id", "tested_on"})
    columns = (
        text_col("model_code", "Code of the model", required=True, max_length=64, targets=()),
        text_col("passage_label", "Label of the tested passage, e.g. P2", required=True, max_length=16, targets=()),
        date_col("tested_on", "Day of the test", required=True),
        vocab_col("identity_method", IdentityMethod, "How identity was tested (str or snp)"),
        pct_col("identity_match_pct", "Match to the donor's germline, %"),
        vocab_col("mycoplasma", MycoplasmaResult, "Mycoplasma result (empty: not tested)"),
        pct_col("mouse_content_pct", "Mouse content, %"),
        bool_col("histology_concordant", "Histology concordant with the tumour (yes/no)"),
        bool_col("not_mouse_or_ebv_origin", "Not of mouse or EBV-lymphoma origin (yes/no)"),
        text_col("notes", "Notes (empty: the reasons a failed QC failed)", max_length=1000),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        try:
            check_qc_results(**{name: v.get(name) for name in (
                "identity_method", "identity_match_pct", "mycoplasma", "mouse_content_pct", "histology_concordant",
                "not_mouse_or_ebv_origin")})
        except BiobankError as exc:  # "nothing measured" names no column: the template's first result column
            if exc.field == "qc":
                raise invalid("mycoplasma", None, "give at least one QC result") from exc
            raise

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        from biobank.config import get_settings

        session = res.session
        settings = get_settings()

        def fetch(batch: list[Any]) -> dict[Any, TestedPassage]:
            statement = (
                select(DerivedModel.code, ModelPassage.label, ModelPassage.id, ModelPassage.passaged_on)  # type: ignore[call-overload,misc]
                .join(ModelPassage, ModelPassage.model_id == DerivedModel.id)  # type: ignore[arg-type]
                .where(tuple_(DerivedModel.code, ModelPassage.label).in_(batch))
            )
            return {(r[0], r[1]): TestedPassage(r[2], r[3]) for r in session.execute(statement)}

        passages = res.lookup("tested_passage", {(r.values["model_code"], r.values["passage_label"]) for r in rows},
                              fetch)

        def build(row: Staged) -> None:
            v = row.values
            passage = passages.get((v["model_code"], v["passage_label"]))
            if passage is None:
                raise row.fail("passage_label", f"model {v['model_code']!r} has no passage {v['passage_label']!r} "
                               "(import models and passages first)", expected="an existing model and passage")
            if v["tested_on"] < passage.passaged_on:
                raise row.fail("tested_on", f"is before passage {v['passage_label']} ({passage.passaged_on})",
                               value=v["tested_on"].isoformat(), expected=f"on or after {passage.passaged_on}")
            mycoplasma = v.get("mycoplasma") or MycoplasmaResult.not_tested.value
            verdict = judge_qc(identity_match_pct=v.get("identity_match_pct"), mycoplasma=mycoplasma,
                               mouse_content_pct=v.get("mouse_content_pct"),
                               histology_concordant=v.get("histology_concordant"),
                               not_mouse_or_ebv_origin=v.get("not_mouse_or_ebv_origin"), settings=settings)
            row.record = {
                "passage_id": passage.id,
                "tested_on": v["tested_on"],
                "identity_method": v.get("identity_method"),
                "identity_match_pct": v.get("identity_match_pct"),
                "mycoplasma": mycoplasma,
                "mouse_content_pct": v.get("mouse_content_pct"),
                "histology_concordant": v.get("histology_concordant"),
                "not_mouse_or_ebv_origin": v.get("not_mouse_or_ebv_origin"),
                "passed": verdict.passed,
                "notes": v.get("notes") or ("; ".join(verdict.failures) or None),
            }

        each(rows, build)
        existing_by(res, self, rows, ("passage_id", "tested_on"),
                    lambda r: (r.record["passage_id"], r.values["tested_on"]))  # type: ignore[index]

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = (
            select(ModelQC, DerivedModel.code, ModelPassage.label)  # type: ignore[call-overload,misc]
            .join(ModelPassage, ModelPassage.id == ModelQC.passage_id)  # type: ignore[arg-type]
            .join(DerivedModel, DerivedModel.id == ModelPassage.model_id)  # type: ignore[arg-type]
            .order_by(ModelQC.id)
        )
        yield from template_rows(self, session, statement, "model_code", "passage_label")
