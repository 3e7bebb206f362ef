"""A real browser (Debian's headless Chromium, driven by Playwright) against `biobank serve` on the demo cohort:
a PI reviews the cohort and a donor, a technician records a region on the live board. Screenshots go to artifacts/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlmodel import Session, func, select

from biobank.db.engine import make_engine, session_scope
from biobank.models import Autopsy, Lesion, SamplingSite, Specimen, SpecimenLocation, User
from biobank.services import storage
from tests.support.browser import (
    Server,
    assert_clean_log,
    choose,
    launch_chromium,
    needs_chromium,
    open_page,
    serve_demo,
    settle,
    shot,
    sign_in,
)

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_demo(tmp_path_factory)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch_chromium()


def test_a_pi_and_a_technician_work_through_the_dashboard(server, browser):
    base, db_url = server.base, server.db_url
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        page.goto(base)
        settle(page, "Demo accounts")
        shot(page, "01-sign-in")

        sign_in(page, base, "pi", "demo-cohort-2026")
        assert page.get_by_role("link", name="Live autopsy board").count() == 0  # not a PI's page
        open_page(page, "Cohort overview", "Sites sampled per donor")
        page.locator("[data-testid='stVegaLiteChart']").first.wait_for()
        shot(page, "02-cohort-overview")

        open_page(page, "Donor view", "Specimen lineage")
        page.locator("[data-testid='stVegaLiteChart']").first.wait_for()
        shot(page, "03-donor-view")

        page.get_by_role("button", name="Sign out").click()
        settle(page, "You signed out")

        sign_in(page, base, "tech", "demo-bench-2026")
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
        sign_in(page, base, "tech", "demo-bench-2026")
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


def specimen_count(db_url: str, **where: str) -> int:
    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            statement = select(func.count()).select_from(Specimen)
            for column, value in where.items():
                statement = statement.where(getattr(Specimen, column) == value)
            return session.exec(statement).one()
    finally:
        engine.dispose()


def record_region(page, db_url: str, lesion: str) -> str:
    """Choose ``lesion`` on the board, record a region with the defaults; the new region's code."""
    before = regions_of(db_url)
    choose(page, "Lesion", lesion)
    page.get_by_role("button", name="Record region and make specimens").click()
    deadline = time.monotonic() + 30
    while (after := regions_of(db_url)) == before and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    settle(page)
    new = sorted(set(after) - set(before))
    assert len(new) == 1 and after[new[0]] == lesion, f"{lesion} on screen, new regions {new}"
    return new[0]


def refused(page, db_url: str, words: tuple[str, ...]) -> str:
    """Click Record, expect an error naming what was wrong and no specimen written; the error's text."""
    before = specimen_count(db_url)
    page.get_by_role("button", name="Record region and make specimens").click()
    settle(page)
    alert = page.locator("[data-testid='stAlertContentError']").first
    alert.wait_for(timeout=15_000)
    text = alert.inner_text()
    assert all(w.lower() in text.lower() for w in words), text
    assert specimen_count(db_url) == before, "a refused region wrote specimens"
    return text


