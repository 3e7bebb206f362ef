# SQLModel declares columns with their Python types, so mypy cannot see SQL expressions in select/join/group_by.
# mypy: disable-error-code="arg-type, call-overload"
"""What is still missing from a running case: the board's checklist.

The rules are pure functions of :class:`CaseMaterial` (tested without a database); :func:`case_material` reads the
material of one case with a handful of grouped queries.

Rules (DOMAIN.md §1, §6):
- germline blood: the planner needs exactly one germline normal per donor, blood first;
- normal tissue of each organ with a metastasis (background for expression and methylation, and the
  tumour-in-normal check). Organs whose normal counterpart is not sampled as tissue are left out: bone (decalcified
  normal bone is of little use; the marrow item covers it), lymph nodes, bone marrow and blood;
- at least two regions of every lesion (multiregional sampling; the planner warns below two);
- viable tissue (fresh or viable cryopreserved) from a tumour region for organoids and xenografts, where the donor
  consented to model derivation;
- a bone-marrow aspirate when bone is involved (disseminated tumour cells and dormancy);
- every lesion's kind known: a lesion imported without one is ``unknown`` (issue 19), a real value the team
  settles before the planner can tell primaries from metastases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, select

from biobank.domain.sites import get_site, root_site
from biobank.domain.vocab import ConsentScope, LesionKind, SiteKind
from biobank.domain.vocab_derived import VIABLE_SOURCE_FORMATS
from biobank.models import Autopsy, Donor, Lesion, SamplingSite, Specimen
from biobank.services.collection import get_autopsy
from biobank.services.donors import consent_state

#: Categories whose organs have no routinely sampled normal-tissue counterpart (see the module docstring).
NO_NORMAL_TISSUE = frozenset({"bone", "lymph_node", "bone_marrow", "blood"})
MIN_REGIONS = 2


@dataclass(frozen=True)
class LesionInfo:
    code: str
    site_code: str
    kind: str


@dataclass(frozen=True)
class RegionInfo:
    """One sampling site of the case and the storage formats made from it."""

    kind: str
    site_code: str
    lesion_code: str | None = None
    formats: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CaseMaterial:
    lesions: Sequence[LesionInfo]
    regions: Sequence[RegionInfo]
    model_consent: bool


@dataclass(frozen=True)
class ChecklistItem:
    key: str
    label: str
    done: bool
    detail: str


def _organ(site_code: str) -> str:
    return root_site(site_code).code


def _organ_label(site_code: str) -> str:
    return root_site(site_code).label


def checklist(material: CaseMaterial) -> list[ChecklistItem]:
    """Every item the case should have, done or not, in the order a team works through them."""
    items: list[ChecklistItem] = []
    made = [r for r in material.regions if r.formats]

    blood = [r for r in made if r.kind == SiteKind.germline_blood]
    items.append(
        ChecklistItem(
            "germline_blood",
            "Germline blood",
            bool(blood),
            f"{len(blood)} draw(s) collected" if blood else "no germline blood yet: the planner needs a germline normal",
        )
    )

    met_organs = sorted(
        organ
        for organ in {_organ(lesion.site_code) for lesion in material.lesions if lesion.kind == LesionKind.metastasis}
        if get_site(organ).category not in NO_NORMAL_TISSUE
    )
    normal_organs = {_organ(r.site_code) for r in made if r.kind == SiteKind.normal_tissue}
    for organ in met_organs:
        done = organ in normal_organs
        items.append(
            ChecklistItem(
                f"normal:{organ}",
                f"Normal {get_site(organ).label.lower()}",
                done,
                "collected" if done else f"a metastasis is in the {get_site(organ).label.lower()}: take normal tissue from it",
            )
        )

    regions_by_lesion: dict[str, int] = {}
    for region in made:
        if region.kind == SiteKind.tumour_region and region.lesion_code:
            regions_by_lesion[region.lesion_code] = regions_by_lesion.get(region.lesion_code, 0) + 1
    for lesion in sorted(material.lesions, key=lambda lesion: lesion.code):
        count = regions_by_lesion.get(lesion.code, 0)
        items.append(
            ChecklistItem(
                f"regions:{lesion.code}",
                f"{lesion.code} {_organ_label(lesion.site_code).lower()} ({lesion.kind.replace('_', ' ')}): ≥{MIN_REGIONS} regions",
                count >= MIN_REGIONS,
                f"{count} region(s)" + ("" if count >= MIN_REGIONS else f", {MIN_REGIONS - count} more needed"),
            )
        )

    if material.model_consent:
        viable = [r for r in made if r.kind == SiteKind.tumour_region and r.formats & set(VIABLE_SOURCE_FORMATS)]
        items.append(
            ChecklistItem(
                "viable",
                "Viable tumour tissue for models",
                bool(viable),
                f"from {len(viable)} region(s)" if viable else "consented to model derivation: keep fresh or viable-cryo tissue",
            )
        )
    else:
        items.append(
            ChecklistItem("viable", "Viable tumour tissue for models", True, "not consented to model derivation: none needed")
        )

    if any(get_site(lesion.site_code).category == "bone" for lesion in material.lesions):
        marrow = [r for r in made if r.kind == SiteKind.bone_marrow]
        items.append(
            ChecklistItem(
                "bone_marrow",
                "Bone-marrow aspirate",
                bool(marrow),
                "collected" if marrow else "bone is involved: aspirate marrow for disseminated tumour cells",
            )
        )

    unknown = sorted(lesion.code for lesion in material.lesions if lesion.kind == LesionKind.unknown)
    if unknown:
        items.append(
            ChecklistItem(
                "lesion_kinds",
                "Lesion kinds known",
                False,
                f"kind unknown for {', '.join(unknown)}: record primary, metastasis or recurrence",
            )
        )
    return items


def missing(items: Sequence[ChecklistItem]) -> list[ChecklistItem]:
    return [item for item in items if not item.done]


def case_material(session: Session, case_code: str) -> CaseMaterial:
    """The lesions and collected regions of one case (with the formats made from each), and the model consent."""
    autopsy: Autopsy = get_autopsy(session, case_code)
    donor = session.get(Donor, autopsy.donor_id)
    assert donor is not None
    lesions = [
        LesionInfo(code, site, kind)
        for code, site, kind in session.exec(
            select(Lesion.code, Lesion.site_code, Lesion.kind).where(Lesion.donor_id == donor.id).order_by(Lesion.code)
        ).all()
    ]
    rows = session.exec(
        select(SamplingSite.id, SamplingSite.kind, SamplingSite.site_code, Lesion.code)
        .join(Lesion, Lesion.id == SamplingSite.lesion_id, isouter=True)
        .where(SamplingSite.autopsy_id == autopsy.id, SamplingSite.kind != SiteKind.premortem_blood)
    ).all()
    formats: dict[int, set[str]] = {}
    for site_id, storage_format, _ in session.exec(
        select(Specimen.sampling_site_id, Specimen.storage_format, func.count())
        .join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)
        .where(SamplingSite.autopsy_id == autopsy.id, Specimen.lineage == "primary")
        .group_by(Specimen.sampling_site_id, Specimen.storage_format)
    ).all():
        formats.setdefault(site_id, set()).add(storage_format)
    regions = [
        RegionInfo(kind, site_code, lesion_code, frozenset(formats.get(site_id, set())))
        for site_id, kind, site_code, lesion_code in rows
    ]
    return CaseMaterial(lesions, regions, consent_state(session, donor).allows(ConsentScope.model_derivation))
