"""Eight processes at once aliquoting from and correcting the same specimens, on SQLite and PostgreSQL: quantities
never go negative, no aliquot, audit or custody row is lost, every failure is a clean ConflictError or
ValidationError, and an edit made from a stale read is refused (optimistic locking on ``specimen.version``)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.models import AuditLog, CustodyEvent, Specimen
from biobank.services.inputs import FormatRequest
from tests.conftest import DEATH
from tests.support.concurrency import Gang, Step, errors
from tests.support.factories import H, collect, make_case

WORKERS = 8
PARENT_MG = 60.0


@pytest.fixture(scope="module")
def gang() -> Iterator[Gang]:
    with Gang(WORKERS) as workers:
        yield workers


@pytest.fixture
def parents(engine, tech) -> list[str]:
    excised = DEATH + 3 * H
    with session_scope(engine) as session:
        make_case(session, tech)
        return collect(session, tech, formats=[
            FormatRequest("snap_frozen", PARENT_MG, "mg", count=4, stabilised_at=excised + timedelta(minutes=5)),
        ])


def _specimen(session: Session, code: str) -> Specimen:
    return session.exec(select(Specimen).where(Specimen.code == code)).one()


def test_eight_processes_aliquoting_and_correcting_the_same_specimens_lose_nothing(gang, engine, db_url, parents):
    rng = random.Random(8)
    plans = []
    for worker in range(WORKERS):
        plan = []
        for index in range(10):
            parent = rng.choice(parents)
            if rng.random() < 0.65:
                portions = [float(rng.choice([2, 3, 5, 8]))] * rng.choice([1, 2])
                plan.append(Step("aliquot", {"parent": parent, "portions": portions}))
            else:
                tag = f"w{worker}-s{index}"
                plan.append(Step("correct", {"code": parent, "reason": f"recount {tag}", "notes": tag,
                                             "pause": rng.uniform(0, 0.03)}))
        plans.append(plan)

    outcomes = gang.run(db_url, "tech", plans)

    assert errors(outcomes) == [], errors(outcomes)[0].detail
    statuses = Counter(o.status for o in outcomes)
    assert set(statuses) <= {"ok", "conflict", "invalid"}, statuses
    assert statuses["ok"] > 0 and statuses["invalid"] > 0  # the parents ran out: refusals happened, cleanly
    for outcome in outcomes:
        if outcome.status == "invalid":
            assert "remain" in outcome.detail or "nothing can be taken" in outcome.detail, outcome.detail
        if outcome.status == "conflict":
            assert outcome.op == "correct" and "changed by someone else" in outcome.detail, outcome.detail

    with Session(engine) as session:
        for code in parents:
            parent = _specimen(session, code)
            children = session.exec(select(Specimen).where(Specimen.parent_id == parent.id)).all()
            made = [c for o in outcomes if o.status == "ok" and o.op == "aliquot" and o.kwargs["parent"] == code
                    for c in o.detail.split(",")]
            assert sorted(c.code for c in children) == sorted(made)
            assert {c.code for c in children} == {f"{code}.{n}" for n in range(1, len(children) + 1)}
            used = sum(c.parent_quantity_used or 0 for c in children)
            assert parent.quantity_remaining >= 0
            assert parent.quantity_remaining == pytest.approx(PARENT_MG - used)
            assert (parent.status == "depleted") == (parent.quantity_remaining == 0)
            edits = [o for o in outcomes if o.status == "ok" and o.kwargs.get("parent", o.kwargs.get("code")) == code]
            assert parent.version == 1 + len(edits), "every successful edit moved the version on exactly once"
            corrections = [o for o in edits if o.op == "correct"]
            for correction in corrections:
                audit = session.exec(select(AuditLog).where(
                    AuditLog.reason == correction.kwargs["reason"], AuditLog.table_name == "specimen"
                )).all()
                assert [(a.row_id, a.action) for a in audit] == [(str(parent.id), "update")]
            custody = Counter(session.exec(select(CustodyEvent.kind).where(CustodyEvent.specimen_id == parent.id)).all())
            assert custody["corrected"] == len(corrections)
            assert custody["aliquoted"] == len(edits) - len(corrections)
            for child in children:
                assert session.exec(select(AuditLog.id).where(
                    AuditLog.table_name == "specimen", AuditLog.row_id == str(child.id), AuditLog.action == "insert"
                )).first() is not None, child.code
                kinds = session.exec(select(CustodyEvent.kind).where(CustodyEvent.specimen_id == child.id)).all()
                assert kinds == ["aliquoted"], child.code


def test_edits_from_the_same_stale_read_let_exactly_one_through(gang, engine, db_url, parents):
    target = parents[0]
    plans = [[Step("correct", {"code": target, "reason": f"stale w{w}", "notes": f"w{w}", "wait_for_all": True})]
             for w in range(WORKERS)]

    outcomes = gang.run(db_url, "tech", plans)

    assert errors(outcomes) == [], errors(outcomes)[0].detail
    assert Counter(o.status for o in outcomes) == {"ok": 1, "conflict": WORKERS - 1}
    winner = next(o for o in outcomes if o.status == "ok")
    for loser in (o for o in outcomes if o.status == "conflict"):
        assert "changed by someone else" in loser.detail and "reload and try again" in loser.detail
    with Session(engine) as session:
        specimen = _specimen(session, target)
        assert (specimen.version, specimen.notes) == (2, winner.kwargs["notes"])
        reasons = session.exec(select(AuditLog.reason).where(
            AuditLog.reason.like("stale w%"), AuditLog.table_name == "specimen"  # type: ignore[union-attr]
        )).all()
        assert reasons == [winner.kwargs["reason"]]


def test_every_specimen_edit_path_moves_the_version_on(engine, tech, parents):
    """Aliquot, derive, QC, correction and disposal all bump the version a stale correction is checked against."""
    from biobank.services import specimens, storage

    code = parents[0]
    steps = [
        lambda s: specimens.aliquot(s, actor=tech, parent_code=code, portions=[5]),
        lambda s: specimens.derive(s, actor=tech, parent_code=code, material_type="dna", quantity=100, unit="ng",
                                   parent_quantity_used=5),
        lambda s: specimens.record_qc(s, actor=tech, code=code, tumour_cellularity_pct=40),
        lambda s: specimens.correct_specimen(s, actor=tech, code=code, reason="typo", notes="fixed"),
        lambda s: storage.dispose(s, actor=tech, code=code, reason="thawed by accident"),
    ]
    for expected, step in enumerate(steps, start=2):
        with session_scope(engine) as session:
            step(session)
        with Session(engine) as session:
            assert _specimen(session, code).version == expected