def test_a_technicians_day_from_the_board_to_a_bookmarked_specimen(server, browser):
    """Three lesions in a row, kinds switched, a future time and absurd numbers refused in words, a region stored by
    scanning into a box map, a bulk disposal from the specimen list, a pick list printed, and a bookmarked specimen
    opened again after a reload without signing in again."""
    base, db_url = server.base, server.db_url
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    try:
        sign_in(page, base, "tech", "demo-bench-2026")
        assert page.get_by_role("button", name="Deploy").count() == 0  # no developer toolbar for lab staff
        assert page.locator("[data-testid='stMainMenu']").count() == 0
        open_page(page, "Live autopsy board", "Record a region")

        # 1. Regions on three lesions in a row, each into the lesion on screen.
        regions = [record_region(page, db_url, lesion) for lesion in ("L02", "L03", "L04")]
        shot(page, "10-journey-three-lesions")
        caption = page.get_by_text("region(s) of L04 recorded so far").first.inner_text()
        recorded = sum(1 for owner in regions_of(db_url).values() if owner == "L04")
        assert caption.startswith(f"{recorded} region(s) of L04"), caption  # not a stale count

        # 2. Switching kind shows that kind's own defaults: nothing ticked for the region carries over.
        page.get_by_text("Normal tissue", exact=True).click()
        settle(page)
        assert not page.get_by_role("checkbox", name="OCT-embedded, frozen").is_checked()
        assert not page.get_by_role("checkbox", name="Viable cryopreserved (DMSO)").is_checked()
        page.get_by_text("Bone marrow", exact=True).click()
        settle(page)
        assert page.get_by_role("spinbutton", name="pieces").first.input_value() == "2"
        assert page.get_by_role("spinbutton", name="µL").first.input_value().startswith("1000")
        shot(page, "11-journey-bone-marrow-defaults")
        page.get_by_text("Lesion region", exact=True).click()
        settle(page)
        choose(page, "Lesion", "L02")

        # 3. An excision in 2030 is refused in words; nothing is written.
        year = page.get_by_role("spinbutton", name="year, Excised", exact=False).first
        year.click()
        page.keyboard.type("2030")
        page.keyboard.press("Tab")
        text = refused(page, db_url, ("future",))
        assert "ck_" not in text and "trigger" not in text.lower()
        shot(page, "12-journey-future-refused")
        year.click()
        page.keyboard.type(str(datetime.now().year))
        page.keyboard.press("Tab")

        # 4. Absurd numbers are refused with the field named, not a silent red box.
        pieces = page.get_by_role("spinbutton", name="pieces").first
        pieces.fill("999")
        assert refused(page, db_url, ("pieces",)).startswith("Snap-frozen (LN2): Pieces (999)")
        shot(page, "13-journey-999-pieces-refused")
        pieces.fill("2")
        page.get_by_role("spinbutton", name="mg").first.fill("-5")
        refused(page, db_url, ("quantity",))
        page.get_by_role("spinbutton", name="mg").first.fill("50")

        # 5. The first region's snap-frozen tubes stored by scanning into a box map, slot by slot.
        engine = make_engine(db_url)
        with Session(engine) as session:
            tubes = sorted(session.exec(
                select(Specimen.code).join(SamplingSite, SamplingSite.id == Specimen.sampling_site_id)
                .where(SamplingSite.code == regions[0], Specimen.storage_format == "snap_frozen")
            ).all())
        with session_scope(engine) as session:  # an empty box on a -80 °C rack, as a technician adds one
            tech = session.exec(select(User).where(User.username == "tech")).one()
            box = storage.add_container(session, actor=tech, code="BOX-DAY", kind="box_9x9", parent_code="FRZ-02-R1").code
        assert len(tubes) >= 2
        open_page(page, "Storage", "Box or container")
        choose(page, "Box or container", box)
        free = page.locator(f".st-key-boxmap_{box.replace('.', '-')}_I9 button:visible")
        free.click()  # the last slot of the box: a free one to scan into
        settle(page)
        scan = page.locator(".st-key-storage_scan_code input")
        for code in tubes:
            scan.fill(code.lower())  # as a scanner or a hurried hand types it
            scan.press("Enter")
            settle(page, f"{code} stored in")  # this tube's confirmation, not the one before it still on screen
            confirm = page.locator(".st-key-storage_scan_confirm").inner_text()
            assert code in confirm and box in confirm, confirm
        with Session(engine) as session:
            placed = {code: session.exec(
                select(SpecimenLocation.position).join(Specimen, Specimen.id == SpecimenLocation.specimen_id)
                .where(Specimen.code == code)
            ).one() for code in tubes}
        assert placed[tubes[0]] == "I9" and placed[tubes[1]] != "I9"
        shot(page, "14-journey-scanned-into-box")

        # 6. Bulk disposal from the specimen list: the two tubes just stored, found by their box.
        open_page(page, "Specimen list", "Specimen list")
        choose(page, "Location (freezer, rack or box)", box)
        grid = page.locator("[data-testid='stDataFrame']").first
        grid.wait_for()
        header = grid.bounding_box()
        assert header is not None
        page.get_by_text(f"{len(tubes)} specimens · click").first.wait_for()  # the box holds just the scanned tubes
        for row in range(len(tubes)):  # tick each row's checkbox (the grid is drawn on a canvas: click by position)
            page.mouse.click(header["x"] + 16, header["y"] + 35 * (row + 1) + 17)
            page.wait_for_timeout(500)
        settle(page, f"{len(tubes)} specimens selected")
        choose(page, "Bulk action", "Dispose")
        page.get_by_role("textbox", name="Reason (required)").fill("thawed in transit")
        page.keyboard.press("Tab")
        settle(page)
        page.get_by_role("button", name=f"Dispose {len(tubes)} specimens").click()
        settle(page, "disposed")
        with Session(engine) as session:
            statuses = {code: session.exec(select(Specimen.status).where(Specimen.code == code)).one() for code in tubes}
        assert set(statuses.values()) == {"disposed"}, statuses
        shot(page, "15-journey-bulk-disposed")

        # 7. A pick list printed for an order: codes and where to find them.
        open_page(page, "Distribution", "Distribution")
        with page.expect_download() as download:
            page.get_by_text("Pick list (PDF)").first.click()
        pdf = download.value.path()
        import pypdfium2

        document = pypdfium2.PdfDocument(str(pdf))
        text = "".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
        assert "Pick list" in text and "RA0" in text, text[:500]
        shot(page, "16-journey-pick-list")

        # 8. A bookmarked specimen opens again after a reload, still signed in.
        page.goto(f"{base}/specimen?specimen={regions[1].split('-')[0]}")  # a partial code: the search suggests
        settle(page)
        with Session(engine) as session:
            code = session.exec(select(Specimen.code).order_by(Specimen.id.desc())).first()
        engine.dispose()
        page.goto(f"{base}/specimen?specimen={code}")
        settle(page, code)
        page.reload()
        settle(page, code)
        assert page.get_by_role("button", name="Sign out").count() == 1  # the reload kept the sign-in
        assert page.get_by_role("heading", name=code).count() == 1
        cookie = next(c for c in context.cookies() if c["name"] == "biobank_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        shot(page, "17-journey-bookmarked-specimen-after-reload")
    except Exception:
        shot(page, "failure-journey")
        raise
    finally:
        context.close()


def test_the_server_log_holds_no_traceback_and_no_deprecation_warning(server):
    """Runs last: everything the browser tests above did left no traceback and no deprecation warning in the log."""
    assert_clean_log(server.log)
