"""The specimen list query: every filter, the place of each specimen in a handful of queries, natural order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.domain.errors import NotFoundError, ValidationError
from biobank.models import User
from biobank.queries.specimens import (
    LIST_COLUMNS,
    filter_choices,
    natural_key,
    place_key,
    places,
    plan_specimen_codes,
    specimen_list,
    specimens_by_code,
)
from biobank.services import distribution, planning, storage
from tests.conftest import DEATH
from tests.support.factories import collect, donor_with_region, lab

A = "RA0001-L01A-"  # region A of donor RA-0001 (case RAP-1)
B = "RA0002-L01A-"  # region A of donor RA-0002 (case RAP-2)
LATE = "RA0002-L01B-"  # region B of RA-0002, collected the next day


def stock(session: Session, tech: User, pi: User) -> None:
    """Two donors with a region each (six formats), a later region, stored across boxes, a plan and an order.

    BOX1 (FRZ1/R1) holds A-SF1, A-SF2 at A1, A2; BOX10 (FRZ1/R1) holds B-SF1 at A1; BOX2 holds B-SF2 at B3; the LN2
    box holds A-VC1 at A10 and B-VC1 at A2; the cassette drawer holds A-FF1 at 1; the fresh pieces and the OCT
    blocks stay unstored. Plan WGS-1 includes A-SF1 (A-SF2 was taken out again); order DO-1 holds A-SF1 and B-VC1.
    """
    lab(session, tech)
    storage.add_container(session, actor=tech, code="BOX10", kind="box_9x9", parent_code="R1")
    donor_with_region(session, tech)
    donor_with_region(session, tech, code="RA-0002", case="RAP-2")
    collect(session, tech, case="RAP-2", lesion="L01", region="B", site="LIVER", after_death=30)
    storage.store(session, actor=tech, codes=[f"{A}SF1", f"{A}SF2"], box_code="BOX1", at="A1")
    storage.store(session, actor=tech, codes=[f"{B}SF1"], box_code="BOX10", at="A1")
    storage.store(session, actor=tech, codes=[f"{B}SF2"], box_code="BOX2", at="B3")
    storage.store(session, actor=tech, codes=[f"{A}VC1"], box_code="LNBOX1", at="A10")
    storage.store(session, actor=tech, codes=[f"{B}VC1"], box_code="LNBOX1", at="A2")
    storage.store(session, actor=tech, codes=[f"{A}FF1"], box_code="DRAWER1", at="1")
    planning.create_plan(session, actor=pi, code="WGS-1", name="Liver WGS", purpose="phylogeny", assay="wgs",
                         donor_codes=["RA-0001"], use_suggestion=False)
    planning.set_specimens(session, actor=pi, plan_code="WGS-1",
                           selection=[(f"{A}SF1", "tumour", "best region"), (f"{A}SF2", "tumour", None)])
    planning.set_specimens(session, actor=pi, plan_code="WGS-1", selection=[(f"{A}SF1", "tumour", "best region")])
    distribution.create_order(session, actor=pi, study="PHYLO", recipient="Dr Lee, Crick", use="sequencing",
                              purpose="WGS of liver metastases", code="DO-1")
    distribution.add_item(session, actor=pi, order_code="DO-1", specimen_code=f"{A}SF1", quantity=20)
    distribution.add_item(session, actor=pi, order_code="DO-1", specimen_code=f"{B}VC1")
    session.flush()


@pytest.fixture
def stocked(engine: Engine, tech: User, pi: User) -> Engine:
    with session_scope(engine) as session:
        stock(session, tech, pi)
    return engine


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    """The SELECT statements ``engine`` runs inside the block."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def codes(rows: list[dict]) -> list[str]:
    return [r["code"] for r in rows]


def test_a_row_holds_donor_case_site_format_quantity_status_place_and_collection_time(stocked):
    with Session(stocked) as session:
        rows = {r["code"]: r for r in specimen_list(session)}
    assert len(rows) == 6 + 6 + 3
    first = rows[f"{A}SF1"]
    assert list(first) == list(LIST_COLUMNS)
    assert first | {"collected_at": None} == {
        "code": f"{A}SF1", "donor": "RA-0001", "case": "RAP-1", "site": "LIVER", "site_label": "Liver",
        "sampling_site": "L01-A", "storage_format": "snap_frozen", "material_type": first["material_type"],
        "quantity_remaining": 50.0, "quantity": 50.0, "unit": "mg", "status": "available",
        "location": "UH/LAB1/FRZ1/R1/BOX1:A1", "box": "BOX1", "position": "A1", "collected_at": None,
    }
    assert first["collected_at"] == DEATH + timedelta(hours=3)
    assert rows[f"{A}FF1"]["location"] == "UH/LAB1/CAB1/DRAWER1:1"
    assert rows[f"{A}FR1"]["location"] is None and rows[f"{A}FR1"]["box"] is None
    assert codes(list(rows.values())) == sorted(rows)  # by code


