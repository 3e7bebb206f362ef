"""Storage: building the tree, placing, moving, check-out and return, each refusal leaving the database unchanged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from biobank.db.engine import session_scope
from biobank.domain.errors import BiobankError, ConflictError, PermissionDeniedError, ValidationError
from biobank.models import CustodyEvent, Specimen, SpecimenLocation
from biobank.models.base import utcnow
from biobank.queries import core as queries
from biobank.queries import storage as storage_reads
from biobank.services import specimens as specimen_service
from biobank.services import storage
from tests.support.dbtools import snapshot
from tests.support.factories import by_format, donor_with_region, lab


@pytest.fixture
def made(engine, tech):
    with session_scope(engine) as session:
        lab(session, tech)
        made = donor_with_region(session, tech)
        return {fmt: by_format(made, fmt) for fmt in ("snap_frozen", "oct", "ffpe", "viable_cryo", "fresh")}


def refused(engine, action, error, match=None, *, rule=None):
    """Run ``action`` in its own unit of work; it must raise ``error`` (naming the database ``rule`` it broke, when
    given) and change nothing."""
    before = snapshot(engine)
    with pytest.raises(error, match=match) as raised, session_scope(engine) as session:
        action(session)
    if rule is not None:
        assert raised.value.field == rule
    assert snapshot(engine) == before


def test_a_technician_builds_a_freezer_and_sees_the_tree(engine, tech):
    with session_scope(engine) as session:
        lab(session, tech)
        rows = storage_reads.tree(session)
    by_code = {r["code"]: r for r in rows}
    assert by_code["BOX1"]["path"] == "UH/LAB1/FRZ1/R1/BOX1"
    assert by_code["BOX1"]["temperature"] == "-60to-85"  # inherited from the freezer
    assert by_code["BOX1"]["capacity"] == 81
    assert by_code["LNBOX1"]["temperature"] == "LN"
    assert by_code["DRAWER1"]["temperature"] == "RT"
    assert [r["code"] for r in rows][:3] == ["UH", "LAB1", "CAB1"]  # depth-first, children by code


@pytest.mark.parametrize(
    ("code", "kind", "parent", "match"),
    [
        ("BOXX", "box_9x9", "CAB1", "rt_cabinet"),
        ("ROOM2", "room", None, "must go inside"),
        ("SITE2", "site", "LAB1", "top of the tree"),
        ("BOX1", "box_9x9", "R1", "already exists"),
        ("BAD CODE", "box_9x9", "R1", "letters, digits"),
        ("BOXY", "tube_rack", "R1", r"^Kind \(tube_rack\) must be one of"),
        ("BOXZ", "box_9x9", "NOPE", "not found"),
    ],
)
def test_a_container_in_the_wrong_place_is_refused(engine, tech, code, kind, parent, match):
    with session_scope(engine) as session:
        lab(session, tech)
    refused(engine, lambda s: storage.add_container(s, actor=tech, code=code, kind=kind, parent_code=parent),
            (ValidationError, ConflictError, Exception), match)


def test_store_at_a_position_records_location_and_custody(engine, tech, made):
    code = made["snap_frozen"][0]
    with session_scope(engine) as session:
        (placement,) = storage.store(session, actor=tech, codes=[code], box_code="BOX1", at="c4")
    assert placement.position == "C4"
    with session_scope(engine) as session:
        found = storage_reads.find(session, code)
        detail = queries.specimen_detail(session, code)
    assert found["location"] == "UH/LAB1/FRZ1/R1/BOX1:C4"
    assert detail["location"] == "UH/LAB1/FRZ1/R1/BOX1:C4"
    assert detail["sprec"].endswith("-D")  # long-term storage from the freezer's class: cryotube at -80
    stored = [e for e in detail["custody"] if e["kind"] == "stored"]
    assert stored == [{"at": stored[0]["at"], "kind": "stored", "user": "tech", "from": None,
                       "to": "UH/LAB1/FRZ1/R1/BOX1:C4", "note": None}]


def test_ln2_storage_gives_sprec_long_term_code_c(engine, tech, made):
    code = made["snap_frozen"][0]
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[code], box_code="LNBOX1")
        assert queries.specimen_detail(session, code)["sprec"].endswith("-C")


def test_second_specimen_cannot_take_an_occupied_position(engine, tech, made):
    first, second = made["snap_frozen"]
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[first], box_code="BOX1", at="A1")
    refused(engine, lambda s: storage.store(s, actor=tech, codes=[second], box_code="BOX1", at="A1"),
            ConflictError, "BOX1 position A1: already holds a specimen")


def test_aliquots_go_into_consecutive_positions(engine, tech, made):
    with session_scope(engine) as session:
        aliquots = specimen_service.aliquot(session, actor=tech, parent_code=made["snap_frozen"][0], portions=[10, 10, 10])
        codes = [a.code for a in aliquots]
        storage.store(session, actor=tech, codes=[made["oct"][0]], box_code="BOX1", at="A2")
        placements = storage.store(session, actor=tech, codes=codes, box_code="BOX1")
    # A1 is free but A2 is taken: the first run of three free positions starts at A3
    assert [p.position for p in placements] == ["A3", "A4", "A5"]


def test_a_set_that_would_overlap_an_occupied_position_is_refused_whole(engine, tech, made):
    first, second = made["snap_frozen"]
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[made["oct"][0]], box_code="BOX1", at="A2")
    refused(engine, lambda s: storage.store(s, actor=tech, codes=[first, second], box_code="BOX1", at="A1"),
            ConflictError, "A2")


@pytest.mark.parametrize(
    ("fmt", "box", "match"),
    [
        ("snap_frozen", "DRAWER1", "snap_frozen .* must be stored at -60to-85 or LN, not RT"),
        ("ffpe", "LNBOX1", "ffpe .* must be stored at 2to10 or RT, not LN"),
        ("fresh", "BOX1", "fresh material"),
    ],
)
def test_format_and_temperature_must_match(engine, tech, made, fmt, box, match):
    refused(engine, lambda s: storage.store(s, actor=tech, codes=[made[fmt][0]], box_code=box), ValidationError, match)


def test_specimens_go_into_boxes_not_into_racks_or_freezers(engine, tech, made):
    refused(engine, lambda s: storage.store(s, actor=tech, codes=[made["oct"][0]], box_code="R1"),
            ValidationError, "holds containers, not specimens")


def test_a_position_off_the_grid_is_refused(engine, tech, made):
    refused(engine, lambda s: storage.store(s, actor=tech, codes=[made["oct"][0]], box_code="BOX1", at="J1"),
            ValidationError, "outside the grid")


def test_a_depleted_specimen_is_not_stored(engine, tech, made):
    code = made["snap_frozen"][0]
    with session_scope(engine) as session:
        specimen_service.aliquot(session, actor=tech, parent_code=code, portions=[50])
    refused(engine, lambda s: storage.store(s, actor=tech, codes=[code], box_code="BOX1"), ValidationError, "depleted")


def test_a_stored_specimen_is_not_stored_twice(engine, tech, made):
    code = made["oct"][0]
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[code], box_code="BOX1")
    refused(engine, lambda s: storage.store(s, actor=tech, codes=[code], box_code="BOX2"), ConflictError, "move it")


def test_a_viewer_cannot_store(engine, viewer, made):
    refused(engine, lambda s: storage.store(s, actor=viewer, codes=[made["oct"][0]], box_code="BOX1"),
            PermissionDeniedError, "viewer")


def test_a_whole_region_is_stored_in_one_call_by_format(engine, tech, made):
    with session_scope(engine) as session:
        result = storage.store_region(session, actor=tech, case_code="RAP-1", site_code="L01-A",
                                      box_codes=["BOX1", "LNBOX1", "DRAWER1"])
    where = {p.code: (p.container, p.position) for p in result.placements}
    assert where[made["ffpe"][0]] == ("DRAWER1", "1")
    assert where[made["viable_cryo"][0]] == ("LNBOX1", "A1")  # viable cells prefer liquid nitrogen
    assert sorted(where[c] for c in made["snap_frozen"] + made["oct"]) == [("BOX1", "A1"), ("BOX1", "A2"), ("BOX1", "A3")]
    assert [code for code, _ in result.skipped] == made["fresh"]


def test_a_region_with_a_piece_no_box_suits_is_refused_whole(engine, tech, made):
    refused(engine, lambda s: storage.store_region(s, actor=tech, case_code="RAP-1", site_code="L01-A", box_codes=["BOX1"]),
            ValidationError, "fits none")


def test_move_a_specimen_to_another_box(engine, tech, made):
    code = made["oct"][0]
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[code], box_code="BOX1", at="A1")
        placement = storage.move_specimen(session, actor=tech, code=code, box_code="BOX2", at="B2")
    assert placement.location == "UH/LAB1/FRZ1/R1/BOX2:B2"
    with session_scope(engine) as session:
        moved = [e for e in queries.specimen_detail(session, code)["custody"] if e["kind"] == "moved"]
        assert storage_reads.box_view(session, "BOX1")["occupied"] == 0
    assert moved[0]["from"] == "UH/LAB1/FRZ1/R1/BOX1:A1" and moved[0]["to"] == "UH/LAB1/FRZ1/R1/BOX2:B2"


def test_move_a_whole_box_records_a_move_for_every_specimen(engine, tech, made):
    codes = made["snap_frozen"] + made["oct"]
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=codes, box_code="BOX1")
        storage.move_container(session, actor=tech, code="BOX1", parent_code="FRZ2")
    with session_scope(engine) as session:
        assert storage_reads.find(session, codes[0])["location"] == "UH/LAB1/FRZ2/BOX1:A1"
        events = session.exec(select(CustodyEvent).where(CustodyEvent.kind == "moved")).all()
    assert len(events) == 3
    assert {e.from_location for e in events} == {f"UH/LAB1/FRZ1/R1/BOX1:A{i}" for i in (1, 2, 3)}


def test_a_box_moves_only_where_its_kind_and_contents_fit(engine, tech, made):
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=made["snap_frozen"], box_code="BOX1")
        storage.add_container(session, actor=tech, code="FRIDGE1", kind="fridge", parent_code="LAB1")
    refused(engine, lambda s: storage.move_container(s, actor=tech, code="BOX1", parent_code="CAB1"),
            ValidationError, "rt_cabinet")
    refused(engine, lambda s: storage.move_container(s, actor=tech, code="BOX1", parent_code="FRIDGE1"),
            ValidationError, "cannot go there")
    refused(engine, lambda s: storage.move_container(s, actor=tech, code="R1", parent_code="R1"),
            ValidationError)


def test_check_out_and_return_counts_a_freeze_thaw_cycle(engine, tech, made):
    code = made["snap_frozen"][0]
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[code], box_code="BOX1", at="A1")
        storage.check_out(session, actor=tech, code=code, purpose="cut sections")
        specimen = specimen_service.get_specimen(session, code)
        assert specimen.status == "in_use"
        assert queries.specimen_detail(session, code)["location"].endswith("(checked out)")
    # the position stays reserved while the tube is out
    refused(engine, lambda s: storage.store(s, actor=tech, codes=[made["snap_frozen"][1]], box_code="BOX1", at="A1"),
            ConflictError)
    refused(engine, lambda s: storage.check_out(s, actor=tech, code=code), ConflictError, "already checked out")
    with session_scope(engine) as session:
        storage.return_specimen(session, actor=tech, code=code)
        specimen = specimen_service.get_specimen(session, code)
        assert (specimen.status, specimen.freeze_thaw_count) == ("available", 1)
        kinds = [e["kind"] for e in queries.specimen_detail(session, code)["custody"]]
    assert kinds[-3:] == ["stored", "checked_out", "returned"]


def test_a_tube_kept_on_dry_ice_does_not_count_a_thaw(engine, tech, made):
    code = made["snap_frozen"][0]
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[code], box_code="BOX1")
        storage.check_out(session, actor=tech, code=code)
        storage.return_specimen(session, actor=tech, code=code, kept_frozen=True)
        assert specimen_service.get_specimen(session, code).freeze_thaw_count == 0


def test_returning_what_was_not_checked_out_is_refused(engine, tech, made):
    code = made["oct"][0]
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[code], box_code="BOX1")
    refused(engine, lambda s: storage.return_specimen(s, actor=tech, code=code), ValidationError, "not checked out")
    refused(engine, lambda s: storage.check_out(s, actor=tech, code=made["snap_frozen"][0]), ValidationError, "not stored")


def test_check_outs_past_the_set_time_are_overdue(engine, tech, made):
    late, recent = made["snap_frozen"]
    now = utcnow()
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[late, recent], box_code="BOX1")
        storage.check_out(session, actor=tech, code=late, when=now - timedelta(hours=30))
        storage.check_out(session, actor=tech, code=recent, when=now - timedelta(hours=2))
        rows = storage_reads.overdue(session, now=now)
        every = storage_reads.checkouts(session, now=now)
    assert [r["code"] for r in rows] == [late]
    assert rows[0]["hours_out"] == pytest.approx(30, abs=0.1)
    assert [(r["code"], r["overdue"]) for r in every] == [(late, True), (recent, False)]


def test_box_view_lists_cells_in_fill_order(engine, tech, made):
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[made["oct"][0]], box_code="BOX1", at="B1")
        storage.store(session, actor=tech, codes=[made["snap_frozen"][0]], box_code="BOX1", at="A9")
        view = storage_reads.box_view(session, "BOX1")
    assert [(c["position"], c["row"], c["col"]) for c in view["cells"]] == [("A9", 1, 9), ("B1", 2, 1)]
    assert view["occupied"] == 2 and view["capacity"] == 81


def test_the_database_refuses_a_second_specimen_in_a_position(engine, tech, made):
    """Even a write that skips the service cannot put two specimens into one position."""
    first, second = made["snap_frozen"]
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[first], box_code="BOX1", at="A1")
    with session_scope(engine) as session:
        box = storage_reads.get_container(session, "BOX1")
        other = specimen_service.get_specimen(session, second)
        box_id, other_id = box.id, other.id

    def raw_insert(session):
        session.add(SpecimenLocation(specimen_id=other_id, container_id=box_id, position="A1"))
        session.flush()

    refused(engine, raw_insert, ConflictError, "^This position already holds a specimen",
            rule="uq_specimen_location_container_id_position")


def test_the_database_refuses_positions_that_do_not_match_the_grid(engine, tech, made):
    with session_scope(engine) as session:
        ids = {c: storage_reads.get_container(session, c).id for c in ("BOX1", "BAG1", "R1")}
        spec_id = session.exec(select(Specimen.id).where(Specimen.code == made["oct"][0])).one()

    def insert(container, position):
        def action(session):
            session.add(SpecimenLocation(specimen_id=spec_id, container_id=ids[container], position=position))
            session.flush()
        return action

    # SQLite reports a trigger's refusal as a conflict, PostgreSQL as a check violation; both name the rule.
    refused(engine, insert("BOX1", None), BiobankError, "^A container with a grid needs a position",
            rule="tg_specimen_location_position_matches_grid")
    refused(engine, insert("BAG1", "A1"), BiobankError, rule="tg_specimen_location_position_matches_grid")
    refused(engine, insert("R1", None), BiobankError, "^Specimens go into boxes",
            rule="tg_specimen_location_in_specimen_holder")



def test_disposing_of_a_specimen_frees_its_position(engine, tech, made):
    code = made["snap_frozen"][0]
    with session_scope(engine) as session:
        storage.store(session, actor=tech, codes=[code], box_code="BOX1")
    with session_scope(engine) as session:
        storage.dispose(session, actor=tech, code=code, reason="failed QC")
    with session_scope(engine) as session:
        assert session.exec(select(SpecimenLocation)).all() == []
        events = session.exec(select(CustodyEvent.kind, CustodyEvent.from_location).order_by(CustodyEvent.id)).all()
        assert events[-1][0] == "disposed" and events[-1][1].endswith("BOX1:A1")
