"""Two people placing different specimens into the same position at the same moment: one wins, one is told."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from biobank.db.engine import make_engine, session_scope
from biobank.domain.errors import BiobankError, ConflictError
from biobank.models import CustodyEvent, SpecimenLocation
from biobank.services import storage
from tests.support.factories import by_format, donor_with_region, lab


@pytest.fixture
def two_tubes(engine, tech):
    with session_scope(engine) as session:
        lab(session, tech)
        return by_format(donor_with_region(session, tech), "snap_frozen")


def _placed(engine) -> tuple[list[tuple[str | None, int]], int]:
    with Session(engine) as session:
        locations = [(loc.position, loc.specimen_id) for loc in session.exec(select(SpecimenLocation))]
        stored = session.exec(select(func.count()).select_from(CustodyEvent).where(CustodyEvent.kind == "stored")).one()
    return locations, int(stored)


def test_two_sessions_racing_for_one_position_one_wins_the_other_gets_a_clear_error(db_url, engine, tech, two_tubes):
    """Both start together on their own engines (separate connection pools, as two users would)."""
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def place(code: str) -> None:
        own = make_engine(db_url)
        try:
            barrier.wait(timeout=10)
            with session_scope(own) as session:
                storage.store(session, actor=tech, codes=[code], box_code="BOX1", at="A1")
            outcomes[code] = "stored"
        except BiobankError as exc:
            outcomes[code] = exc
        finally:
            own.dispose()

    threads = [threading.Thread(target=place, args=(code,)) for code in two_tubes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(str(type(o).__name__) for o in outcomes.values()) == ["ConflictError", "str"]
    loser = next(o for o in outcomes.values() if isinstance(o, ConflictError))
    assert "BOX1 position A1: already holds a specimen" in str(loser)
    locations, stored = _placed(engine)
    assert len(locations) == 1 and locations[0][0] == "A1"
    assert stored == 1  # the loser left no custody event behind: nothing half-placed


def test_a_placement_waiting_on_an_uncommitted_one_fails_cleanly_once_it_commits(db_url, engine, tech, two_tubes):
    """Deterministic interleaving: A has written A1 but not committed; B tries A1; A commits; B is refused."""
    first, second = two_tubes
    holder = Session(engine, expire_on_commit=False)
    storage.store(holder, actor=tech, codes=[first], box_code="BOX1", at="A1")
    holder.flush()
    outcome: dict[str, object] = {}

    def second_user() -> None:
        own = make_engine(db_url)
        try:
            with session_scope(own) as session:
                storage.store(session, actor=tech, codes=[second], box_code="BOX1", at="A1")
            outcome["result"] = "stored"
        except BiobankError as exc:
            outcome["result"] = exc
        finally:
            own.dispose()

    thread = threading.Thread(target=second_user)
    thread.start()
    time.sleep(0.5)
    assert "result" not in outcome  # B is waiting for A, not failing early nor succeeding
    holder.commit()
    holder.close()
    thread.join(timeout=30)
    assert isinstance(outcome["result"], ConflictError), outcome
    assert "position A1" in str(outcome["result"])
    locations, stored = _placed(engine)
    assert len(locations) == 1 and stored == 1