def test_the_list_reads_a_handful_of_queries_whatever_the_number_of_rows(stocked, tech):
    with Session(stocked) as session, counting(stocked) as few:
        assert len(specimen_list(session)) == 15
    with session_scope(stocked) as session:  # three times the specimens, twice the boxes
        for n in (3, 4, 5):
            donor_with_region(session, tech, code=f"RA-000{n}", case=f"RAP-{n}")
            storage.store(session, actor=tech, codes=[f"RA000{n}-L01A-SF1", f"RA000{n}-L01A-SF2"], box_code="BOX2")
    with Session(stocked) as session, counting(stocked) as more:
        assert len(specimen_list(session)) == 33
    # one SELECT for the rows, one per level of the storage tree (box, rack, freezer, room, site): never per row
    assert len(few) == len(more) <= 6


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"donor": "RA-0002"}, {f"{B}{s}" for s in ("SF1", "SF2", "OC1", "FF1", "VC1", "FR1")}
         | {f"{LATE}SF1", f"{LATE}SF2", f"{LATE}FF1"}),
        ({"case": ["RAP-1"], "storage_format": ["snap_frozen", "viable_cryo"]}, {f"{A}SF1", f"{A}SF2", f"{A}VC1"}),
        ({"site": "LIVER", "donor": ["RA-0001"], "storage_format": "ffpe"}, {f"{A}FF1"}),
        ({"site": "BREAST"}, set()),
        ({"donor": "RA-9999"}, set()),
        ({"box": "BOX1"}, {f"{A}SF1", f"{A}SF2"}),
        ({"box": "FRZ1"}, {f"{A}SF1", f"{A}SF2", f"{B}SF1", f"{B}SF2"}),  # everything below the freezer
        ({"box": "LN1", "donor": "RA-0002"}, {f"{B}VC1"}),
        ({"plan": "WGS-1"}, {f"{A}SF1"}),  # A-SF2 was taken out of the plan again
        ({"status": "available", "storage_format": "fresh"}, {f"{A}FR1", f"{B}FR1"}),
        ({"collected_from": date(2026, 3, 15)}, {f"{LATE}SF1", f"{LATE}SF2", f"{LATE}FF1"}),
        ({"collected_to": date(2026, 3, 14), "case": "RAP-2", "storage_format": "snap_frozen"}, {f"{B}SF1", f"{B}SF2"}),
        ({"collected_from": date(2026, 3, 14), "collected_to": date(2026, 3, 14), "donor": "RA-0002",
          "storage_format": "ffpe"}, {f"{B}FF1"}),
        ({"collected_from": DEATH + timedelta(hours=30), "collected_to": DEATH + timedelta(hours=30),
          "storage_format": "ffpe"}, {f"{LATE}FF1"}),  # a datetime bound is inclusive
    ],
)
def test_each_filter_narrows_the_list(stocked, filters, expected):
    with Session(stocked) as session:
        assert set(codes(specimen_list(session, **filters))) == expected


def test_status_follows_the_writes(stocked, tech):
    with session_scope(stocked) as session:
        storage.check_out(session, actor=tech, code=f"{A}SF2")
        storage.dispose(session, actor=tech, code=f"{B}SF2", reason="tube cracked")
    with Session(stocked) as session:
        assert codes(specimen_list(session, status="in_use")) == [f"{A}SF2"]
        assert codes(specimen_list(session, status=["disposed", "in_use"], box="FRZ1")) == [f"{A}SF2"]
        disposed = specimen_list(session, status="disposed")
    assert codes(disposed) == [f"{B}SF2"] and disposed[0]["location"] is None  # disposal freed its position


def test_a_date_is_a_whole_day_in_the_labs_time_zone(stocked, monkeypatch):
    """At 05:00 UTC on 14 March it is still 13 March in Los Angeles; 08:00 UTC on the 15th is 01:00 there."""
    monkeypatch.setenv("BIOBANK_TIMEZONE", "America/Los_Angeles")
    get_settings.cache_clear()
    with Session(stocked) as session:
        day = {d: codes(specimen_list(session, collected_from=date(2026, 3, d), collected_to=date(2026, 3, d)))
               for d in (13, 14, 15)}
    get_settings.cache_clear()
    assert len(day[13]) == 12 and day[14] == [] and set(day[15]) == {f"{LATE}SF1", f"{LATE}SF2", f"{LATE}FF1"}


