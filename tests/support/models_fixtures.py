"""Builders for derived-model tests: a consenting donor with a case, lesions and viable specimens."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from biobank.models import Specimen, User
from biobank.services import collection, donors
from biobank.services.collection import FormatRequest
from biobank.services.inputs import AutopsyOpen, DonorCreate, LesionCreate, RegionCollect


def donor_with_material(
    session: Session,
    tech: User,
    death: datetime,
    *,
    code: str = "RA-0001",
    scopes: frozenset[str] = frozenset({"research_use", "model_derivation", "external_sharing"}),
    lesions: tuple[tuple[str, str, str], ...] = (("L01", "BREAST", "primary"), ("L02", "LIVER", "metastasis")),
    pmi_hours: float = 3.0,
) -> dict[str, Specimen]:
    """One donor; per lesion a region ``A`` with fresh, viable_cryo and snap_frozen specimens, all ``pmi_hours``
    after death. Returns specimens by ``<lesion>-<format>``."""
    donors.register_donor(session, actor=tech, data=DonorCreate(code=code, sex="female", age_at_death=61, primary_diagnosis="Invasive ductal carcinoma of breast", primary_site_code="BREAST"))
    donors.record_consent(session, actor=tech, donor_code=code, given_by="donor",
                          consented_on=(death - timedelta(days=90)).date(), scopes=set(scopes))
    case = f"RAP-{code}"
    collection.open_autopsy(session, actor=tech, data=AutopsyOpen(donor_code=code, case_code=case, death_at=death, refrigerated_at=death + timedelta(hours=1), start_at=death + timedelta(hours=2)))
    made: dict[str, Specimen] = {}
    for lesion_code, site, kind in lesions:
        collection.add_lesion(session, actor=tech, data=LesionCreate(donor_code=code, code=lesion_code, site_code=site, kind=kind))
        excised = death + timedelta(hours=pmi_hours) - timedelta(minutes=5)
        stab = death + timedelta(hours=pmi_hours)
        collected = collection.collect_region(
            session, actor=tech, data=RegionCollect(case_code=case, kind="tumour_region", site_code=site, lesion_code=lesion_code, region_label="A", excised_at=excised, formats=[
                FormatRequest("fresh", 200, "mg", stabilised_at=stab),
                FormatRequest("viable_cryo", 100, "mg", stabilised_at=stab),
                FormatRequest("snap_frozen", 50, "mg", stabilised_at=stab),
            ]),
        )
        for specimen in collected.specimens:
            made[f"{lesion_code}-{specimen.storage_format}"] = specimen
    session.flush()
    return made
