"""Who is signed in: ``st.session_state["username"]`` holds the account name; the User is loaded per action.

Signing in starts a server-side session (:mod:`biobank.services.sessions`, which holds the rules) whose token the
browser keeps in the cookie :data:`COOKIE_NAME`, so a reload (a new Streamlit session) signs the user back in. Every
full run of the app goes through :func:`check_idle`, which

- signs out with a message after ``BIOBANK_SESSION_IDLE_MINUTES`` without activity in this tab;
- checks the server-side session is still live (not revoked by signing out in another tab or disabling the account,
  not past its absolute expiry) and records the activity on it, at most once a minute;
- with nobody signed in, resumes the session of the browser's cookie, if it is still live;
- hands the browser its cookie after a sign-in, or has it dropped after a sign-out (:func:`deliver_cookie`).

The role is read from the database on every run, so disabling an account or changing its role takes effect at the
next click.

**The cookie.** The script cannot set HTTP headers (it talks to the browser over a websocket), so the cookie comes
from a small HTTP route served beside Streamlit (:func:`cookie_routes`, mounted with ``st.App(..., routes=...)``):
after a sign-in the page posts a one-time code (valid :data:`HANDOFF_SECONDS`, held in this process's memory) to the
route, which answers with ``Set-Cookie: biobank_session=<token>; HttpOnly; Path=/; SameSite=strict`` (plus
``Secure`` over HTTPS). Page scripts never see the token. The websocket's handshake carries the cookie, which
``st.context.cookies`` reads. After a sign-out the page asks the same route (``DELETE``) to drop the cookie.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import streamlit as st
from sqlmodel import Session, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from biobank.db.engine import session_scope
from biobank.models import User
from biobank.services import sessions
from dashboards.data import core as data

USERNAME_KEY = "username"
LAST_ACTIVITY_KEY = "last_activity"
NOTICE_KEY = "signin_notice"
#: the server-side session's token (server memory only; the browser has it in the cookie)
TOKEN_KEY = "session_token"
#: when activity was last recorded on the server-side session (seconds since the epoch)
TOUCHED_KEY = "session_touched"
#: what the browser's cookie needs at the next delivery: {"set": <one-time code>} or {"clear": True}
COOKIE_ACTION_KEY = "session_cookie_action"
#: set once the browser's cookie has been looked at (it cannot change during a Streamlit session)
COOKIE_TRIED_KEY = "session_cookie_tried"

COOKIE_NAME = "biobank_session"
#: the cookie route, under ``server.baseUrlPath``
COOKIE_ROUTE = "/_biobank/session"
#: how long the one-time code that fetches the cookie stays valid
HANDOFF_SECONDS = 60
#: the key of the (hidden) container holding the cookie script; it gets the CSS class ``st-key-<key>``
COOKIE_CONTAINER = "biobank_session_cookie"

ENDED = "Your session has ended (signed out elsewhere, expired or the account was disabled). Sign in again to continue."


def current_username() -> str | None:
    return st.session_state.get(USERNAME_KEY)


def current_user(session: Session) -> User | None:
    """The signed-in account, loaded in the caller's session (services check its role)."""
    name = current_username()
    if not name:
        return None
    return session.exec(select(User).where(User.username == name)).first()


def current_role(session: Session) -> str | None:
    user = current_user(session)
    return user.role if user is not None and user.is_active else None


def read_session_cookie() -> str | None:
    """The session token the browser sent when this Streamlit session connected (HttpOnly: page scripts cannot
    read it, the websocket handshake carries it)."""
    return _text(st.context.cookies.get(COOKIE_NAME))


def client_user_agent() -> str | None:
    return _text(st.context.headers.get("User-Agent"))


def _text(value: object) -> str | None:
    """A cookie or header value; None when absent (or when no browser is connected: AppTest's stand-in client
    answers with placeholder objects)."""
    return value if isinstance(value, str) and value else None


