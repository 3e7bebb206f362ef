"""Reservation on approval, amend (a new version that supersedes) and cancel (issue 18, item 4), on both databases.

One mechanism holds "promised" material for distribution orders and analysis plans: an approved plan reserves what
each sample needs, an order and another plan see the reduced availability, over-reservation is refused with nothing
written, cancelling or superseding releases, and two approvals racing for the same last nanograms are serialised.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from biobank.db.engine import make_engine, session_scope
from biobank.domain.errors import BiobankError, ConflictError, PermissionDeniedError, ValidationError
from biobank.models import Specimen, User
from biobank.models.core import AuditLog
from biobank.models.plans import AnalysisPlan, PlanDonor, PlanSpecimen
from biobank.services import distribution as orders
from biobank.services import plan_versions, planning, reservations
from biobank.services.plan_rules import InputRequirements
from tests.support.dbtools import assert_refused

GERMLINE = "RA0001-GB1-FZ1-BUF1-DNA1"
pytestmark = pytest.mark.demo(1)


def people(engine: Engine) -> dict[str, User]:
    with Session(engine, expire_on_commit=False) as session:
        return {u.username: u for u in session.exec(select(User)).all()}


def make_plan(engine: Engine, users: dict[str, User], code: str, *, dna_only: bool = False, **options: Any) -> None:
    """A WGS plan of RA-0001 at 60x filled with the suggestion; ``dna_only`` keeps only the DNA extracts."""
    params: dict[str, Any] = {"name": f"WGS {code}", "purpose": "phylogeny", "assay": "wgs",
                              "donor_codes": ["RA-0001"], "target_depth": 60.0}
    with session_scope(engine) as session:
        planning.create_plan(session, actor=users["pi"], code=code, **(params | options))
        if dna_only:
            rows = session.exec(
                select(PlanSpecimen, Specimen).join(Specimen, col(Specimen.id) == col(PlanSpecimen.specimen_id))
                .where(PlanSpecimen.plan_id == planning.get_plan(session, code).id)
            ).all()
            keep = [(s.code, ps.role, ps.reason) for ps, s in rows if s.unit == "ng"]
            planning.set_specimens(session, actor=users["pi"], plan_code=code, selection=keep)


def approve(engine: Engine, users: dict[str, User], code: str) -> None:
    with session_scope(engine) as session:
        planning.approve_plan(session, actor=users["pi"], plan_code=code)


def reserved(engine: Engine, code: str) -> dict[str, float | None]:
    with Session(engine) as session:
        return {r["specimen_code"]: r["reserved"] for r in reservations.reservations_of(session, code)["samples"]}


def remaining(engine: Engine, specimen_code: str) -> float:
    with Session(engine) as session:
        return session.exec(select(Specimen.quantity_remaining).where(Specimen.code == specimen_code)).one()


def set_remaining(engine: Engine, specimen_code: str, quantity: float) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE specimen SET quantity_remaining = :q WHERE code = :c"),
                           {"q": quantity, "c": specimen_code})


def order(engine: Engine, users: dict[str, User], items: list[tuple[str, float]], code: str = "DO-1") -> None:
    with session_scope(engine) as session:
        orders.create_order(session, actor=users["pi"], study="PHYLO-1", recipient="Dr Lee, Sequencing Core",
                            use="sequencing", code=code)
        for specimen, quantity in items:
            orders.add_item(session, actor=users["pi"], order_code=code, specimen_code=specimen, quantity=quantity)


NEED = InputRequirements().ng("wgs", 60.0)


def test_approval_reserves_each_samples_need_and_an_order_sees_it(engine):
    users = people(engine)
    make_plan(engine, users, "WGS-1")
    assert set(reserved(engine, "WGS-1").values()) == {None}, "a draft reserves nothing"
    approve(engine, users, "WGS-1")
    held = reserved(engine, "WGS-1")
    with Session(engine) as session:
        units = dict(session.exec(select(Specimen.code, Specimen.unit).where(col(Specimen.code).in_(held))).all())
    for code, quantity in held.items():
        if units[code] == "ng":
            assert quantity == InputRequirements.from_settings().ng("wgs", 60.0), code
        else:  # tissue goes to extraction: up to 25 mg, less when less is left
            assert quantity == min(remaining(engine, code), reservations.EXTRACTION_INPUT[units[code]]), code
    assert held[GERMLINE] == NEED

    # the order sees the plan's reservation: the whole germline extract is no longer free, the rest is
    whole = remaining(engine, GERMLINE)
    with pytest.raises(ValidationError, match=rf"only {whole - NEED:g} ng .* plan WGS-1 \({NEED:g} ng\)"):
        order(engine, users, [(GERMLINE, whole)])
    order(engine, users, [(GERMLINE, whole - NEED)], code="DO-2")
    with Session(engine) as session:
        assert reservations.promised(session, session.exec(
            select(Specimen.id).where(Specimen.code == GERMLINE)).one()) == whole


def test_over_reservation_is_refused_naming_who_holds_the_rest_and_nothing_is_written(engine):
    users = people(engine)
    set_remaining(engine, GERMLINE, 1500.0)
    make_plan(engine, users, "WGS-1", dna_only=True)
    make_plan(engine, users, "WGS-2", dna_only=True)
    order(engine, users, [(GERMLINE, 1000.0)])  # a draft order holds 1000 of the 1500 ng
    assert_refused(engine, ValidationError, rf"{GERMLINE} needs {NEED:g} ng \(wgs at 60x\) but only 500 ng .*"
                   r"order DO-1 \(1000 ng\)", lambda s: planning.approve_plan(s, actor=users["pi"], plan_code="WGS-1"))
    with session_scope(engine) as session:  # the order is cancelled: its claim goes
        orders.cancel(session, actor=users["pi"], order_code="DO-1")
    approve(engine, users, "WGS-1")
    # another plan sees what the first one reserved
    assert_refused(engine, ValidationError, r"only 500 ng .*plan WGS-1 \(1000 ng\)",
                   lambda s: planning.approve_plan(s, actor=users["pi"], plan_code="WGS-2"))
    with Session(engine) as session:
        assert session.exec(select(AnalysisPlan.status).where(AnalysisPlan.code == "WGS-2")).one() == "draft"


def test_cancel_releases_and_needs_the_right_role(engine):
    users = people(engine)
    make_plan(engine, users, "WGS-1")
    approve(engine, users, "WGS-1")
    assert_refused(engine, PermissionDeniedError, "technician",
                   lambda s: plan_versions.cancel_plan(s, actor=users["tech"], plan_code="WGS-1", reason="no funds"))
    assert_refused(engine, ValidationError, "Reason",
                   lambda s: plan_versions.cancel_plan(s, actor=users["pi"], plan_code="WGS-1", reason="  "))
    with session_scope(engine) as session:
        plan_versions.cancel_plan(session, actor=users["pi"], plan_code="wgs-1", reason="funding withdrawn")
    with Session(engine) as session:
        plan = planning.get_plan(session, "WGS-1")
        assert (plan.status, plan.closed_reason) == ("cancelled", "funding withdrawn") and plan.closed_at is not None
        data = reservations.reservations_of(session, "WGS-1")
        assert data["holding"] is False
        germline = next(r for r in data["samples"] if r["specimen_code"] == GERMLINE)
        assert germline["available"] == germline["remaining"], "a cancelled plan holds nothing"
    order(engine, users, [(GERMLINE, remaining(engine, GERMLINE))])  # the whole extract can be promised again
    assert_refused(engine, ConflictError, "is cancelled",
                   lambda s: plan_versions.cancel_plan(s, actor=users["pi"], plan_code="WGS-1", reason="again"))


def test_amend_copies_the_plan_and_its_approval_supersedes_and_releases(engine):
    users = people(engine)
    make_plan(engine, users, "WGS-1", primary_site_code=None, unknown_primary=True,
              primary_unsampled_reason="primary resected years before death", description="first cut")
    with session_scope(engine) as session:  # per-sample settings and the flow cell, written while a draft
        plan = planning.get_plan(session, "WGS-1")
        plan.flow_cell = "25B"
        session.add(plan)
        first = session.exec(select(PlanSpecimen).where(PlanSpecimen.plan_id == plan.id)
                             .order_by(col(PlanSpecimen.id))).first()
        assert first is not None
        first.assay, first.target_depth, first.library = "wgs", 30.0, "TruSeq PCR-free"
        session.add(first)
    approve(engine, users, "WGS-1")
    with session_scope(engine) as session:
        new = plan_versions.amend_plan(session, actor=users["pi"], plan_code="WGS-1", reason="swap region L07-B")
        assert (new.code, new.name, new.version) == ("WGS-1-v2", "WGS WGS-1 (v2)", 2)
    with Session(engine) as session:
        old, new = planning.get_plan(session, "WGS-1"), planning.get_plan(session, "WGS-1-v2")
        assert new.status == "draft" and new.supersedes_id == old.id and old.status == "approved"
        for field in ("purpose", "assay", "target_depth", "primary_site_code", "unknown_primary", "description",
                      "primary_unsampled_reason", "flow_cell"):
            assert getattr(new, field) == getattr(old, field), field

        def samples(plan: AnalysisPlan) -> list[tuple]:
            return sorted((r.specimen_id, r.donor_id, r.role, r.reason, r.assay, r.target_depth, r.library)
                          for r in session.exec(select(PlanSpecimen).where(PlanSpecimen.plan_id == plan.id,
                                                                           col(PlanSpecimen.included).is_(True))))

        assert samples(new) == samples(old) and ("wgs", 30.0, "TruSeq PCR-free") in [s[4:] for s in samples(new)]
        assert [d.donor_id for d in session.exec(select(PlanDonor).where(PlanDonor.plan_id == new.id))] == \
            [d.donor_id for d in session.exec(select(PlanDonor).where(PlanDonor.plan_id == old.id))]
        assert all(r.quantity_reserved is None for r in session.exec(
            select(PlanSpecimen).where(PlanSpecimen.plan_id == new.id))), "the draft reserves nothing yet"
    # only one open amendment; a draft is edited, not amended
    assert_refused(engine, ConflictError, "already has an open amendment, WGS-1-v2",
                   lambda s: plan_versions.amend_plan(s, actor=users["pi"], plan_code="WGS-1", reason="again"))
    assert_refused(engine, ConflictError, "WGS-1-v2 is draft; it cannot be amended",
                   lambda s: plan_versions.amend_plan(s, actor=users["pi"], plan_code="WGS-1-v2", reason="x"))
    assert_refused(engine, ConflictError, "open amendment, WGS-1-v2; cancel the amendment first",
                   lambda s: plan_versions.cancel_plan(s, actor=users["pi"], plan_code="WGS-1", reason="x"))

    # the old plan holds all the tissue it reserved; the amendment's approval ignores what it releases
    approve(engine, users, "WGS-1-v2")
    with Session(engine) as session:
        old, new = planning.get_plan(session, "WGS-1"), planning.get_plan(session, "WGS-1-v2")
        assert old.status == "superseded" and old.closed_at is not None and "WGS-1-v2" in (old.closed_reason or "")
        assert new.status == "approved"
        assert reservations.reservations_of(session, "WGS-1")["holding"] is False
        germline_id = session.exec(select(Specimen.id).where(Specimen.code == GERMLINE)).one()
        assert [(h.kind, h.code) for h in reservations.holders(session, germline_id)] == [("plan", "WGS-1-v2")]
        history = plan_versions.plan_versions(session, new)
        assert [(h["code"], h["status"], h["supersedes"]) for h in history] == [
            ("WGS-1", "superseded", None), ("WGS-1-v2", "approved", "WGS-1")]
        # both in the audit log: the new plan inserted with the reason, the old one's status change
        audited = session.exec(select(AuditLog).where(AuditLog.table_name == "analysis_plan")).all()
        inserted = {a.row_id for a in audited if a.action == "insert"}
        assert {str(old.id), str(new.id)} <= inserted
        assert any(a.row_id == str(new.id) and a.reason == "swap region L07-B" for a in audited)
        assert any(a.row_id == str(old.id) and a.action == "update" and "superseded" in str(a.changes)
                   for a in audited)
    assert_refused(engine, ConflictError, "superseded; it cannot be amended",
                   lambda s: plan_versions.amend_plan(s, actor=users["pi"], plan_code="WGS-1", reason="x"))


def test_a_cancelled_amendment_lets_the_plan_be_amended_again(engine):
    users = people(engine)
    make_plan(engine, users, "WGS-1")
    approve(engine, users, "WGS-1")
    with session_scope(engine) as session:
        plan_versions.amend_plan(session, actor=users["pi"], plan_code="WGS-1", reason="try")
    with session_scope(engine) as session:
        cancelled = plan_versions.cancel_plan(session, actor=users["pi"], plan_code="WGS-1-v2", reason="not needed")
        assert cancelled.supersedes_id is None and "amendment of WGS-1 cancelled" in (cancelled.closed_reason or "")
    with session_scope(engine) as session:
        again = plan_versions.amend_plan(session, actor=users["pi"], plan_code="WGS-1", reason="second try")
        assert (again.code, again.version) == ("WGS-1-v2b", 2)
    with Session(engine) as session:
        assert planning.get_plan(session, "WGS-1").status == "approved", "the plan itself is untouched"


def test_two_concurrent_approvals_of_the_same_last_material_one_wins(engine, db_url):
    users = people(engine)
    set_remaining(engine, GERMLINE, 1500.0)  # room for one plan's 1000 ng, not two
    make_plan(engine, users, "WGS-A", dna_only=True)
    make_plan(engine, users, "WGS-B", dna_only=True)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def run(code: str) -> None:
        own = make_engine(db_url)  # an engine and connection of its own, as two users would have
        try:
            barrier.wait(timeout=30)
            with session_scope(own) as session:
                planning.approve_plan(session, actor=users["pi"], plan_code=code)
            outcomes[code] = "approved"
        except BiobankError as exc:
            outcomes[code] = str(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=run, args=(code,)) for code in ("WGS-A", "WGS-B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcomes) == ["WGS-A", "WGS-B"]
    winners = [c for c, o in outcomes.items() if o == "approved"]
    assert len(winners) == 1, outcomes
    (loser,) = set(outcomes) - set(winners)
    assert f"{GERMLINE} needs {NEED:g} ng" in outcomes[loser] and f"plan {winners[0]} ({NEED:g} ng)" in outcomes[loser]
    with Session(engine) as session:
        statuses = dict(session.exec(select(AnalysisPlan.code, AnalysisPlan.status)).all())
        assert (statuses[winners[0]], statuses[loser]) == ("approved", "draft")
        germline_id = session.exec(select(Specimen.id).where(Specimen.code == GERMLINE)).one()
        assert reservations.promised(session, germline_id) == NEED
