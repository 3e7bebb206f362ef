"""No entered time in the future (beyond the clock skew the settings allow) and none before what must come first:
excision, stabilisation, fixation, custody, passages, model dates, QC and order times, through every service."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.domain.errors import ValidationError
from biobank.models import Specimen
from biobank.services import collection, derived, donors, specimens, storage
from biobank.services import distribution as orders
from biobank.services.checks import check_time
from biobank.services.inputs import (
    AutopsyOpen,
    DonorCreate,
    FormatRequest,
    ModelCreate,
    ModelQCCreate,
    PassageCreate,
    RegionCollect,
)
from tests.conftest import DEATH
from tests.support.dbtools import assert_refused, snapshot
from tests.support.factories import H, by_format, donor_with_material, donor_with_region, lab, make_case

FAR_FUTURE = datetime(2099, 1, 1, 9, 0, tzinfo=UTC)
#: After the earliest day the biobank records (1980) but before anything in the fixtures happened.
LONG_AGO = datetime(2001, 1, 1, 9, 0, tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------------------------------ the one rule


def test_a_time_later_than_now_plus_the_clock_skew_is_refused():
    check_time("excised_at", now() + timedelta(minutes=3))  # within the default 5 minutes of skew
    with pytest.raises(ValidationError, match=r"^Excised \(.* Europe/London\) is in the future \(the time now is") as refused:
        check_time("excised_at", now() + timedelta(minutes=10))
    assert refused.value.field == "excised_at"


def test_the_clock_skew_is_the_settings(monkeypatch):
    monkeypatch.setenv("BIOBANK_CLOCK_SKEW_MINUTES", "0")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValidationError, match="in the future"):
            check_time("at", now() + timedelta(minutes=1))
    finally:
        monkeypatch.delenv("BIOBANK_CLOCK_SKEW_MINUTES")
        get_settings.cache_clear()


def test_a_day_after_today_in_the_labs_zone_is_refused_and_today_is_not():
    zone = get_settings().zone
    today = now().astimezone(zone).date()
    check_time("passaged_on", today)
    with pytest.raises(ValidationError, match=r"^Passaged \(.*\) is in the future \(today is"):
        check_time("passaged_on", today + timedelta(days=1))


def test_a_time_before_what_comes_first_is_refused_by_the_same_helper():
    excised = datetime(2026, 12, 6, 21, 40, tzinfo=UTC)
    with pytest.raises(ValidationError) as refused:
        check_time("stabilised_at", datetime(2026, 12, 6, 21, 27, tzinfo=UTC), after=[("excised_at", excised)])
    assert str(refused.value) == "Stabilised (06 Dec 2026 21:27 Europe/London) cannot be before Excised (06 Dec 2026 21:40)"
    # a day is compared with a time by the lab day the time falls on
    check_time("initiated_on", date(2026, 12, 6), after=[("collected_at", excised)])
    with pytest.raises(ValidationError, match="cannot be before Collected"):
        check_time("initiated_on", date(2026, 12, 5), after=[("collected_at", excised)])


# ----------------------------------------------------------------------------------------- collection and autopsy


def region(engine, tech, *, excised, formats=None):
    def action(session):
        collection.collect_region(session, actor=tech, data=RegionCollect(
            case_code="RAP-1", kind="tumour_region", site_code="LIVER", lesion_code="L02", region_label="A",
            excised_at=excised, formats=formats or [FormatRequest("snap_frozen", 50, "mg", count=6)]))
    return action


def test_an_excision_in_2030_makes_no_specimens(engine, tech):
    """Reported: a 2030 excision made 6 specimens with a PMI of 35,068.8 h."""
    with session_scope(engine) as session:
        make_case(session, tech)
    assert_refused(engine, ValidationError, r"^Excised \(01 Jan 2030 .*\) is in the future",
                   region(engine, tech, excised=datetime(2030, 1, 1, 9, 0, tzinfo=UTC)))


def test_an_excision_later_tonight_is_refused_and_one_a_minute_ahead_is_taken(engine, tech):
    """Reported: 23:59 tonight gave a PMI of 7.1 h while the clock read 4:44."""
    with session_scope(engine) as session:
        make_case(session, tech)
    assert_refused(engine, ValidationError, "is in the future", region(engine, tech, excised=now() + timedelta(hours=2)))
    with session_scope(engine) as session:
        region(engine, tech, excised=now() + timedelta(minutes=1))(session)
        assert session.exec(select(Specimen)).all()


@pytest.mark.parametrize("field", ["stabilised_at", "fixation_end_at"])
def test_stabilisation_and_fixation_end_in_the_future_are_refused(engine, tech, field):
    with session_scope(engine) as session:
        make_case(session, tech)
    excised = DEATH + 3 * H
    times = {"stabilised_at": excised + timedelta(minutes=5), field: FAR_FUTURE}
    action = region(engine, tech, excised=excised, formats=[FormatRequest("ffpe", 1, "blocks", **times)])
    assert_refused(engine, ValidationError, "is in the future", action)


def test_autopsy_times_in_the_future_are_refused(engine, tech):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0001"))
    assert_refused(engine, ValidationError, r"^Time of death \(01 Jan 2099",
                   lambda s: collection.open_autopsy(s, actor=tech, data=AutopsyOpen(
                       donor_code="RA-0001", case_code="RAP-1", death_at=FAR_FUTURE)))
    with session_scope(engine) as session:
        collection.open_autopsy(session, actor=tech, data=AutopsyOpen(donor_code="RA-0001", case_code="RAP-1", death_at=DEATH))
    assert_refused(engine, ValidationError, r"^Autopsy start \(.*\) is in the future",
                   lambda s: collection.update_autopsy_times(s, actor=tech, case_code="RAP-1", start_at=FAR_FUTURE))


def test_consent_and_withdrawal_are_not_dated_in_the_future(engine, tech):
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0001"))
    assert_refused(engine, ValidationError, r"^Consent date \(01 Jan 2099\) is in the future",
                   lambda s: donors.record_consent(s, actor=tech, donor_code="RA-0001", given_by="donor",
                                                   consented_on=date(2099, 1, 1), scopes={"research_use"}))
    assert_refused(engine, ValidationError, r"^Consent withdrawn \(.*\) is in the future",
                   lambda s: donors.withdraw_consent(s, actor=tech, donor_code="RA-0001", requested_by="next_of_kin",
                                                     withdrawn_at=FAR_FUTURE, reason="family request"))


# ----------------------------------------------------------------------------------------- custody of specimens


@pytest.fixture
def made(engine, tech):
    with session_scope(engine) as session:
        lab(session, tech)
        return donor_with_region(session, tech)


@pytest.mark.parametrize(
    ("when", "match"),
    [(FAR_FUTURE, "is in the future"), (LONG_AGO, r"cannot be before .*'s collection \(14 Mar 2026")],
)
def test_custody_times_are_neither_in_the_future_nor_before_collection(engine, tech, made, when, match):
    """Reported: custody times in 1900 and 2099 were accepted."""
    frozen = by_format(made, "snap_frozen")
    assert_refused(engine, ValidationError, match,
                   lambda s: storage.store(s, actor=tech, codes=[frozen[0]], box_code="BOX1", when=when))
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=frozen, box_code="BOX1", at="A1")
    actions = {
        "check-out": lambda s: storage.check_out(s, actor=tech, code=frozen[0], when=when),
        "move": lambda s: storage.move_specimen(s, actor=tech, code=frozen[0], box_code="BOX2", when=when),
        "disposal": lambda s: storage.dispose(s, actor=tech, code=frozen[0], reason="thawed", at=when),
        "move of the box": lambda s: storage.move_container(s, actor=tech, code="BOX1", parent_code="FRZ2", when=when),
        "aliquots": lambda s: specimens.aliquot(s, actor=tech, parent_code=frozen[0], portions=[5], at=when),
        "derivative": lambda s: specimens.derive(s, actor=tech, parent_code=frozen[0], material_type="dna", quantity=100,
                                                 unit="ng", parent_quantity_used=5, at=when),
        "QC": lambda s: specimens.record_qc(s, actor=tech, code=frozen[0], tumour_cellularity_pct=50, at=when),
    }
    for name, action in actions.items():
        before = snapshot(engine)
        with pytest.raises(ValidationError, match=match), session_scope(engine) as session:
            action(session)
        assert snapshot(engine) == before, name


def test_a_return_is_neither_in_the_future_nor_before_the_check_out(engine, tech, made):
    frozen = by_format(made, "snap_frozen")[0]
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[frozen], box_code="BOX1")
        storage.check_out(session, actor=tech, code=frozen, when=now() - H)
    assert_refused(engine, ValidationError, "is in the future",
                   lambda s: storage.return_specimen(s, actor=tech, code=frozen, when=FAR_FUTURE))
    assert_refused(engine, ValidationError, r"cannot be before the check-out",
                   lambda s: storage.return_specimen(s, actor=tech, code=frozen, when=now() - 2 * H))


def test_order_times_are_neither_in_the_future_nor_out_of_order(engine, tech, pi, made):
    frozen = by_format(made, "snap_frozen")
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=frozen, box_code="BOX1")
        orders.create_order(session, actor=pi, study="PHYLO-1", recipient="Dr Lee", use="sequencing", code="DO-1")
        orders.add_item(session, actor=pi, order_code="DO-1", specimen_code=frozen[0], quantity=10)
    assert_refused(engine, ValidationError, r"^Time \(01 Jan 2099 .*\) is in the future",
                   lambda s: orders.approve(s, actor=pi, order_code="DO-1", when=FAR_FUTURE))
    with session_scope(engine) as session:
        orders.approve(session, actor=pi, order_code="DO-1", when=now() - 3 * H)
    assert_refused(engine, ValidationError, "cannot be before the approval",
                   lambda s: orders.ship(s, actor=tech, order_code="DO-1", shipping_temperature="-60to-85",
                                         when=now() - 4 * H))
    assert_refused(engine, ValidationError, "is in the future",
                   lambda s: orders.ship(s, actor=tech, order_code="DO-1", shipping_temperature="-60to-85",
                                         when=FAR_FUTURE))
    with session_scope(engine) as session:
        orders.ship(session, actor=tech, order_code="DO-1", shipping_temperature="-60to-85", when=now() - 2 * H)
    assert_refused(engine, ValidationError, "is in the future",
                   lambda s: orders.receive(s, actor=tech, order_code="DO-1", when=FAR_FUTURE))
    assert_refused(engine, ValidationError, "cannot be before the shipment",
                   lambda s: orders.return_items(s, actor=tech, order_code="DO-1", specimen_code=frozen[0], quantity=5,
                                                 when=now() - 3 * H))


# --------------------------------------------------------------------------------------------- derived models


DAY0 = date(2026, 3, 15)


@pytest.fixture
def model(engine, tech):
    with session_scope(engine) as session:
        material = donor_with_material(session, tech)
        made = derived.create_model(session, actor=tech, data=ModelCreate(
            source_code=material["L01-fresh"].code, kind="organoid", initiated_on=DAY0))
        derived.record_passage(session, actor=tech, data=PassageCreate(model_code=made.code, passaged_on=DAY0))
        return made.code


def test_a_model_is_not_initiated_in_the_future_nor_before_its_source(engine, tech):
    with session_scope(engine) as session:
        source = donor_with_material(session, tech)["L01-fresh"].code
    assert_refused(engine, ValidationError, r"^Initiated \(01 Jan 2099\) is in the future",
                   lambda s: derived.create_model(s, actor=tech, data=ModelCreate(
                       source_code=source, kind="organoid", initiated_on=date(2099, 1, 1))))
    assert_refused(engine, ValidationError, r"^Initiated \(01 Jan 2001\) cannot be before the source's collection",
                   lambda s: derived.create_model(s, actor=tech, data=ModelCreate(
                       source_code=source, kind="organoid", initiated_on=date(2001, 1, 1))))
    assert_refused(engine, ValidationError, r"^Initiated \(01 Jan 1900\) is before 01 Jan 1980, the earliest day",
                   lambda s: derived.create_model(s, actor=tech, data=ModelCreate(
                       source_code=source, kind="organoid", initiated_on=date(1900, 1, 1))))


@pytest.mark.parametrize(
    ("day", "match"),
    [(date(2099, 1, 1), r"^Passaged \(01 Jan 2099\) is in the future"),
     (date(2001, 1, 1), r"^Passaged \(01 Jan 2001\) cannot be before the model's initiation \(15 Mar 2026\)"),
     (date(1900, 1, 1), r"^Passaged \(01 Jan 1900\) is before 01 Jan 1980, the earliest day this biobank records")],
)
def test_passage_days_are_neither_in_the_future_nor_before_the_model(engine, tech, model, day, match):
    """Reported: passage dates in 1900 and 2099 were accepted."""
    assert_refused(engine, ValidationError, match, lambda s: derived.record_passage(
        s, actor=tech, data=PassageCreate(model_code=model, passaged_on=day, parent_label="P0")))


def test_qc_status_and_distribution_days_are_not_in_the_future(engine, tech, model):
    assert_refused(engine, ValidationError, r"^Tested \(01 Jan 2099\) is in the future",
                   lambda s: derived.record_model_qc(s, actor=tech, data=ModelQCCreate(
                       model_code=model, passage_label="P0", tested_on=date(2099, 1, 1), mycoplasma="negative")))
    assert_refused(engine, ValidationError, r"^Date \(01 Jan 2099\) is in the future",
                   lambda s: derived.set_status(s, actor=tech, model_code=model, status="failed", on=date(2099, 1, 1)))
    assert_refused(engine, ValidationError, r"^Distributed \(01 Jan 2099\) is in the future",
                   lambda s: derived.distribute_passage(s, actor=tech, model_code=model, label="P0",
                                                        distributed_to="Dr Lee", distributed_on=date(2099, 1, 1)))
    assert_refused(engine, ValidationError, r"^Time \(01 Jan 2099 .*\) is in the future",
                   lambda s: derived.passage_specimens(s, actor=tech, model_code=model, passage_label="P0",
                                                       material_type="cells", storage_format="viable_cryo",
                                                       quantity=1e6, unit="cells", at=FAR_FUTURE))