def sign_in(username: str, *, token: str | None = None, now: float | None = None) -> None:
    """Sign ``username`` in for this tab; ``token`` is a server-side session just started, whose cookie the browser
    is handed at the next run."""
    now = time.time() if now is None else now
    st.session_state[USERNAME_KEY] = username
    st.session_state[LAST_ACTIVITY_KEY] = now
    st.session_state.pop(NOTICE_KEY, None)
    if token is not None:
        st.session_state[TOKEN_KEY] = token
        st.session_state[TOUCHED_KEY] = now
        st.session_state[COOKIE_ACTION_KEY] = {"set": _handoffs().put(token)}


def sign_out(notice: str | None = None, *, now: float | None = None) -> None:
    """End the server-side session, forget the account and everything the pages kept for it in this browser
    session, and have the browser drop its cookie."""
    token = st.session_state.get(TOKEN_KEY)
    try:
        if token:
            with session_scope(data.engine()) as session:
                sessions.end_session(session, token, now=_moment(now))
    finally:
        for key in list(st.session_state.keys()):
            del st.session_state[key]
        if notice:
            st.session_state[NOTICE_KEY] = notice
        st.session_state[COOKIE_TRIED_KEY] = True  # the cookie this tab connected with is ended or not ours
        if token:
            st.session_state[COOKIE_ACTION_KEY] = {"clear": True}


def check_idle(idle_minutes: float, *, now: float | None = None) -> str | None:
    """The signed-in name, or None: signs out an idle tab or an ended server-side session (with a notice for the
    sign-in page), resumes the browser's session after a reload, and delivers any pending cookie change.

    A session signed in without a recorded activity time (a test harness setting the name) starts its clock now;
    one without a server-side session (a test harness again) is kept in this tab only.
    """
    now = time.time() if now is None else now
    idle = timedelta(minutes=idle_minutes)
    name = current_username()
    last = st.session_state.get(LAST_ACTIVITY_KEY)
    if not name:
        name = _resume_from_cookie(idle, now)
    elif last is not None and now - float(last) > idle.total_seconds():
        sign_out(
            f"You were signed out after {idle_minutes:g} minutes without activity. Sign in again to continue.",
            now=now,
        )
        name = None
    elif st.session_state.get(TOKEN_KEY) and not _still_live(name, idle, now):
        sign_out(ENDED, now=now)
        name = None
    if name:
        st.session_state[LAST_ACTIVITY_KEY] = now
    deliver_cookie()
    return name


def pop_notice() -> str | None:
    return st.session_state.pop(NOTICE_KEY, None)


def _moment(now: float | None) -> datetime | None:
    return None if now is None else datetime.fromtimestamp(now, UTC)


def _still_live(name: str, idle: timedelta, now: float) -> bool:
    """Whether this tab's server-side session is still live, recording the activity (at most once a minute, so a
    click is not a write)."""
    token = st.session_state[TOKEN_KEY]
    with data.read_session() as session:
        user = sessions.resume_session(session, token, now=_moment(now), idle=idle)
        live = user is not None and user.username == name
    if live and now - float(st.session_state.get(TOUCHED_KEY, 0)) >= sessions.TOUCH_INTERVAL.total_seconds():
        with session_scope(data.engine()) as session:
            sessions.touch(session, token, now=_moment(now), idle=idle)
        st.session_state[TOUCHED_KEY] = now
    return live


def _resume_from_cookie(idle: timedelta, now: float) -> str | None:
    """Sign in again with the browser's cookie (after a reload), if its session is live; else have it dropped."""
    if st.session_state.get(COOKIE_TRIED_KEY):
        return None
    st.session_state[COOKIE_TRIED_KEY] = True
    token = read_session_cookie()
    if not token:
        return None
    with session_scope(data.engine()) as session:
        user = sessions.resume_session(session, token, now=_moment(now), idle=idle)
        if user is not None:
            sessions.touch(session, token, now=_moment(now), idle=idle)  # the reload is activity
        name = user.username if user is not None else None
    if name is None:
        st.session_state.setdefault(NOTICE_KEY, ENDED)
        st.session_state[COOKIE_ACTION_KEY] = {"clear": True}
        return None
    sign_in(name, now=now)
    st.session_state[TOKEN_KEY] = token
    st.session_state[TOUCHED_KEY] = now
    return name


