"""Test data for the storage and distribution tests: a small lab and a donor with one region in five formats."""

from __future__ import annotations

from datetime import date, timedelta

from sqlmodel import Session

from biobank.domain.vocab import Fixative, SiteKind, StorageFormat
from biobank.models import Specimen, User
from biobank.services import collection, donors, storage
from biobank.services.collection import FormatRequest
from biobank.services.inputs import AutopsyOpen, DonorCreate, LesionCreate, RegionCollect
from tests.conftest import DEATH

FORMATS = (
    FormatRequest(StorageFormat.snap_frozen, 50, "mg", count=2, stabilised_at=DEATH + timedelta(hours=3, minutes=5)),
    FormatRequest(StorageFormat.oct, 1, "blocks", stabilised_at=DEATH + timedelta(hours=3, minutes=5)),
    FormatRequest(StorageFormat.ffpe, 1, "blocks", fixative=Fixative.nbf, stabilised_at=DEATH + timedelta(hours=3, minutes=5),
                  fixation_end_at=DEATH + timedelta(hours=27)),
    FormatRequest(StorageFormat.viable_cryo, 100, "mg", stabilised_at=DEATH + timedelta(hours=3, minutes=20)),
    FormatRequest(StorageFormat.fresh, 200, "mg"),
)


def lab(session: Session, tech: User) -> None:
    """SITE/ROOM with a -80 freezer (rack R1 with two 9x9 boxes), an LN2 tank with a box, an RT cabinet drawer."""
    add = storage.add_container
    add(session, actor=tech, code="UH", kind="site", name="University Hospital")
    add(session, actor=tech, code="LAB1", kind="room", parent_code="UH")
    add(session, actor=tech, code="FRZ1", kind="freezer", parent_code="LAB1")
    add(session, actor=tech, code="FRZ2", kind="freezer", parent_code="LAB1")
    add(session, actor=tech, code="R1", kind="rack", parent_code="FRZ1")
    add(session, actor=tech, code="BOX1", kind="box_9x9", parent_code="R1")
    add(session, actor=tech, code="BOX2", kind="box_9x9", parent_code="R1")
    add(session, actor=tech, code="LN1", kind="ln2_tank", parent_code="LAB1")
    add(session, actor=tech, code="LNBOX1", kind="box_10x10", parent_code="LN1")
    add(session, actor=tech, code="CAB1", kind="rt_cabinet", parent_code="LAB1")
    add(session, actor=tech, code="DRAWER1", kind="cassette_drawer", parent_code="CAB1")
    add(session, actor=tech, code="BAG1", kind="bag", parent_code="FRZ2")


def donor_with_region(
    session: Session,
    tech: User,
    *,
    code: str = "RA-0001",
    case: str = "RAP-1",
    scopes: frozenset[str] = frozenset({"research_use", "genomic_sequencing"}),
) -> list[Specimen]:
    donors.register_donor(session, actor=tech, data=DonorCreate(code=code, sex="female"))
    donors.record_consent(session, actor=tech, donor_code=code, given_by="donor", consented_on=date(2025, 1, 1),
                          scopes=set(scopes))
    collection.open_autopsy(session, actor=tech, data=AutopsyOpen(donor_code=code, case_code=case, death_at=DEATH, refrigerated_at=DEATH + timedelta(hours=1), start_at=DEATH + timedelta(hours=2)))
    collection.add_lesion(session, actor=tech, data=LesionCreate(donor_code=code, code="L01", site_code="LIVER", kind="metastasis"))
    made = collection.collect_region(
        session, actor=tech, data=RegionCollect(case_code=case, kind=SiteKind.tumour_region, site_code="LIVER", lesion_code="L01", region_label="A", excised_at=DEATH + timedelta(hours=3), formats=FORMATS),
    )
    return made.specimens


def by_format(specimens: list[Specimen], fmt: str) -> list[str]:
    return [s.code for s in specimens if s.storage_format == fmt]
