"""A real browser (Debian's headless Chromium, driven by Playwright) against `biobank serve` on the demo cohort:
a PI reviews the cohort and a donor, a technician records a region on the live board. Screenshots go to artifacts/.
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
from sqlmodel import Session, func, select

from biobank.db.engine import make_engine, session_scope
from biobank.demo.cohort import load_demo
from biobank.models import Autopsy, Lesion, SamplingSite
from tests.support.dbtools import migrate

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = pytest.mark.skipif(
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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`biobank serve` on a fresh demo database."""
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


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
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


def test_a_pi_and_a_technician_work_through_the_dashboard(server, browser):
    base, db_url = server.base, server.db_url
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        page.goto(base)
        settle(page, "Demo accounts")
        shot(page, "01-sign-in")

        sign_in(page, base, "pi", "demo-pi-2026")
        assert page.get_by_role("link", name="Live autopsy board").count() == 0  # not a PI's page
        open_page(page, "Cohort overview", "Sites sampled per donor")
        page.locator("[data-testid='stVegaLiteChart']").first.wait_for()
        shot(page, "02-cohort-overview")

        open_page(page, "Donor view", "Specimen lineage")
        page.locator("[data-testid='stVegaLiteChart']").first.wait_for()
        shot(page, "03-donor-view")

        page.get_by_role("button", name="Sign out").click()
        settle(page, "You signed out")

        sign_in(page, base, "tech", "demo-tech-2026")
        open_page(page, "Live autopsy board", "Record a region")
        engine = make_engine(db_url)
        with Session(engine) as session:
            before = session.exec(select(func.count()).select_from(SamplingSite)).one()
        page.get_by_role("button", name="Record region and make specimens").click()
        settle(page, "Just made:")
        shot(page, "04-live-board")
        with Session(engine) as session:
            assert session.exec(select(func.count()).select_from(SamplingSite)).one() == before + 1
        engine.dispose()
        assert page.get_by_text("Tube labels (PDF)").count() == 1

        open_page(page, "Specimen search", "Specimen code or barcode")
        page.get_by_role("textbox", name="Specimen code or barcode").fill("RA0001-L01A-SF1")
        page.keyboard.press("Enter")
        settle(page, "Custody history")
        shot(page, "05-specimen")
    except Exception:
        shot(page, "failure")
        raise
    finally:
        context.close()


def choose(page, label: str, option_prefix: str) -> None:
    """Pick the option of a Streamlit selectbox whose text starts with ``option_prefix``."""
    box = page.locator("[data-testid='stSelectbox']").filter(has_text=label).first
    box.click()
    page.get_by_role("option").filter(has_text=option_prefix).first.click()
    settle(page)


def regions_of(db_url: str) -> dict[str, str]:
    """The lesion regions of the running case's donor: region code (L03-C) -> the code of the lesion it belongs to."""
    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            donor_id = session.exec(select(Autopsy.donor_id).where(Autopsy.status == "in_progress")).one()
            rows = session.exec(
                select(SamplingSite.code, Lesion.code)
                .join(Lesion, Lesion.id == SamplingSite.lesion_id)
                .where(SamplingSite.donor_id == donor_id)
            ).all()
    finally:
        engine.dispose()
    return dict(rows)


def test_the_board_records_each_region_into_the_lesion_on_screen(server, browser):
    """Regions recorded one after another on three lesions each land in the lesion the technician chose, with the
    next free label of that lesion, also when the same lesion stays chosen for a second region."""
    base, db_url = server.base, server.db_url
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    try:
        sign_in(page, base, "tech", "demo-tech-2026")
        open_page(page, "Live autopsy board", "Record a region")
        shown = None
        for step, lesion in enumerate(["L03", "L03", "L04", "L02"], start=1):
            before = regions_of(db_url)
            if lesion != shown:  # the second L03 region is recorded with the box left as it is
                choose(page, "Lesion", lesion)
                shown = lesion
            page.get_by_role("button", name="Record region and make specimens").click()
            deadline = time.monotonic() + 30
            while (after := regions_of(db_url)) == before and time.monotonic() < deadline:
                page.wait_for_timeout(250)
            settle(page)
            new = sorted(set(after) - set(before))
            assert len(new) == 1, f"step {step}: expected one new region, got {new}"
            assert after[new[0]] == lesion, f"step {step}: {lesion} on screen but the region went to {new[0]}"
            taken = {site.split("-", 1)[1] for site, owner in before.items() if owner == lesion}
            expected = next(letter for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if letter not in taken)
            assert new[0] == f"{lesion}-{expected}", f"step {step}: the next free region of {lesion} was {expected}"
            page.get_by_text(f"Just made: {new[0]}").first.wait_for()
            shot(page, f"06-board-region-{step}-{new[0]}")
    except Exception:
        shot(page, "failure-board-lesions")
        raise
    finally:
        context.close()


def test_the_server_log_holds_no_traceback_and_no_deprecation_warning(server):
    """Runs last: everything the browser tests above did left no traceback and no deprecation warning in the log."""
    text = server.log.read_text()
    assert "Traceback" not in text, text[-4000:]
    assert "deprecat" not in text.lower(), [line for line in text.splitlines() if "deprecat" in line.lower()][:5]
