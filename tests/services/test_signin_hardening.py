"""Sign-in hardening: delays that grow per account and per client, lockout and an administrator's unlock, every
failure and lockout in the audit log, and no way to tell an unknown name from a known one (message, throttle,
lockout or time).

The throttle's clock and sleeper are injected (:class:`SigninGuard`), so the delays are checked without waiting;
the timing test uses the real hasher and waits for real.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.domain.errors import PermissionDeniedError
from biobank.models import AuditLog, User
from biobank.services import auth, users
from biobank.services.users import AccountLocked, SigninFailed, SigninGuard

GOOD = "granite harbour lantern"
START = datetime(2026, 12, 7, 13, 50, tzinfo=UTC)  # 13:50 in London: the lockout ends at 14:05


class FakeTime:
    """A clock that only moves when the guard sleeps (or a test says so), and remembers every wait."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)

    def guard(self) -> SigninGuard:
        return SigninGuard(clock=self.clock, sleep=self.sleep)


@pytest.fixture
def people(engine, admin):
    with session_scope(engine) as session:
        for name in ("bob", "carol", "dave"):
            users.add_user(session, actor=admin, username=name, role="technician", password=GOOD)
        users.add_user(session, actor=admin, username="gone", role="technician", password=GOOD)
        users.set_active(session, actor=admin, username="gone", active=False)
        users.add_user(session, actor=admin, username="sequencer", role="technician", service=True)


@pytest.fixture
def settings_env(monkeypatch):
    """Set sign-in settings for one test (BIOBANK_SIGNIN_...)."""

    def apply(**values: object) -> None:
        for key, value in values.items():
            monkeypatch.setenv(f"BIOBANK_SIGNIN_{key.upper()}", str(value))
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()


def attempt(engine, guard, username: str, password: str, client: str | None = None) -> User | PermissionDeniedError:
    """One sign-in in its own unit of work, as the dashboard makes it: the user, or the error it was refused with."""
    try:
        with session_scope(engine) as session:
            return users.authenticate(session, username=username, password=password, client=client, guard=guard)
    except PermissionDeniedError as exc:
        return exc


def account(engine, username: str) -> User:
    with Session(engine) as session:
        return auth.get_user(session, username)


def signin_rows(engine) -> list[AuditLog]:
    with Session(engine) as session:
        return list(session.exec(select(AuditLog).where(AuditLog.table_name == "user_account",
                                                        AuditLog.reason.like("sign-in%"))  # type: ignore[union-attr]
                                 .order_by(AuditLog.id)))


def test_the_delay_doubles_from_half_a_second_and_is_capped():
    assert [users.signin_delay(n, cap=8.0) for n in range(8)] == [0, 0.5, 1, 2, 4, 8, 8, 8]
    assert users.signin_delay(1000, cap=8.0) == 8.0
    assert users.signin_delay(3, cap=0) == 0


# ------------------------------------------------------------------------------------------------ throttle


def test_the_delay_grows_with_each_failure_of_an_account_and_a_success_clears_it(engine, people):
    fake = FakeTime()
    guard = fake.guard()
    for _ in range(4):
        assert isinstance(attempt(engine, guard, "bob", "wrong password 1"), SigninFailed)
    assert fake.slept == [0.5, 1, 2]  # the first attempt waits for nothing
    assert account(engine, "bob").failed_signins == 4
    assert isinstance(attempt(engine, guard, "bob", GOOD), User)
    assert fake.slept[-1] == 4  # the right password waits too: the wait comes before the check
    assert account(engine, "bob").failed_signins == 0
    attempt(engine, guard, "bob", "wrong password 2")
    assert fake.slept[-1] == 4 and len(fake.slept) == 4  # no wait: the count started again


def test_the_delay_is_capped(engine, people, settings_env):
    settings_env(lockout_after=50, delay_max_seconds=3)
    fake = FakeTime()
    for _ in range(8):
        attempt(engine, fake.guard(), "bob", "wrong password 1")
    assert fake.slept == [0.5, 1, 2, 3, 3, 3, 3]


def test_the_delay_grows_per_client_across_accounts_and_names(engine, people):
    fake = FakeTime()
    guard = fake.guard()
    for name in ("bob", "carol", "nobody", "dave"):  # one failure each: only the client's count grows
        attempt(engine, guard, name, "wrong password 1", client="203.0.113.7")
    assert fake.slept == [0.5, 1, 2]
    attempt(engine, guard, "admin", "wrong password 1", client="198.51.100.2")  # another client: no wait
    assert len(fake.slept) == 3
    attempt(engine, guard, "bob", "wrong password 2", client="198.51.100.2")  # bob's own count: one failure
    assert fake.slept[-1] == 0.5
    fake.now += timedelta(minutes=get_settings().signin_lockout_minutes)  # the client is forgotten after a while
    attempt(engine, guard, "nobody-else", "wrong password 1", client="203.0.113.7")
    assert len(fake.slept) == 4


