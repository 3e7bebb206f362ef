"""The board's checklist of what a case still lacks: pure rules, then read from a database."""

from __future__ import annotations

from datetime import timedelta

from biobank.db.engine import session_scope
from biobank.services import collection, donors
from biobank.services.checklist import CaseMaterial, LesionInfo, RegionInfo, case_material, checklist, missing
from biobank.services.inputs import AutopsyOpen, DonorCreate, FormatRequest, LesionCreate, RegionCollect


def by_key(items):
    return {item.key: item for item in items}


BREAST = LesionInfo("L01", "BREAST", "primary")
LIVER_MET = LesionInfo("L02", "LIVER_S6", "metastasis")
SPINE_MET = LesionInfo("L03", "VERTEBRA_T12", "metastasis")


def region(kind, site, lesion=None, formats=("snap_frozen",)):
    return RegionInfo(kind, site, lesion, frozenset(formats))


def test_an_empty_case_misses_blood_normal_liver_two_regions_per_lesion_viable_tissue_and_marrow():
    items = by_key(checklist(CaseMaterial([BREAST, LIVER_MET, SPINE_MET], [], model_consent=True)))
    assert set(items) == {"germline_blood", "normal:LIVER", "regions:L01", "regions:L02", "regions:L03", "viable", "bone_marrow"}
    assert not any(item.done for item in items.values())


def test_bone_metastases_need_no_normal_bone_but_liver_segments_count_as_the_liver():
    items = by_key(checklist(CaseMaterial([LIVER_MET, SPINE_MET], [region("normal_tissue", "LIVER")], model_consent=False)))
    assert items["normal:LIVER"].done
    assert "normal:VERTEBRA" not in items


def test_a_complete_case_has_nothing_missing():
    material = CaseMaterial(
        [BREAST, LIVER_MET],
        [
            region("germline_blood", "BLOOD", formats=("frozen",)),
            region("normal_tissue", "LIVER"),
            region("tumour_region", "BREAST", "L01", ("snap_frozen", "viable_cryo")),
            region("tumour_region", "BREAST", "L01"),
            region("tumour_region", "LIVER_S6", "L02"),
            region("tumour_region", "LIVER_S6", "L02"),
        ],
        model_consent=True,
    )
    assert missing(checklist(material)) == []


def test_one_region_of_a_lesion_is_not_enough():
    items = by_key(checklist(CaseMaterial([BREAST], [region("tumour_region", "BREAST", "L01")], model_consent=False)))
    assert not items["regions:L01"].done
    assert "1 more needed" in items["regions:L01"].detail


def test_viable_tissue_is_not_asked_for_without_consent_to_model_derivation():
    items = by_key(checklist(CaseMaterial([BREAST], [], model_consent=False)))
    assert items["viable"].done
    assert "not consented" in items["viable"].detail


def test_a_site_with_no_specimens_does_not_count():
    items = by_key(checklist(CaseMaterial([], [region("germline_blood", "BLOOD", formats=())], model_consent=False)))
    assert not items["germline_blood"].done


def test_case_material_reads_lesions_regions_formats_and_consent(engine, tech, death):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0100", sex="female"))
        donors.record_consent(session, actor=tech, donor_code="RA-0100", given_by="donor",
                              consented_on=(death - timedelta(days=40)).date(),
                              scopes={"research_use", "model_derivation"})
        collection.open_autopsy(session, actor=tech, data=AutopsyOpen(donor_code="RA-0100", case_code="RAP-T-100", death_at=death, start_at=death + timedelta(hours=1)))
        collection.add_lesion(session, actor=tech, data=LesionCreate(donor_code="RA-0100", code="L01", site_code="LIVER", kind="metastasis"))
        collection.collect_region(session, actor=tech, data=RegionCollect(case_code="RAP-T-100", kind="tumour_region", site_code="LIVER", lesion_code="L01", region_label="A", excised_at=death + timedelta(hours=2), formats=[FormatRequest("snap_frozen", 50, "mg"), FormatRequest("viable_cryo", 100, "mg")]))
    with session_scope(engine) as session:
        material = case_material(session, "RAP-T-100")
    assert material.model_consent
    assert material.lesions == [LesionInfo("L01", "LIVER", "metastasis")]
    assert material.regions == [RegionInfo("tumour_region", "LIVER", "L01", frozenset({"snap_frozen", "viable_cryo"}))]
    items = by_key(checklist(material))
    assert items["viable"].done and not items["regions:L01"].done and not items["normal:LIVER"].done
