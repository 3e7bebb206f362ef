"""Test data built through the services (so every rule applies to fixtures too)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.engine import Engine

from biobank.db import session_scope
from biobank.models import User
from biobank.services import collection, donors
from biobank.services.collection import FormatRequest
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
        donors.register_donor(session, actor=actor, code=donor, sex=sex, age_at_death=61, primary_site_code="BREAST")
        donors.record_consent(
            session, actor=actor, donor_code=donor, given_by="donor", consented_on=date(2025, 6, 1),
            scopes=ALL_SCOPES if scopes is None else scopes,
        )
        collection.open_autopsy(
            session, actor=actor, donor_code=donor, case_code=case, death_at=death,
            refrigerated_at=death + H, start_at=death + start_after * H,
        )
        for code, site, kind in lesions:
            collection.add_lesion(session, actor=actor, donor_code=donor, code=code, site_code=site, kind=kind,
                                  laterality="left" if site in ("BREAST", "LUNG") else None)
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
            session, actor=actor, case_code=case, kind=kind, site_code=site, excised_at=excised, formats=formats,
            lesion_code=lesion, region_label=region, **extra,
        )
        return [s.code for s in made.specimens]
