"""Sign-in: passwords checked with argon2, idle expiry, sign-out, disabled accounts, demo accounts in demo mode; a
server-side session whose cookie signs the browser back in after a reload."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from datetime import UTC, datetime, timedelta
from http.cookies import Morsel, SimpleCookie

import pytest
from sqlmodel import Session, select
from starlette.applications import Starlette
from streamlit.testing.v1 import AppTest

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.models import AuditLog, UserSession
from biobank.services import auth, sessions, users
from dashboards.shell import login
from dashboards.shell import session as shell
from tests.support.apptest import assert_no_exception, make_app


@pytest.fixture
def accounts(engine):
    with session_scope(engine) as session:
        admin = users.add_user(session, actor=None, username="root", role="admin", password="granite-harbour-7")
        users.add_user(session, actor=admin, username="tina", role="technician", password="quartz-lantern-41")
        users.add_user(session, actor=admin, username="paul", role="pi", password="cohort-lead-2026")


def sign_in(at, username: str, password: str):
    at.text_input(key="login_username").set_value(username)
    at.text_input(key="login_password").set_value(password)
    return at.button(key="login_submit").click().run()


def test_only_the_sign_in_page_shows_before_signing_in(db_url, accounts):
    at = make_app(db_url).run()
    assert_no_exception(at)
    assert at.title[0].value.endswith("Rapid-autopsy biobank")
    assert at.text_input(key="login_password") is not None
    assert "username" not in at.session_state


def test_right_password_signs_in_and_shows_the_role_pages(db_url, accounts):
    at = sign_in(make_app(db_url).run(), "tina", "quartz-lantern-41")
    assert_no_exception(at)
    assert at.session_state["username"] == "tina"
    assert any("Technician" in c.value for c in at.sidebar.caption)


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(db_url, accounts):
    at = sign_in(make_app(db_url).run(), "tina", "not-her-password")
    assert_no_exception(at)
    assert "username" not in at.session_state
    assert "sign-in failed" in at.error[0].value


LOCKED = re.compile(r"Too many failed sign-ins: this account is locked until (\d\d \w{3} \d{4} )?(\d\d:\d\d), "
                    r"or until an administrator unlocks it")


@pytest.fixture
def no_wait(monkeypatch):
    """No delay before checking a password after failures (the delays are tested in the services)."""
    monkeypatch.setenv("BIOBANK_SIGNIN_DELAY_MAX_SECONDS", "0")  # make_app clears the settings cache


def test_the_fifth_failed_sign_in_locks_the_account_and_says_until_when_in_plain_words(
    db_url, engine, accounts, no_wait
):
    at = make_app(db_url).run()
    for n in range(4):
        at = sign_in(at, "tina", f"wrong password {n}")
        assert [e.value for e in at.error] == [users.FAILED]
    at = sign_in(at, "tina", "still the wrong one")
    assert_no_exception(at)
    [message] = [e.value for e in at.error]
    match = LOCKED.fullmatch(message)
    assert match, message
    with Session(engine) as session:
        until = auth.get_user(session, "tina").locked_until
    assert until is not None and match.group(2) == until.astimezone(get_settings().zone).strftime("%H:%M")
    assert "password" not in message and "name" not in message  # never which part was wrong
    at = sign_in(at, "tina", "quartz-lantern-41")  # the right password now: still locked out
    assert "username" not in at.session_state
    assert LOCKED.fullmatch(at.error[0].value)


def test_an_administrators_unlock_lets_the_account_sign_in_again(db_url, engine, accounts, no_wait):
    at = make_app(db_url).run()
    for n in range(5):
        at = sign_in(at, "tina", f"wrong password {n}")
    with session_scope(engine) as session:
        users.unlock_user(session, actor=auth.get_user(session, "root"), username="tina")
    at = sign_in(at, "tina", "quartz-lantern-41")
    assert_no_exception(at)
    assert at.session_state["username"] == "tina"


def test_a_name_that_is_no_account_gets_the_same_answers_as_a_real_one(db_url, accounts, no_wait):
    def answers(name: str) -> list[str]:
        at = make_app(db_url).run()
        seen = []
        for n in range(6):
            at = sign_in(at, name, f"wrong password {n}")
            seen.extend(re.sub(r"\d", "#", e.value) for e in at.error)
        return seen

    real, made_up = answers("tina"), answers("tiny")
    assert real == made_up
    assert real[:4] == [users.FAILED] * 4 and real[4].startswith("Too many failed sign-ins")


def test_the_sign_in_page_passes_the_browsers_address_to_the_throttle(db_url, engine, accounts, no_wait, monkeypatch):
    monkeypatch.setattr(login, "client_address", lambda: "203.0.113.9")
    sign_in(make_app(db_url).run(), "tina", "wrong password 1")
    with Session(engine) as session:
        reasons = session.exec(select(AuditLog.reason).where(AuditLog.table_name == "user_account")).all()
    assert "sign-in failed from 203.0.113.9" in reasons


def test_an_idle_session_is_signed_out_with_a_message(db_url, accounts):
    at = make_app(db_url)
    at.session_state["username"] = "paul"
    at.session_state["last_activity"] = time.time() - (get_settings().session_idle_minutes + 1) * 60
    at.run()
    assert_no_exception(at)
    assert "username" not in at.session_state
    assert any("without activity" in w.value for w in at.warning)


def test_sign_out_returns_to_the_sign_in_page(db_url, accounts):
    at = make_app(db_url)
    at.session_state["username"] = "paul"
    at.run()
    at.sidebar.button(key="sign_out").click().run()
    assert_no_exception(at)
    assert "username" not in at.session_state
    assert at.text_input(key="login_password") is not None


def test_a_disabled_account_is_signed_out_at_the_next_click(db_url, engine, accounts):
    at = make_app(db_url)
    at.session_state["username"] = "tina"
    at.run()
    with session_scope(engine) as session:
        root = auth.get_user(session, "root")
        users.set_active(session, actor=root, username="tina", active=False)
    at.run()
    assert_no_exception(at)
    assert "username" not in at.session_state
    assert any("disabled" in w.value for w in at.warning)


def test_demo_mode_lists_the_demo_accounts_and_normal_mode_does_not(db_url, accounts, monkeypatch):
    at = make_app(db_url).run()
    assert not at.dataframe
    monkeypatch.setenv("BIOBANK_DEMO_MODE", "true")
    at = make_app(db_url).run()
    assert_no_exception(at)
    shown = at.dataframe[0].value
    assert set(shown["user name"]) == {"admin", "tech", "coord", "pi", "viewer"}


def test_a_fresh_database_says_how_to_create_the_first_account(db_url):
    at = make_app(db_url).run()
    assert any("biobank users add" in i.value for i in at.info)


# ------------------------------------------------------------------ server-side sessions and the session cookie
#
# AppTest has no browser: it cannot run the page script that fetches the cookie, nor send cookies. So the tests
# take the one-time code from the page's cookie script, trade it at the cookie route (called as the ASGI app
# `biobank serve` mounts) for the Set-Cookie header, and give the cookie to a fresh AppTest through the shell's
# cookie reader. A real browser covers the script and the headers end to end.


def cookie_scripts(at) -> list[str]:
    return [element.body for element in at.html if shell.COOKIE_ROUTE in element.body]


def handoff_code(at) -> str:
    [script] = cookie_scripts(at)
    assert "'POST'" in script
    match = re.search(r'code\\?"\s*:\s*\\?"([A-Za-z0-9_-]{20,})', script)
    assert match, script
    return match.group(1)


def call_cookie_route(method: str, payload: object = None, **headers: str) -> tuple[int, list[str]]:
    """The cookie route as the server runs it (an ASGI request); returns the status and the Set-Cookie headers."""
    app = Starlette(routes=shell.cookie_routes())
    body = b"" if payload is None else json.dumps(payload).encode()
    request_headers = {"host": "testserver", "content-type": "application/json", **headers}
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": shell.COOKIE_ROUTE, "raw_path": shell.COOKIE_ROUTE.encode(), "root_path": "", "query_string": b"",
        "headers": [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in request_headers.items()],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    return start["status"], [v.decode() for k, v in start["headers"] if k.decode().lower() == "set-cookie"]


def session_cookie(set_cookie: list[str]) -> Morsel:
    [header] = set_cookie
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    return jar[shell.COOKIE_NAME]


def sign_in_with_cookie(db_url: str, username: str, password: str) -> tuple[AppTest, str]:
    """Sign in through the form, then fetch the cookie as the page's script does; returns the app and the token."""
    at = sign_in(make_app(db_url).run(), username, password)
    assert at.session_state["username"] == username
    status, set_cookie = call_cookie_route("POST", {"code": handoff_code(at)}, sec_fetch_site="same-origin")
    assert status == 204
    return at, session_cookie(set_cookie).value