def test_the_per_client_memory_is_bounded():
    guard = SigninGuard(capacity=3)
    for n in range(10):
        guard.client_failed(("db", f"10.0.0.{n}"), START, timedelta(minutes=15))
    assert len(guard.clients) == 3
    assert guard.client_failures(("db", "10.0.0.9"), START, timedelta(minutes=15)) == 1
    assert guard.client_failures(("db", "10.0.0.0"), START, timedelta(minutes=15)) == 0


# ------------------------------------------------------------------------------------------------- lockout


def test_the_fifth_failure_locks_the_account_until_the_lockout_passes(engine, people):
    fake = FakeTime()
    guard = fake.guard()
    results = [attempt(engine, guard, "bob", f"wrong password {n}") for n in range(5)]
    assert all(isinstance(r, SigninFailed) for r in results[:4])
    locked = results[4]
    assert isinstance(locked, AccountLocked)
    assert str(locked) == ("Too many failed sign-ins: this account is locked until 14:05, "
                           "or until an administrator unlocks it")
    bob = account(engine, "bob")
    assert bob.locked_until == locked.until == fake.now + timedelta(minutes=15)
    waited = len(fake.slept)
    refused = attempt(engine, guard, "bob", GOOD)  # the right password is refused too, without a check or a wait
    assert isinstance(refused, AccountLocked) and len(fake.slept) == waited
    fake.now = bob.locked_until + timedelta(seconds=1)
    signed_in = attempt(engine, guard, "bob", GOOD)
    assert isinstance(signed_in, User)
    assert len(fake.slept) == waited  # the count started again when the lockout passed
    bob = account(engine, "bob")
    assert bob.failed_signins == 0 and bob.locked_until is None


def test_after_a_lockout_passes_another_five_failures_lock_again(engine, people):
    fake = FakeTime()
    guard = fake.guard()
    for n in range(5):
        attempt(engine, guard, "bob", f"wrong password {n}")
    fake.now += timedelta(minutes=16)
    results = [attempt(engine, guard, "bob", f"wrong password {n}") for n in range(5)]
    assert [type(r) for r in results] == [SigninFailed] * 4 + [AccountLocked]
    assert account(engine, "bob").failed_signins == 5


def test_the_lockout_threshold_and_length_are_settings(engine, people, settings_env):
    settings_env(lockout_after=2, lockout_minutes=60)
    fake = FakeTime()
    guard = fake.guard()
    assert isinstance(attempt(engine, guard, "bob", "wrong password 1"), SigninFailed)
    locked = attempt(engine, guard, "bob", "wrong password 2")
    assert isinstance(locked, AccountLocked) and locked.until == fake.now + timedelta(minutes=60)
    assert "locked until 14:50" in str(locked)


def test_a_lockout_into_the_next_day_names_the_day(engine, people):
    fake = FakeTime(datetime(2026, 12, 7, 23, 55, tzinfo=UTC))
    results = [attempt(engine, fake.guard(), "bob", f"wrong password {n}") for n in range(5)]
    assert "locked until 08 Dec 2026 00:10," in str(results[-1])


def test_an_admin_unlocks_a_locked_account_and_it_is_audited(engine, people, admin, viewer):
    fake = FakeTime()
    guard = fake.guard()
    for n in range(5):
        attempt(engine, guard, "bob", f"wrong password {n}")
    with pytest.raises(PermissionDeniedError, match="manage_users"), session_scope(engine) as session:
        users.unlock_user(session, actor=viewer, username="bob")
    with session_scope(engine) as session:
        users.unlock_user(session, actor=admin, username="bob", reason="phoned the lab manager")
    bob = account(engine, "bob")
    assert bob.failed_signins == 0 and bob.locked_until is None
    assert isinstance(attempt(engine, guard, "bob", GOOD), User)
    with Session(engine) as session:
        row = session.exec(select(AuditLog).where(AuditLog.reason == "phoned the lab manager")).one()
    assert row.user_id == admin.id and row.row_id == str(bob.id)
    assert row.changes["failed_signins"] == [5, 0] and row.changes["locked_until"][1] is None


# ------------------------------------------------------------------------------------------------ the audit


def test_every_failure_and_the_lockout_are_in_the_audit_log(engine, people):
    fake = FakeTime()
    guard = fake.guard()
    for n in range(5):
        attempt(engine, guard, "bob", f"wrong password {n}", client="203.0.113.7")
    attempt(engine, guard, "bob", GOOD, client="203.0.113.7")  # refused while locked: recorded too
    attempt(engine, guard, "Mallory ", "anything at all", client="198.51.100.2")
    rows = signin_rows(engine)
    bob = account(engine, "bob")
    on_bob = [r for r in rows if r.row_id == str(bob.id)]
    assert [r.changes["failed_signins"] for r in on_bob] == [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 6]]
    assert all(r.user_id is None and r.action == "update" for r in rows)  # nobody was signed in
    assert [r.reason for r in on_bob[:4]] == ["sign-in failed from 203.0.113.7"] * 4
    lockout = on_bob[4]
    assert re.fullmatch(r"sign-in failed from 203\.0\.113\.7; locked until \S+ after 5 failed sign-ins", lockout.reason)
    assert lockout.changes["locked_until"][0] is None and lockout.changes["locked_until"][1] is not None
    assert on_bob[5].reason.startswith("sign-in refused from 203.0.113.7: locked until")
    unknown = [r for r in rows if r.row_id == ""]
    assert len(unknown) == 1
    assert unknown[0].changes == {"username": [None, "mallory"]}
    assert unknown[0].reason == "sign-in failed from 198.51.100.2; no account has this name"


