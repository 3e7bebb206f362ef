"""Test data built through the services (so every rule applies to fixtures too)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from biobank.db.engine import session_scope
from biobank.models import User
from biobank.services import collection, donors
from biobank.services.collection import FormatRequest
from biobank.services.inputs import AutopsyOpen, DonorCreate, LesionCreate, RegionCollect
from tests.conftest import DEATH

H = timedelta(hours=1)
ALL_SCOPES = {"research_use", "genomic_sequencing", "model_derivation", "external_sharing"}


def make_case(
    engine: Engine,
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
    with session_scope(engine) as session:
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
    return case


def collect(
    engine: Engine,
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
    with session_scope(engine) as session:
        made = collection.collect_region(
            session, actor=actor, data=RegionCollect(case_code=case, kind=kind, site_code=site, excised_at=excised, formats=formats, lesion_code=lesion, region_label=region, **extra),
        )
        return [s.code for s in made.specimens]


def bank_and_store_a_passage(session: Session) -> None:
    """Vials from the demo's latest passage (specimen.passage_id set), one placed in a box with room, DNA and its
    aliquots made from the other."""
    from sqlmodel import func, select

    from biobank.models import Container, DerivedModel, ModelPassage, SpecimenLocation
    from biobank.services import derived, storage

    tech = session.exec(select(User).where(User.role == "technician")).first()
    model, passage = session.exec(select(DerivedModel, ModelPassage).join(
        ModelPassage, ModelPassage.model_id == DerivedModel.id).order_by(ModelPassage.id.desc())).first()  # type: ignore[arg-type,union-attr]
    made = derived.passage_specimens(session, actor=tech, model_code=model.code, passage_label=passage.label,
                                     material_type="cells", storage_format="viable_cryo", quantity=1e6, unit="cells",
                                     count=2)
    from biobank.models import Specimen

    # a box already holding viable cryopreserved specimens (so at their temperature), with a free position
    boxes = session.exec(select(Container, func.count()).join(SpecimenLocation, SpecimenLocation.container_id == Container.id)  # type: ignore[arg-type]
                         .join(Specimen, Specimen.id == SpecimenLocation.specimen_id)  # type: ignore[arg-type]
                         .where(Specimen.storage_format == "viable_cryo").group_by(Container.id)).all()  # type: ignore[arg-type]
    box = next(box for box, held in boxes if held < (box.grid_rows or 0) * (box.grid_cols or 0))
    storage.store(session, actor=tech, codes=[made[0].code], box_code=box.code)
    # DNA from the other vial, split in two: passage descendants two levels down
    from biobank.services import specimens

    dna = specimens.derive(session, actor=tech, parent_code=made[1].code, material_type="dna", quantity=4000,
                           unit="ng", parent_quantity_used=5e5)
    specimens.aliquot(session, actor=tech, parent_code=dna.code, portions=[1000, 1000])


def exported_demo(engine: Engine) -> dict[str, str]:
    """The demo cohort (four donors, the first with derived models), passage vials and what was made from them, so
    that every import kind has rows; exported as one CSV per kind, in import order."""
    from biobank.demo.cohort import load_demo
    from biobank.imports.engine import kind_names
    from biobank.imports.roundtrip import export_kind

    with session_scope(engine) as session:
        load_demo(session, donors_count=4)
        bank_and_store_a_passage(session)
    with Session(engine) as session:
        return {name: export_kind(session, name) for name in kind_names()}


def importer_of(engine: Engine) -> User:
    """A technician named 'importer', the only user of a fresh database."""
    from sqlmodel import select

    with session_scope(engine) as session:
        session.add(User(username="importer", role="technician"))
    with Session(engine, expire_on_commit=False) as session:
        return session.exec(select(User).where(User.username == "importer")).one()