def reload_with(monkeypatch, db_url: str, token: str | None) -> AppTest:
    """A browser reload: a fresh Streamlit session whose websocket handshake carried the cookie ``token``."""
    monkeypatch.setattr(shell, "read_session_cookie", lambda: token)
    return make_app(db_url).run()


def stored_sessions(engine) -> list[UserSession]:
    with Session(engine) as session:
        return list(session.exec(select(UserSession).order_by(UserSession.id)))


def test_a_sign_in_hands_the_browser_an_http_only_strict_cookie_holding_a_token_stored_only_as_its_hash(
    db_url, engine, accounts
):
    at = sign_in(make_app(db_url).run(), "tina", "quartz-lantern-41")
    code = handoff_code(at)
    status, set_cookie = call_cookie_route("POST", {"code": code}, sec_fetch_site="same-origin")
    assert status == 204
    cookie = session_cookie(set_cookie)
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP here; see the test behind a TLS proxy
    assert not cookie["max-age"] and not cookie["expires"]  # a browser-session cookie: the server decides expiry
    token = cookie.value
    assert token not in "".join(cookie_scripts(at))  # the page's script only ever had the one-time code
    [row] = stored_sessions(engine)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    assert call_cookie_route("POST", {"code": code}, sec_fetch_site="same-origin")[0] == 404  # one time only