def test_a_failure_is_recorded_although_the_callers_unit_of_work_rolls_back(engine, people):
    with pytest.raises(SigninFailed), session_scope(engine) as session:
        users.authenticate(session, username="bob", password="wrong password 1", guard=FakeTime().guard())
    assert account(engine, "bob").failed_signins == 1
    assert len(signin_rows(engine)) == 1


def test_a_success_clears_the_count_in_the_audit_too(engine, people):
    fake = FakeTime()
    guard = fake.guard()
    for n in range(3):
        attempt(engine, guard, "bob", f"wrong password {n}")
    attempt(engine, guard, "bob", GOOD)
    bob = account(engine, "bob")
    with Session(engine) as session:
        last = session.exec(select(AuditLog).where(AuditLog.row_id == str(bob.id)).order_by(AuditLog.id.desc())).first()
    assert last is not None and last.user_id == bob.id and last.changes["failed_signins"] == [3, 0]


# ------------------------------------------------------------------------------------------ no oracle


def _outcome(result: object) -> tuple[str, str]:
    return type(result).__name__, str(result)


def test_an_unknown_name_is_refused_throttled_and_locked_exactly_like_an_account(engine, people):
    known, unknown = FakeTime(), FakeTime()
    guard_known, guard_unknown = known.guard(), unknown.guard()
    a = [_outcome(attempt(engine, guard_known, "bob", f"wrong password {n}")) for n in range(7)]
    b = [_outcome(attempt(engine, guard_unknown, "nobody", f"wrong password {n}")) for n in range(7)]
    assert a == b
    assert a[0] == ("SigninFailed", users.FAILED) and a[4][0] == "AccountLocked"
    assert known.slept == unknown.slept == [0.5, 1, 2, 4]


@pytest.mark.parametrize("name", ["gone", "sequencer", "legacy"])
def test_disabled_service_and_passwordless_accounts_fail_like_a_wrong_password(engine, people, name):
    with session_scope(engine) as session:  # an account from before every account needed a password
        session.add(User(username="legacy", role="viewer"))
    fake = FakeTime()
    for password in (GOOD, "", "another wrong one"):
        result = attempt(engine, fake.guard(), name, password)
        assert _outcome(result) == ("SigninFailed", users.FAILED)


def _timed(engine, guard, username: str, password: str, tries: int) -> list[float]:
    spent = []
    for _ in range(tries):
        started = time.perf_counter()
        attempt(engine, guard, username, password)
        spent.append(time.perf_counter() - started)
    return spent


def test_an_unknown_name_costs_the_same_time_as_a_known_one_with_a_wrong_password(engine, people, settings_env):
    """The real argon2 hasher; the lockout and the wait are out of the way, so only the check itself is timed."""
    settings_env(lockout_after=100, delay_max_seconds=0)
    guard = SigninGuard()
    cases = {"unknown": ("nobody-here", GOOD), "known": ("bob", "wrong password 1"), "disabled": ("gone", GOOD),
             "service": ("sequencer", GOOD)}
    for username, password in cases.values():  # warm up: the dummy hash, connections, statement caches
        _timed(engine, guard, username, password, 2)
    spent: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(20):  # interleaved, so a slow moment of the machine falls on every case alike
        for case, (username, password) in cases.items():
            spent[case] += _timed(engine, guard, username, password, 1)
    mean = {case: sum(times) / len(times) for case, times in spent.items()}
    assert mean["known"] > 0.005, mean  # the hasher really ran
    for case in ("unknown", "disabled", "service"):
        assert abs(mean[case] - mean["known"]) <= 0.10 * mean["known"], mean


@pytest.mark.parametrize("typed", ["bo\x00b", "x" * 500, "Robert'); DROP TABLE user_account;--", "\u202ebob", ""])
def test_any_typed_name_or_client_is_refused_in_the_same_words_and_audited_cleanly(engine, people, typed):
    result = attempt(engine, FakeTime().guard(), typed, "wrong password 1", client="203.0.113.7\x00\n<script>")
    assert _outcome(result) == ("SigninFailed", users.FAILED)
    [row] = [r for r in signin_rows(engine) if r.row_id == ""]
    shown = row.changes["username"][1]
    assert shown.isprintable() and len(shown) <= users.IDENTIFIER_MAX
    assert shown != "bob"  # a hidden character does not make the name look like bob's
    assert row.reason.startswith("sign-in failed from 203.0.113.7\ufffd\ufffd<script>;")
    assert account(engine, "bob").failed_signins == 0