def test_limit_caps_the_rows_in_code_order(stocked):
    with Session(stocked) as session:
        everything = codes(specimen_list(session, limit=None))
        assert codes(specimen_list(session, limit=4)) == everything[:4]
        with pytest.raises(ValidationError, match=r"(?i)limit"):
            specimen_list(session, limit=0)


def test_bad_filters_are_named(stocked):
    with Session(stocked) as session:
        with pytest.raises(NotFoundError, match="NOPE"):
            specimen_list(session, box="NOPE")
        with pytest.raises(NotFoundError, match="analysis plan 'NOPE'"):
            specimen_list(session, plan="NOPE")
        with pytest.raises(ValidationError, match="frozenish"):
            specimen_list(session, storage_format="frozenish")
        with pytest.raises(ValidationError, match=r"(?i)status"):
            specimen_list(session, status=["available", "lost"])
        with pytest.raises(ValidationError, match="time zone"):
            specimen_list(session, collected_from=datetime(2026, 3, 14, 5, 0))
        with pytest.raises(ValidationError, match="before the start of the range"):
            specimen_list(session, collected_from=date(2026, 3, 15), collected_to=date(2026, 3, 14))


def test_places_sort_by_container_then_position_in_natural_order(stocked):
    wanted = [f"{A}SF1", f"{A}SF2", f"{B}SF1", f"{B}SF2", f"{A}VC1", f"{B}VC1", f"{A}FF1", f"{A}FR1"]
    with Session(stocked) as session:
        where = places(session, wanted)
    assert f"{A}FR1" not in where  # stored nowhere
    assert where[f"{B}SF2"].label == "UH/LAB1/FRZ1/R1/BOX2:B3"
    assert (where[f"{B}SF2"].unit, where[f"{B}SF2"].rack, where[f"{B}SF2"].box) == ("FRZ1", "R1", "BOX2")
    assert (where[f"{A}VC1"].unit, where[f"{A}VC1"].rack, where[f"{A}VC1"].box) == ("LN1", None, "LNBOX1")
    walk = sorted(wanted, key=lambda code: place_key(where.get(code)))
    assert walk == [
        f"{A}FF1",  # CAB1 before FRZ1 before LN1
        f"{A}SF1", f"{A}SF2",  # BOX1
        f"{B}SF2",  # BOX2
        f"{B}SF1",  # BOX10 after BOX2
        f"{B}VC1", f"{A}VC1",  # A2 before A10
        f"{A}FR1",  # not stored: last
    ]


def test_natural_key_reads_numbers_as_numbers():
    assert sorted(["A10", "B1", "A2", "A1"], key=natural_key) == ["A1", "A2", "A10", "B1"]
    assert sorted(["BOX-10", "box-9", "BOX-1"], key=natural_key) == ["BOX-1", "box-9", "BOX-10"]
    assert natural_key(None) == ()


def test_specimens_by_code_keeps_the_order_given_and_names_an_unknown_code(stocked):
    with Session(stocked) as session:
        rows = specimens_by_code(session, [f"{B}VC1", f"{A}SF1", f"{B}VC1"])
        assert list(rows) == [f"{B}VC1", f"{A}SF1"] and rows[f"{B}VC1"]["location"] == "UH/LAB1/LN1/LNBOX1:A2"
        with pytest.raises(NotFoundError, match="RA0009"):
            specimens_by_code(session, [f"{A}SF1", "RA0009-L01A-SF1"])


def test_plan_codes_and_filter_choices(stocked):
    with Session(stocked) as session:
        assert plan_specimen_codes(session, "WGS-1") == [(f"{A}SF1", "tumour")]
        choices = filter_choices(session)
    assert choices["donor"] == ["RA-0001", "RA-0002"] and choices["case"] == ["RAP-1", "RAP-2"]
    assert choices["site"] == ["LIVER"] and choices["plan"] == ["WGS-1"]
    assert choices["box"].index("BOX2") < choices["box"].index("BOX10") and "FRZ1" in choices["box"]


def test_an_empty_bank_lists_nothing(engine):
    with Session(engine) as session:
        assert specimen_list(session) == []
        assert places(session, []) == {}
        assert filter_choices(session) == {"donor": [], "case": [], "site": [], "box": [], "plan": []}


def test_collected_at_is_aware(stocked):
    with Session(stocked) as session:
        row = specimen_list(session, limit=1)[0]
    assert row["collected_at"].tzinfo is not None and row["collected_at"].astimezone(UTC) == DEATH + timedelta(hours=3)