def test_the_cookie_resumes_the_sign_in_after_a_reload(db_url, accounts, monkeypatch):
    _, token = sign_in_with_cookie(db_url, "tina", "quartz-lantern-41")
    at = reload_with(monkeypatch, db_url, token)
    assert_no_exception(at)
    assert at.session_state["username"] == "tina"
    assert any("Technician" in c.value for c in at.sidebar.caption)
    assert not at.text_input  # no sign-in form
    assert not cookie_scripts(at)  # the cookie is already there: nothing to hand over again


def test_signing_out_ends_the_server_session_and_has_the_browser_drop_the_cookie(db_url, engine, accounts, monkeypatch):
    at, token = sign_in_with_cookie(db_url, "tina", "quartz-lantern-41")
    at.sidebar.button(key="sign_out").click().run()
    assert_no_exception(at)
    assert "username" not in at.session_state
    [script] = cookie_scripts(at)
    assert "'DELETE'" in script
    status, set_cookie = call_cookie_route("DELETE", sec_fetch_site="same-origin")
    dropped = session_cookie(set_cookie)
    assert status == 204 and dropped.value == "" and dropped["max-age"] == "0" and dropped["path"] == "/"
    [row] = stored_sessions(engine)
    assert row.revoked_at is not None
    at = reload_with(monkeypatch, db_url, token)  # a cookie kept anyway (say, the script never ran) is dead
    assert_no_exception(at)
    assert "username" not in at.session_state
    assert at.text_input(key="login_password") is not None


def test_signing_out_in_one_tab_signs_out_the_others_at_their_next_click(db_url, accounts, monkeypatch):
    first, token = sign_in_with_cookie(db_url, "tina", "quartz-lantern-41")
    second = reload_with(monkeypatch, db_url, token)  # another tab of the same browser
    assert second.session_state["username"] == "tina"
    first.sidebar.button(key="sign_out").click().run()
    second.run()
    assert_no_exception(second)
    assert "username" not in second.session_state
    assert any("session has ended" in w.value for w in second.warning)


def test_a_cookie_whose_session_went_idle_shows_the_sign_in_page_and_is_dropped(db_url, engine, accounts, monkeypatch):
    idle = get_settings().session_idle_minutes
    with session_scope(engine) as session:
        tina = auth.get_user(session, "tina")
        token = sessions.start_session(session, user=tina, now=datetime.now(UTC) - timedelta(minutes=idle + 1))
    at = reload_with(monkeypatch, db_url, token)
    assert_no_exception(at)
    assert "username" not in at.session_state
    assert at.text_input(key="login_password") is not None
    assert any("session has ended" in w.value for w in at.warning)
    [script] = cookie_scripts(at)
    assert "'DELETE'" in script


def test_an_unknown_cookie_shows_the_sign_in_page(db_url, accounts, monkeypatch):
    at = reload_with(monkeypatch, db_url, "a-token-nobody-issued")
    assert_no_exception(at)
    assert "username" not in at.session_state
    assert at.text_input(key="login_password") is not None


def test_disabling_an_account_ends_its_open_tabs_and_its_cookie(db_url, engine, accounts, monkeypatch):
    at, token = sign_in_with_cookie(db_url, "tina", "quartz-lantern-41")
    with session_scope(engine) as session:
        users.set_active(session, actor=auth.get_user(session, "root"), username="tina", active=False)
    at.run()
    assert_no_exception(at)
    assert "username" not in at.session_state
    assert any("disabled" in w.value for w in at.warning)
    at = reload_with(monkeypatch, db_url, token)
    assert "username" not in at.session_state


def test_the_cookie_route_refuses_other_sites_and_unknown_or_malformed_codes():
    code = shell.HANDOFFS.put("some-token")
    assert call_cookie_route("POST", {"code": code}, sec_fetch_site="cross-site") == (403, [])
    assert call_cookie_route("DELETE", sec_fetch_site="same-site") == (403, [])
    assert call_cookie_route("POST", {"code": "made-up"}, sec_fetch_site="same-origin") == (404, [])
    assert call_cookie_route("POST", ["not", "an", "object"], sec_fetch_site="same-origin") == (400, [])
    assert call_cookie_route("POST", {"code": 12}, sec_fetch_site="same-origin") == (404, [])
    assert call_cookie_route("GET", sec_fetch_site="same-origin")[0] == 405
    status, set_cookie = call_cookie_route("POST", {"code": code}, sec_fetch_site="same-origin")
    assert status == 204 and session_cookie(set_cookie).value == "some-token"  # the refusals did not use it up


def test_behind_a_tls_proxy_the_cookie_is_secure():
    code = shell.HANDOFFS.put("some-token")
    status, set_cookie = call_cookie_route("POST", {"code": code}, sec_fetch_site="same-origin",
                                           x_forwarded_proto="https")
    assert status == 204 and session_cookie(set_cookie)["secure"] is True


def test_a_handoff_code_expires_unclaimed():
    handoffs = shell.Handoffs(ttl_seconds=0)
    assert handoffs.claim(handoffs.put("some-token")) is None
