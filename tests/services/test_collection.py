"""Collecting at the autopsy table: one region into several formats at once, and every rule refusing bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.domain.errors import (
    BiobankError,
    ConflictError,
    ConsentError,
    PermissionDeniedError,
    ValidationError,
)
from biobank.models import CustodyEvent, SamplingSite, Specimen
from biobank.services import collection, donors
from biobank.services.inputs import AutopsyOpen, DonorCreate, FormatRequest, LesionCreate, RegionCollect
from tests.conftest import DEATH
from tests.support.dbtools import assert_refused
from tests.support.factories import H, collect, make_case


def test_one_region_becomes_all_its_specimens_with_readable_codes(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
        codes = collect(session, tech)
    assert codes == ["RA0001-L02A-SF1", "RA0001-L02A-SF2", "RA0001-L02A-FF1"]
    with Session(engine) as session:
        site = session.exec(select(SamplingSite).where(SamplingSite.code == "L02-A")).one()
        assert site.kind == "tumour_region" and site.tissue_status == "tumour"
        specimens = session.exec(select(Specimen).order_by(Specimen.id)).all()
        assert {s.storage_format for s in specimens} == {"snap_frozen", "ffpe"}
        assert all(s.lineage == "primary" and s.quantity_remaining == s.quantity for s in specimens)
        ffpe = next(s for s in specimens if s.storage_format == "ffpe")
        assert ffpe.fixative == "nbf"  # the default fixative for FFPE
        kinds = session.exec(select(CustodyEvent.kind).where(CustodyEvent.specimen_id == specimens[0].id)).all()
        assert sorted(kinds) == ["collected", "stabilised"]


def test_normal_tissue_blood_and_marrow_get_their_own_site_codes(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
        normal = collect(session, tech, lesion=None, region=None, kind="normal_tissue", site="KIDNEY",
                         formats=[FormatRequest("snap_frozen", 40, "mg")])
        blood = collect(session, tech, lesion=None, region=None, kind="germline_blood", site="BLOOD",
                        formats=[FormatRequest("frozen", 500, "ul", count=2)])
        marrow = collect(session, tech, lesion=None, region=None, kind="bone_marrow", site="BONE_MARROW",
                         formats=[FormatRequest("viable_cryo", 1000, "ul")])
    assert normal == ["RA0001-N01-SF1"]
    assert blood == ["RA0001-GB1-FZ1", "RA0001-GB1-FZ2"]
    assert marrow == ["RA0001-BM1-VC1"]
    with Session(engine) as session:
        materials = dict(session.exec(select(Specimen.code, Specimen.material_type)).all())
    assert materials["RA0001-GB1-FZ1"] == "whole_blood"
    assert materials["RA0001-BM1-VC1"] == "bone_marrow"


def test_pre_mortem_blood_is_the_one_material_taken_before_death(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
        codes = collect(session, tech, lesion=None, region=None, kind="premortem_blood", site="BLOOD", after_death=-48,
                        formats=[FormatRequest("frozen", 500, "ul", material_type="plasma")])
    assert codes == ["RA0001-PB1-FZ1"]



@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"after_death": -1}, r"Excised \(14 Mar 2026 01:00 Europe/London\) cannot be before Time of death \(14 Mar 2026 02:00\)"),
        ({"formats": [FormatRequest("snap_frozen", 50, "mg", stabilised_at=DEATH + 2 * H)]}, r"Format 1: Stabilised \(14 Mar 2026 04:00 Europe/London\) cannot be before Excised \(14 Mar 2026 05:00\)"),
        ({"formats": [FormatRequest("ffpe", 1, "blocks", stabilised_at=DEATH + 4 * H, fixation_end_at=DEATH + 3.5 * H)]}, "Fixation end .* cannot be before Stabilised"),
        ({"formats": [FormatRequest("ffpe", 1, "blocks", fixation_end_at=DEATH + 30 * H)]}, "needs the time fixation started"),
        ({"formats": [FormatRequest("snap_frozen", 0, "mg")]}, r"Format 1: Quantity \(0\) must be positive"),
        ({"formats": [FormatRequest("snap_frozen", -5, "mg")]}, "must be positive"),
        ({"formats": [FormatRequest("deep_fried", 5, "mg")]}, r"Storage format \(deep_fried\) must be one of"),
        ({"formats": [FormatRequest("snap_frozen", 5, "kg")]}, r"Unit \(kg\) must be one of"),
        ({"formats": [FormatRequest("ffpe", 1, "blocks", decalcification_hours=12)]}, "needs a decalcification agent"),
        ({"formats": []}, "choose at least one storage format"),
        ({"site": "NOWHERE"}, r"Anatomical site \(NOWHERE\): not an anatomical-site code"),
        ({"lesion": "L09"}, "lesion 'L09' not found"),
        ({"region": "a b"}, r"Region label \(a b\)"),
        ({"lesion": None}, "a tumour region belongs to a lesion"),
        ({"site": "LUNG"}, "lesion L02 is in LIVER"),
    ],
)
def test_each_collection_rule_refuses_and_leaves_the_database_unchanged(engine, tech, changes, match):
    with session_scope(engine) as session:
        make_case(session, tech)
    args = {"lesion": "L02", "region": "A", "site": "LIVER", "after_death": 3.0, "formats": None} | changes
    excised = DEATH + args["after_death"] * H
    formats = args["formats"] if args["formats"] is not None else [FormatRequest("snap_frozen", 50, "mg")]

    def action(session):
        collection.collect_region(
            session, actor=tech, data=RegionCollect(case_code="RAP-1", kind="tumour_region", site_code=args["site"], excised_at=excised, formats=formats, lesion_code=args["lesion"], region_label=args["region"]),
        )

    assert_refused(engine, BiobankError, match, action)


def test_the_same_region_cannot_be_collected_twice(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech)
    with pytest.raises(ConflictError, match="region L02-A was already collected"), session_scope(engine) as session:
        collect(session, tech)


def test_naive_times_areassert_refused(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)

    def action(session):
        collection.collect_region(
            session, actor=tech, data=RegionCollect(case_code="RAP-1", kind="tumour_region", site_code="LIVER", excised_at=(DEATH + 3 * H).replace(tzinfo=None), formats=[FormatRequest("snap_frozen", 5, "mg")], lesion_code="L02", region_label="A"),
        )

    assert_refused(engine, ValidationError, "needs a time zone", action)


def test_nothing_is_collected_after_consent_was_withdrawn(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
    with session_scope(engine) as session:
        donors.withdraw_consent(session, actor=tech, donor_code="RA-0001", requested_by="next_of_kin",
                                withdrawn_at=DEATH + H, reason="family request")
    with pytest.raises(ConsentError, match="withdrawn"), session_scope(engine) as session:
        collect(session, tech)


def test_a_viewer_cannot_collect(engine, tech, viewer):
    with session_scope(engine) as session:
        make_case(session, tech)
    with pytest.raises(PermissionDeniedError, match="role 'viewer'"), session_scope(engine) as session:
        collect(session, viewer)


def test_the_database_refuses_a_specimen_excised_before_death_whatever_the_entry_path(engine, tech):
    """The trigger holds the rule even when the service is bypassed."""
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech)
    from sqlalchemy import update

    with pytest.raises(ValidationError, match="cannot be collected before the donor's death") as refused:
        with session_scope(engine) as session:
            session.execute(update(Specimen).values(collected_at=DEATH - H))
    assert refused.value.field == "tg_specimen_collected_after_death"


@pytest.mark.parametrize(
    ("times", "match"),
    [
        ({"refrigerated_at": DEATH - H}, r"Refrigerated \(.*\) cannot be before Time of death"),
        ({"start_at": DEATH - H}, r"Autopsy start \(.*\) cannot be before Time of death"),
        ({"start_at": DEATH + 3 * H, "end_at": DEATH + 2 * H}, r"Autopsy end \(.*\) cannot be before Autopsy start"),
        ({"end_at": DEATH + 2 * H}, "cannot end without a start time"),
    ],
)
def test_impossible_autopsy_times_are_errors(engine, tech, times, match):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0001"))

    def action(session):
        collection.open_autopsy(session, actor=tech, data=AutopsyOpen(donor_code="RA-0001", case_code="RAP-1", death_at=DEATH, **times))

    assert_refused(engine, ValidationError, match, action)


def test_the_database_refuses_impossible_autopsy_times_too(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
    from sqlalchemy import update

    from biobank.models import Autopsy

    with pytest.raises(ValidationError, match=r"^The body cannot be refrigerated before death$") as refused:
        with session_scope(engine) as session:
            session.execute(update(Autopsy).values(refrigerated_at=DEATH - H))
    assert refused.value.field == "ck_autopsy_refrigerated_after_death"


def test_autopsy_status_follows_its_times(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
    with session_scope(engine) as session:
        autopsy = collection.update_autopsy_times(session, actor=tech, case_code="RAP-1", end_at=DEATH + 7 * H)
        assert autopsy.status == "complete"
        donor = donors.get_donor(session, "RA-0001")
        assert donor.status == "autopsy_done"


def test_moving_death_after_collected_material_isassert_refused(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech, after_death=2.5)

    def action(session):
        collection.update_autopsy_times(
            session, actor=tech, case_code="RAP-1", death_at=DEATH + 2.6 * H, refrigerated_at=DEATH + 2.65 * H, start_at=DEATH + 2.7 * H
        )

    assert_refused(engine, ValidationError, "cannot be after the first excision of this case", action)


def test_an_autopsy_cannot_be_collected_before_it_starts(engine, tech):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0001"))
        collection.open_autopsy(session, actor=tech, data=AutopsyOpen(donor_code="RA-0001", case_code="RAP-1", death_at=None))
        collection.add_lesion(session, actor=tech, data=LesionCreate(donor_code="RA-0001", code="L01", site_code="LIVER", kind="metastasis"))
    with pytest.raises(ValidationError, match="has not started"), session_scope(engine) as session:
        collect(session, tech, lesion="L01")


def test_lesion_rules(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)

    def bone_phenotype_on_liver(session):
        collection.add_lesion(session, actor=tech, data=LesionCreate(donor_code="RA-0001", code="L03", site_code="LIVER", kind="metastasis", bone_phenotype="osteolytic"))

    assert_refused(engine, ValidationError, "only bone lesions have one", bone_phenotype_on_liver)

    def bad_code(session):
        collection.add_lesion(session, actor=tech, data=LesionCreate(donor_code="RA-0001", code="X1", site_code="LIVER", kind="metastasis"))

    assert_refused(engine, ValidationError, "lesion codes look like 'L01'", bad_code)
    with session_scope(engine) as session:
        lesion = collection.add_lesion(session, actor=tech, data=LesionCreate(donor_code="RA-0001", code="L03", site_code="VERTEBRA_T12", kind="metastasis", bone_phenotype="osteolytic", size_mm=22))
        assert lesion.laterality == "not_applicable"
    with pytest.raises(ConflictError, match="lesion L03 already exists"):
        with session_scope(engine) as session:
            collection.add_lesion(session, actor=tech, data=LesionCreate(donor_code="RA-0001", code="L03", site_code="LIVER", kind="metastasis"))


def test_a_region_may_name_a_subsite_of_its_lesion(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
        codes = collect(session, tech, site="LIVER_S4", formats=[FormatRequest("snap_frozen", 10, "mg")])
    assert codes == ["RA0001-L02A-SF1"]


def test_excision_times_can_be_entered_in_the_lab_time_zone(engine, tech):
    """Times are stored in UTC whatever zone they were entered in."""
    from zoneinfo import ZoneInfo

    with session_scope(engine) as session:
        make_case(session, tech)
    local = (DEATH + 3 * H).astimezone(ZoneInfo("America/New_York"))
    with session_scope(engine) as session:
        collection.collect_region(
            session, actor=tech, data=RegionCollect(case_code="RAP-1", kind="tumour_region", site_code="LIVER", excised_at=local, formats=[FormatRequest("snap_frozen", 10, "mg")], lesion_code="L02", region_label="A"),
        )
    with Session(engine) as session:
        stored = session.exec(select(Specimen.collected_at)).one()
    assert stored == DEATH + 3 * H
    assert stored.utcoffset() == timedelta(0)


def test_each_kind_of_sample_has_its_own_offered_formats_and_defaults():
    """What the board's form offers and ticks comes from the library, per kind (nothing carries between kinds)."""
    from biobank.services.collection import offered_formats

    def ticked(kind, consent):
        return sorted(str(r.storage_format) for r, on in offered_formats(kind, model_consent=consent) if on)

    assert ticked("tumour_region", False) == ["ffpe", "oct", "rnalater", "snap_frozen"]
    assert ticked("tumour_region", True) == ["ffpe", "oct", "rnalater", "snap_frozen", "viable_cryo"]
    assert ticked("normal_tissue", True) == ["ffpe", "rnalater", "snap_frozen"]
    marrow = {str(r.storage_format): (r.count, r.quantity, str(r.unit)) for r, _ in offered_formats("bone_marrow", model_consent=False)}
    assert marrow == {"viable_cryo": (2, 1000, "ul"), "frozen": (1, 1000, "ul")}
    assert [(str(r.storage_format), r.count) for r, _ in offered_formats("germline_blood", model_consent=False)] == [("frozen", 2)]
