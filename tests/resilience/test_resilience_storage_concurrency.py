"""Eight processes at once storing (auto-allocated and at named positions), aliquoting-and-storing and correcting
specimens in the same two boxes, on SQLite and PostgreSQL: no position holds two specimens, no specimen, location,
audit or custody row is lost or left half-written, and every failure is a clean ConflictError or ValidationError."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session, func, select

from biobank.db.engine import session_scope
from biobank.models import AuditLog, Container, CustodyEvent, Specimen, SpecimenLocation
from biobank.services.inputs import FormatRequest
from tests.conftest import DEATH
from tests.support.concurrency import Gang, Step, errors
from tests.support.factories import H, collect, lab, make_case

WORKERS = 8
BOXES = ("BOX1", "BOX2")  # two 9x9 boxes in the same -80 rack: 162 positions
PARENT_MG = 40.0


@pytest.fixture(scope="module")
def gang() -> Iterator[Gang]:
    with Gang(WORKERS) as workers:
        yield workers


@pytest.fixture
def tubes(engine, tech) -> tuple[list[str], list[str]]:
    """(tubes to store, parents to aliquot from): 96 snap-frozen tubes and 3 parents of 40 mg."""
    excised = DEATH + 3 * H
    frozen = excised + timedelta(minutes=5)
    loose = []
    with session_scope(engine) as session:
        lab(session, tech)
        make_case(session, tech)
        for region in ("A", "B"):
            loose += collect(session, tech, region=region, formats=[FormatRequest("snap_frozen", 20, "mg", count=48,
                                                                                  stabilised_at=frozen)])
        parents = collect(session, tech, region="C", formats=[FormatRequest("snap_frozen", PARENT_MG, "mg", count=3,
                                                                            stabilised_at=frozen)])
    return loose, parents


def _plans(loose: list[str], parents: list[str]) -> list[list[Step]]:
    rng = random.Random(88)
    pool = list(loose)
    rng.shuffle(pool)
    plans: list[list[Step]] = []
    for worker in range(WORKERS):
        mine = pool[worker * 12:(worker + 1) * 12]  # each tube is offered by exactly one worker
        # Everyone first races for the same few named positions: most lose, cleanly.
        plan = [Step("store", {"codes": mine[:1], "box": "BOX1", "at": rng.choice(["A1", "A2", "A3"])})]
        taken = 1
        for index in range(6):
            roll = rng.random()
            if roll < 0.55 and taken < len(mine):
                size = rng.choice([1, 2, 3])
                plan.append(Step("store", {"codes": mine[taken:taken + size], "box": rng.choice(BOXES)}))
                taken += size
            elif roll < 0.85:
                plan.append(Step("aliquot_store", {"parent": rng.choice(parents), "box": rng.choice(BOXES),
                                                   "portions": [float(rng.choice([3, 5, 8]))] * rng.choice([1, 2])}))
            else:
                tag = f"w{worker}-s{index}"
                plan.append(Step("correct", {"code": rng.choice(parents), "reason": f"recount {tag}", "notes": tag}))
        plans.append(plan)
    return plans


def _placed(outcome_detail: str) -> list[tuple[str, str]]:
    return [tuple(item.split("@", 1)) for item in outcome_detail.split(",")]  # type: ignore[misc]


def test_eight_processes_storing_into_the_same_boxes_never_share_a_position_and_lose_nothing(
    gang, engine, db_url, tubes
):
    loose, parents = tubes
    with Session(engine) as session:
        specimens_before = session.exec(select(func.count()).select_from(Specimen)).one()

    outcomes = gang.run(db_url, "tech", _plans(loose, parents))

    assert errors(outcomes) == [], errors(outcomes)[0].detail
    statuses = Counter((o.op, o.status) for o in outcomes)
    assert {s for _, s in statuses} <= {"ok", "conflict", "invalid"}, statuses
    assert statuses[("store", "ok")] > 0 and statuses[("aliquot_store", "ok")] > 0
    assert statuses[("store", "conflict")] >= 1  # the race for A1-A3 had losers
    for outcome in outcomes:
        if outcome.status == "conflict" and outcome.op in ("store", "aliquot_store"):
            assert "already holds a specimen" in outcome.detail or "free positions" in outcome.detail, outcome.detail
        elif outcome.status == "conflict":
            assert "changed by someone else" in outcome.detail, outcome.detail
        elif outcome.status == "invalid":
            assert outcome.op == "aliquot_store" and ("remain" in outcome.detail or "nothing can be taken" in
                                                       outcome.detail), outcome.detail

    expected = {code: position for o in outcomes if o.status == "ok" and o.op in ("store", "aliquot_store")
                for code, position in _placed(o.detail)}
    made_children = [code for o in outcomes if o.status == "ok" and o.op == "aliquot_store"
                     for code, _ in _placed(o.detail)]
    with Session(engine) as session:
        doubled = session.execute(text(
            "SELECT container_id, position, count(*) FROM specimen_location WHERE position IS NOT NULL "
            "GROUP BY container_id, position HAVING count(*) > 1"
        )).all()
        assert doubled == []
        boxes = {c.id: c.code for c in session.exec(select(Container).where(Container.code.in_(BOXES)))}  # type: ignore[attr-defined]
        rows = session.exec(select(Specimen.code, SpecimenLocation.container_id, SpecimenLocation.position)
                            .join(SpecimenLocation, SpecimenLocation.specimen_id == Specimen.id)).all()  # type: ignore[arg-type]
        assert all(container in boxes for _, container, _ in rows)
        # Exactly what the successful calls reported, nothing from the refused ones.
        assert {code: position for code, _, position in rows} == expected
        assert len(rows) == len(expected)

        # No specimen lost or half-made: the fixtures plus every reported aliquot, each with its insert audit row.
        children = session.exec(select(Specimen.code).where(Specimen.parent_id.is_not(None))).all()  # type: ignore[union-attr]
        assert sorted(children) == sorted(made_children)
        total = session.exec(select(func.count()).select_from(Specimen)).one()
        assert total == specimens_before + len(made_children)
        audited_specimens = session.exec(select(func.count()).select_from(AuditLog).where(
            AuditLog.table_name == "specimen", AuditLog.action == "insert")).one()
        assert audited_specimens == total
        audited_locations = session.exec(select(func.count()).select_from(AuditLog).where(
            AuditLog.table_name == "specimen_location", AuditLog.action == "insert")).one()
        assert audited_locations == len(rows)

        # One 'stored' custody event per placed specimen, none for the refused placements.
        stored = Counter(session.exec(select(Specimen.code).join(CustodyEvent, CustodyEvent.specimen_id == Specimen.id)  # type: ignore[arg-type]
                                      .where(CustodyEvent.kind == "stored")).all())
        assert stored == Counter(expected.keys())
        aliquoted = session.exec(select(func.count()).select_from(CustodyEvent).where(
            CustodyEvent.kind == "aliquoted")).one()
        ok_aliquots = sum(1 for o in outcomes if o.status == "ok" and o.op == "aliquot_store")
        assert aliquoted == len(made_children) + ok_aliquots  # each child's event plus one on its parent per call

        for code in parents:
            parent = session.exec(select(Specimen).where(Specimen.code == code)).one()
            used = session.exec(select(func.coalesce(func.sum(Specimen.parent_quantity_used), 0))
                                .where(Specimen.parent_id == parent.id)).one()
            assert parent.quantity_remaining >= 0
            assert parent.quantity_remaining == pytest.approx(PARENT_MG - used)
            edits = [o for o in outcomes if o.status == "ok" and o.kwargs.get("parent", o.kwargs.get("code")) == code]
            assert parent.version == 1 + len(edits)
