"""Test data built through the services (so every rule applies to fixtures too).

Every factory takes a :class:`~sqlmodel.Session` and the acting user first; the caller owns the transaction::

    with session_scope(engine) as session:
        make_case(session, tech)
        codes = collect(session, tech)

A factory writes through the services and flushes, so what it made is visible (with its ids) to the rest of the
caller's transaction, and is committed, or rolled back, with it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from biobank.db.engine import session_scope
from biobank.domain.vocab import Fixative, SiteKind, StorageFormat
from biobank.models import Container, DerivedModel, ModelPassage, Specimen, SpecimenLocation, User
from biobank.services import collection, derived, donors, planning, specimens, storage
from biobank.services.inputs import AutopsyOpen, DonorCreate, FormatRequest, LesionCreate, RegionCollect
from tests.conftest import DEATH

H = timedelta(hours=1)
ALL_SCOPES = {"research_use", "genomic_sequencing", "model_derivation", "external_sharing"}


# ------------------------------------------------------------------------------------ donors, cases, regions


def make_case(
    session: Session,
    actor: User,
    *,
    donor: str = "RA-0001",
    case: str = "RAP-1",
    death: datetime = DEATH,
    start_after: float = 2.0,
    scopes: set[str] | None = None,
    lesions: tuple[tuple[str, str, str], ...] = (("L01", "BREAST", "primary"), ("L02", "LIVER", "metastasis")),
    sex: str = "female",
) -> str:
    """A donor with consent, an autopsy in progress and lesions; returns the case code."""
    donors.register_donor(session, actor=actor, data=DonorCreate(code=donor, sex=sex, age_at_death=61, primary_site_code="BREAST"))
    donors.record_consent(
        session, actor=actor, donor_code=donor, given_by="donor", consented_on=date(2025, 6, 1),
        scopes=ALL_SCOPES if scopes is None else scopes,
    )
    collection.open_autopsy(
        session, actor=actor, data=AutopsyOpen(donor_code=donor, case_code=case, death_at=death, refrigerated_at=death + H, start_at=death + start_after * H),
    )
    for code, site, kind in lesions:
        collection.add_lesion(session, actor=actor, data=LesionCreate(donor_code=donor, code=code, site_code=site, kind=kind, laterality="left" if site in ("BREAST", "LUNG") else None))
    session.flush()
    return case


def collect(
    session: Session,
    actor: User,
    *,
    case: str = "RAP-1",
    lesion: str | None = "L02",
    region: str | None = "A",
    site: str = "LIVER",
    kind: str = "tumour_region",
    after_death: float = 3.0,
    formats: list[FormatRequest] | None = None,
    death: datetime = DEATH,
    **extra,
) -> list[str]:
    """Collect one region; returns the new specimen codes."""
    excised = death + after_death * H
    formats = formats or [
        FormatRequest("snap_frozen", 50, "mg", count=2, stabilised_at=excised + timedelta(minutes=5)),
        FormatRequest("ffpe", 1, "blocks", stabilised_at=excised + timedelta(minutes=6), fixation_end_at=excised + 24 * H),
    ]
    made = collection.collect_region(
        session, actor=actor, data=RegionCollect(case_code=case, kind=kind, site_code=site, excised_at=excised, formats=formats, lesion_code=lesion, region_label=region, **extra),
    )
    session.flush()
    return [s.code for s in made.specimens]


# ------------------------------------------------------------------------------------- storage, distribution

REGION_FORMATS = (
    FormatRequest(StorageFormat.snap_frozen, 50, "mg", count=2, stabilised_at=DEATH + timedelta(hours=3, minutes=5)),
    FormatRequest(StorageFormat.oct, 1, "blocks", stabilised_at=DEATH + timedelta(hours=3, minutes=5)),
    FormatRequest(StorageFormat.ffpe, 1, "blocks", fixative=Fixative.nbf, stabilised_at=DEATH + timedelta(hours=3, minutes=5),
                  fixation_end_at=DEATH + timedelta(hours=27)),
    FormatRequest(StorageFormat.viable_cryo, 100, "mg", stabilised_at=DEATH + timedelta(hours=3, minutes=20)),
    FormatRequest(StorageFormat.fresh, 200, "mg"),
)


def lab(session: Session, actor: User) -> None:
    """SITE/ROOM with a -80 freezer (rack R1 with two 9x9 boxes), an LN2 tank with a box, an RT cabinet drawer."""
    add = storage.add_container
    add(session, actor=actor, code="UH", kind="site", name="University Hospital")
    add(session, actor=actor, code="LAB1", kind="room", parent_code="UH")
    add(session, actor=actor, code="FRZ1", kind="freezer", parent_code="LAB1")
    add(session, actor=actor, code="FRZ2", kind="freezer", parent_code="LAB1")
    add(session, actor=actor, code="R1", kind="rack", parent_code="FRZ1")
    add(session, actor=actor, code="BOX1", kind="box_9x9", parent_code="R1")
    add(session, actor=actor, code="BOX2", kind="box_9x9", parent_code="R1")
    add(session, actor=actor, code="LN1", kind="ln2_tank", parent_code="LAB1")
    add(session, actor=actor, code="LNBOX1", kind="box_10x10", parent_code="LN1")
    add(session, actor=actor, code="CAB1", kind="rt_cabinet", parent_code="LAB1")
    add(session, actor=actor, code="DRAWER1", kind="cassette_drawer", parent_code="CAB1")
    add(session, actor=actor, code="BAG1", kind="bag", parent_code="FRZ2")
    session.flush()


def donor_with_region(
    session: Session,
    actor: User,
    *,
    code: str = "RA-0001",
    case: str = "RAP-1",
    scopes: frozenset[str] = frozenset({"research_use", "genomic_sequencing"}),
) -> list[Specimen]:
    """A consenting donor whose lesion L01 (liver) gave region ``A`` in the five :data:`REGION_FORMATS`."""
    donors.register_donor(session, actor=actor, data=DonorCreate(code=code, sex="female"))
    donors.record_consent(session, actor=actor, donor_code=code, given_by="donor", consented_on=date(2025, 1, 1),
                          scopes=set(scopes))
    collection.open_autopsy(session, actor=actor, data=AutopsyOpen(donor_code=code, case_code=case, death_at=DEATH, refrigerated_at=DEATH + timedelta(hours=1), start_at=DEATH + timedelta(hours=2)))
    collection.add_lesion(session, actor=actor, data=LesionCreate(donor_code=code, code="L01", site_code="LIVER", kind="metastasis"))
    made = collection.collect_region(
        session, actor=actor, data=RegionCollect(case_code=case, kind=SiteKind.tumour_region, site_code="LIVER", lesion_code="L01", region_label="A", excised_at=DEATH + timedelta(hours=3), formats=REGION_FORMATS),
    )
    session.flush()
    return made.specimens


def by_format(made: list[Specimen], fmt: str) -> list[str]:
    """The codes of the specimens of one storage format."""
    return [s.code for s in made if s.storage_format == fmt]


# ------------------------------------------------------------------------------------------- derived models


def donor_with_material(
    session: Session,
    actor: User,
    *,
    death: datetime = DEATH,
    code: str = "RA-0001",
    scopes: frozenset[str] = frozenset({"research_use", "model_derivation", "external_sharing"}),
    lesions: tuple[tuple[str, str, str], ...] = (("L01", "BREAST", "primary"), ("L02", "LIVER", "metastasis")),
    pmi_hours: float = 3.0,
) -> dict[str, Specimen]:
    """One donor; per lesion a region ``A`` with fresh, viable_cryo and snap_frozen specimens, all ``pmi_hours``
    after death. Returns specimens by ``<lesion>-<format>``."""
    donors.register_donor(session, actor=actor, data=DonorCreate(code=code, sex="female", age_at_death=61, primary_diagnosis="Invasive ductal carcinoma of breast", primary_site_code="BREAST"))
    donors.record_consent(session, actor=actor, donor_code=code, given_by="donor",
                          consented_on=(death - timedelta(days=90)).date(), scopes=set(scopes))
    case = f"RAP-{code}"
    collection.open_autopsy(session, actor=actor, data=AutopsyOpen(donor_code=code, case_code=case, death_at=death, refrigerated_at=death + timedelta(hours=1), start_at=death + timedelta(hours=2)))
    made: dict[str, Specimen] = {}
    for lesion_code, site, kind in lesions:
        collection.add_lesion(session, actor=actor, data=LesionCreate(donor_code=code, code=lesion_code, site_code=site, kind=kind))
        excised = death + timedelta(hours=pmi_hours) - timedelta(minutes=5)
        stab = death + timedelta(hours=pmi_hours)
        collected = collection.collect_region(
            session, actor=actor, data=RegionCollect(case_code=case, kind="tumour_region", site_code=site, lesion_code=lesion_code, region_label="A", excised_at=excised, formats=[
                FormatRequest("fresh", 200, "mg", stabilised_at=stab),
                FormatRequest("viable_cryo", 100, "mg", stabilised_at=stab),
                FormatRequest("snap_frozen", 50, "mg", stabilised_at=stab),
            ]),
        )
        for specimen in collected.specimens:
            made[f"{lesion_code}-{specimen.storage_format}"] = specimen
    session.flush()
    return made


# ------------------------------------------------------------------------------------- demo cohort, imports


def bank_and_store_a_passage(session: Session) -> None:
    """Vials from the demo's latest passage (specimen.passage_id set), one placed in a box with room, DNA and its
    aliquots made from the other."""
    tech = session.exec(select(User).where(User.role == "technician")).first()
    model, passage = session.exec(select(DerivedModel, ModelPassage).join(
        ModelPassage, ModelPassage.model_id == DerivedModel.id).order_by(ModelPassage.id.desc())).first()  # type: ignore[arg-type,union-attr]
    made = derived.passage_specimens(session, actor=tech, model_code=model.code, passage_label=passage.label,
                                     material_type="cells", storage_format="viable_cryo", quantity=1e6, unit="cells",
                                     count=2)
    # a box already holding viable cryopreserved specimens (so at their temperature), with a free position
    boxes = session.exec(select(Container, func.count()).join(SpecimenLocation, SpecimenLocation.container_id == Container.id)  # type: ignore[arg-type]
                         .join(Specimen, Specimen.id == SpecimenLocation.specimen_id)  # type: ignore[arg-type]
                         .where(Specimen.storage_format == "viable_cryo").group_by(Container.id)).all()  # type: ignore[arg-type]
    box = next(box for box, held in boxes if held < (box.grid_rows or 0) * (box.grid_cols or 0))
    storage.store(session, actor=tech, codes=[made[0].code], box_code=box.code)
    # DNA from the other vial, split in two: passage descendants two levels down
    dna = specimens.derive(session, actor=tech, parent_code=made[1].code, material_type="dna", quantity=4000,
                           unit="ng", parent_quantity_used=5e5)
    specimens.aliquot(session, actor=tech, parent_code=dna.code, portions=[1000, 1000])
    session.flush()


def exported_demo(session: Session) -> dict[str, str]:
    """The demo cohort (four donors, the first with derived models), passage vials and what was made from them, so
    that every import kind has rows; exported as one CSV per kind, in import order."""
    from biobank.demo.cohort import load_demo
    from biobank.imports.engine import kind_names
    from biobank.imports.roundtrip import export_kind

    load_demo(session, donors_count=4)
    bank_and_store_a_passage(session)
    session.flush()
    session.expire_all()  # export what the database holds, not the objects just written
    return {name: export_kind(session, name) for name in kind_names()}


def importer_of(session: Session) -> User:
    """A technician named 'importer' (in a fresh database, its only user)."""
    user = User(username="importer", role="technician")
    session.add(user)
    session.flush()
    session.refresh(user)
    return user


def enrol(session: Session, actor: User, code: str = "RA-0001", *, scopes: set[str] | None = None,
          lesions: tuple[tuple[str, str, str], ...] = (("L01", "LIVER", "metastasis"),)) -> None:
    """A donor enrolled in life, before the death call: registered (breast primary), consented (every scope unless
    ``scopes`` says otherwise; an empty set records none) and with the lesions known from imaging."""
    donors.register_donor(session, actor=actor, data=DonorCreate(code=code, sex="female", primary_site_code="BREAST"))
    if scopes is None or scopes:
        donors.record_consent(session, actor=actor, donor_code=code, given_by="donor", consented_on=date(2025, 6, 1),
                              scopes=ALL_SCOPES if scopes is None else scopes)
    for lesion, site, kind in lesions:
        collection.add_lesion(session, actor=actor, data=LesionCreate(donor_code=code, code=lesion, site_code=site,
                                                                    kind=kind))



def wgs_plan_of_ra0001(engine: Engine, code: str = "WGS-1", *, submit: bool = False) -> None:
    """The suggested WGS plan of demo donor RA-0001 at 60x, approved by the PI (and submitted to sequencing)."""
    with Session(engine, expire_on_commit=False) as session:
        pi = session.exec(select(User).where(User.username == "pi")).one()
    with session_scope(engine) as session:
        planning.create_plan(session, actor=pi, code=code, name=f"WGS of RA-0001 ({code})", purpose="phylogeny",
                             assay="wgs", donor_codes=["RA-0001"], target_depth=60)
        planning.approve_plan(session, actor=pi, plan_code=code)
        if submit:
            planning.submit_plan(session, actor=pi, plan_code=code)