# --------------------------------------------------------------------------------------------- the cookie


def cookie_path() -> str:
    """Where the cookie applies: the app's base path (``server.baseUrlPath``), or the whole site."""
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}" if base else "/"


def cookie_route_path() -> str:
    return cookie_path().rstrip("/") + COOKIE_ROUTE


def deliver_cookie() -> None:
    """Run the pending cookie change in the browser: a hidden element whose script calls the cookie route."""
    action = st.session_state.pop(COOKIE_ACTION_KEY, None)
    if not action:
        return
    url = json.dumps(cookie_route_path())
    if "set" in action:
        body = json.dumps(json.dumps({"code": action["set"]}))
        call = (
            f"fetch({url}, {{method: 'POST', credentials: 'same-origin', cache: 'no-store', "
            f"headers: {{'Content-Type': 'application/json'}}, body: {body}}})"
        )
    else:
        call = f"fetch({url}, {{method: 'DELETE', credentials: 'same-origin', cache: 'no-store'}})"
    with st.container(key=COOKIE_CONTAINER):
        st.html(
            f"<style>:has(> .st-key-{COOKIE_CONTAINER}), .st-key-{COOKIE_CONTAINER} {{display: none}}</style>"
            f"<script>{call};</script>",
            unsafe_allow_javascript=True,
        )


class Handoffs:
    """One-time codes the page trades for its cookie: the token never reaches a page script.

    Kept in this process's memory: the script and the cookie route run in the same server process, and a browser
    stays on one process (docs/deploy.md: sticky sessions).
    """

    def __init__(self, ttl_seconds: float = HANDOFF_SECONDS) -> None:
        self.ttl_seconds = ttl_seconds
        self._pending: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def put(self, token: str) -> str:
        """A new code for ``token``."""
        code = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            for stale in [c for c, (_, deadline) in self._pending.items() if deadline <= now]:
                del self._pending[stale]
            self._pending[code] = (token, now + self.ttl_seconds)
        return code

    def claim(self, code: str) -> str | None:
        """The token of ``code``, once, within the time allowed."""
        with self._lock:
            entry = self._pending.pop(code, None)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]


HANDOFFS = Handoffs()


def _handoffs() -> Handoffs:
    """The codes the script runs hand out: when Streamlit re-imports this module after a source file changed (while
    developing), the route, built from the first import, must read the new module's store."""
    return getattr(sys.modules.get(__name__), "HANDOFFS", HANDOFFS)


def _same_origin(request: Request) -> bool:
    """Only the app's own pages may call the route: a browser names the caller's site in ``Sec-Fetch-Site``, so a
    cross-site page cannot drop the cookie. (A client that sends no such header is no browser: nothing to forge.)"""
    site = request.headers.get("sec-fetch-site")
    return site is None or site == "same-origin"


def _https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


async def _cookie_endpoint(request: Request) -> Response:
    """``POST {"code": ...}``: set the session cookie for a one-time code; ``DELETE``: drop the cookie."""
    if not _same_origin(request):
        return Response(status_code=403)
    response = Response(status_code=204, headers={"Cache-Control": "no-store"})
    path, secure = cookie_path(), _https(request)
    if request.method == "DELETE":
        response.delete_cookie(COOKIE_NAME, path=path, secure=secure, httponly=True, samesite="strict")
        return response
    try:
        code = (await request.json())["code"]
    except (ValueError, KeyError, TypeError):
        return Response(status_code=400)
    token = _handoffs().claim(code) if isinstance(code, str) else None
    if token is None:
        return Response(status_code=404, headers={"Cache-Control": "no-store"})
    response.set_cookie(COOKIE_NAME, token, path=path, secure=secure, httponly=True, samesite="strict")
    return response


def cookie_routes() -> list[Route]:
    """The cookie route, to mount beside Streamlit: ``st.App("app.py", routes=cookie_routes())``."""
    return [Route(cookie_route_path(), _cookie_endpoint, methods=["POST", "DELETE"])]
