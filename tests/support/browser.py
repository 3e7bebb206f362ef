"""A real browser against `biobank serve`, for the browser tests (tests/dashboards/test_browser*.py): Debian's
headless Chromium driven by Playwright's sync API, the server started on a free port with a fresh demo database, and
the helpers the tests share (wait for Streamlit to settle, sign in, open a page, pick a select box option, take a
full-page screenshot into artifacts/, check the server log).

A test module makes its own module-scoped fixtures from :func:`serve_demo` and :func:`launch_chromium` (two lines
each), so each module gets its own server and database.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from biobank.db.engine import make_engine, session_scope
from biobank.demo.cohort import load_demo
from tests.support.dbtools import migrate

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: ``pytestmark = needs_chromium`` in a browser test module: skip, saying why, where Chromium is not installed.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server(NamedTuple):
    base: str  # the dashboard's URL
    db_url: str  # the database it serves
    log: Path  # everything the server printed


def serve_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`biobank serve` on a fresh demo database, stopped (with anything it started) when the generator closes."""
    db_url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'demo.db'}"
    migrate(db_url)
    engine = make_engine(db_url)
    with session_scope(engine) as session:
        load_demo(session, donors_count=6, seed=7)
    engine.dispose()
    port = free_port()
    env = {**os.environ, "BIOBANK_DATABASE_URL": db_url, "BIOBANK_DEMO_MODE": "true"}
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "from biobank.cli import main; main()", "serve", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"biobank serve did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield Server(base, db_url, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and anything it started
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def launch_chromium() -> Iterator[object]:
    """Debian's Chromium, headless, through Playwright's sync API (skips when Playwright is not installed)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def settle(page, text: str | None = None, timeout: float = 30_000) -> None:
    """Wait for a text to appear and for Streamlit to finish running the script, then for charts to draw."""
    if text is not None:
        page.get_by_text(text, exact=False).first.wait_for(timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout
    )
    page.wait_for_timeout(1500)


def shot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the window to its height for the picture."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]'); return m ? m.scrollHeight : 0; }"
    )
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], int(height))})
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(base)
    settle(page, "Sign in")
    page.get_by_role("textbox", name="User name").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    settle(page, "Sign out")


def open_page(page, title: str, wait_for: str) -> None:
    page.get_by_role("link", name=title).first.click()
    settle(page, wait_for)


def choose(page, label: str, option_prefix: str, *, key: str | None = None, search: bool = False) -> None:
    """Pick the option of a Streamlit selectbox whose text starts with ``option_prefix``; the box is the first whose
    text holds ``label``, or the one with widget ``key`` when a label is not unique on the page. With ``search`` the
    prefix is typed into the box first (a long list draws only the options in view)."""
    boxes = page.locator(f".st-key-{key}") if key else page.locator("[data-testid='stSelectbox']")
    box = boxes.filter(has_text=label).first
    option = page.get_by_role("option").filter(has_text=option_prefix).first
    for attempt in range(4):  # a click can land while the page redraws and leave the list closed: open it again
        box.click()
        if search or attempt:  # a long list draws only the options in view: after a miss, type to filter it
            page.keyboard.type(option_prefix)
        try:
            option.wait_for(timeout=3000)
            break
        except Exception:
            page.keyboard.press("Escape")
            page.wait_for_timeout(500)
    option.click()
    settle(page)


def assert_clean_log(log: Path) -> None:
    """The server printed no traceback and no deprecation warning."""
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]
    assert "deprecat" not in text.lower(), [line for line in text.splitlines() if "deprecat" in line.lower()][:5]
