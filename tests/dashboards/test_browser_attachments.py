"""A photo at the table, in a real browser (issue 22): a technician on the live board records a region and uploads its
photo (the file chooser with a small JPEG: the device camera cannot be driven headless, the upload is the same
write); a PI opens the donor view and sees the thumbnail on the body map's site, and opens the full image.
Screenshots go to artifacts/attachments-NN-<step>.png.

The running case is set up through the library; every step of the test goes through the pages.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image
from sqlmodel import Session, select

from biobank.db.engine import make_engine, session_scope
from biobank.models import Attachment, User
from biobank.services import attachments, collection, donors
from biobank.services.inputs import AutopsyOpen, DonorCreate, LesionCreate
from tests.support.browser import (
    Server,
    assert_clean_log,
    choose,
    launch_chromium,
    needs_chromium,
    serve_demo,
    settle,
    shot,
    sign_in,
)

pytestmark = needs_chromium

PASSWORDS = {"tech": "demo-bench-2026", "pi": "demo-cohort-2026"}
DONOR, CASE = "RA-0777", "RAP-T-777"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_demo(tmp_path_factory)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch_chromium()


def jpeg() -> bytes:
    """A small photo: a red lesion on pale tissue, with a ruler."""
    image = Image.new("RGB", (160, 120), (236, 214, 200))
    for x in range(50, 100):
        for y in range(35, 80):
            if (x - 75) ** 2 + (y - 57) ** 2 < 400:
                image.putpixel((x, y), (150, 20, 30))
    for x in range(10, 150):
        image.putpixel((x, 110), (0, 0, 0))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def open_case(db_url: str) -> None:
    """A donor who died 3 h ago, the autopsy started, a liver metastasis L01 known from imaging."""
    engine = make_engine(db_url)
    death = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    try:
        with session_scope(engine) as session:
            tech = session.exec(select(User).where(User.username == "tech")).one()
            donors.register_donor(session, actor=tech, data=DonorCreate(code=DONOR, sex="male",
                                                                        primary_diagnosis="Colorectal adenocarcinoma"))
            donors.record_consent(session, actor=tech, donor_code=DONOR, given_by="donor",
                                  consented_on=(death - timedelta(days=30)).date(), scopes={"research_use"})
            collection.open_autopsy(session, actor=tech, data=AutopsyOpen(
                donor_code=DONOR, case_code=CASE, death_at=death, start_at=death + timedelta(hours=1)))
            collection.add_lesion(session, actor=tech, data=LesionCreate(donor_code=DONOR, code="L01", site_code="LIVER",
                                                                         kind="metastasis"))
    finally:
        engine.dispose()


def main_text(page) -> str:
    return page.locator("[data-testid='stMain']").inner_text()


def shown(page, selector: str) -> str:
    """What the element under ``selector`` shows: its text and the values of its inputs (a select box shows its
    choice in an input)."""
    return page.evaluate(
        "(s) => { const e = document.querySelector(s); if (!e) return '';"
        " return [e.innerText, ...Array.from(e.querySelectorAll('input')).map(i => i.value)].join('\\n'); }", selector
    )


def loaded_images(page, selector: str) -> list[int]:
    """The natural widths of the images under ``selector`` that have loaded (0 for a broken one)."""
    return page.evaluate(
        "(s) => Array.from(document.querySelectorAll(s)).filter(i => i.complete).map(i => i.naturalWidth)", selector
    )


def test_a_technician_photographs_the_region_on_the_board_and_a_pi_sees_it_on_the_body_map(server, browser):
    open_case(server.db_url)
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    step = 0

    def snap(name: str) -> None:
        nonlocal step
        step += 1
        shot(page, f"attachments-{step:02d}-{name}")

    try:
        # 1. The technician records region L01-A on the board ...
        sign_in(page, server.base, "tech", PASSWORDS["tech"])
        page.goto(f"{server.base}/board")
        settle(page, "Record a region")
        choose(page, "Running case", CASE)
        page.get_by_text(f"Donor {DONOR}").first.wait_for()
        page.get_by_role("button", name="Record region and make specimens").click()
        settle(page, "Just made: L01-A")
        box = page.locator(f".st-key-board_photo_{CASE}")
        assert "Region L01-A (just recorded)" in shown(page, f".st-key-board_photo_{CASE}")  # the photo goes to the region just recorded
        # 2. ... and its photo: the file chooser (the tablet's camera is the other source of the same form)
        box.get_by_text("Upload a file", exact=True).click()
        settle(page)
        with page.expect_file_chooser() as chooser:
            box.get_by_role("button", name="Upload", exact=True).click()
        chooser.value.set_files({"name": "L01-A.jpg", "mimeType": "image/jpeg", "buffer": jpeg()})
        box.get_by_text("L01-A.jpg").first.wait_for()
        caption = box.get_by_role("textbox", name="Caption")
        assert caption.input_value() == "L01-A · Liver"  # prefilled with the region
        box.get_by_role("button", name="Attach photo").click()
        settle(page, "L01-A.jpg attached to Region L01-A")
        assert "Traceback" not in main_text(page)
        snap("board-photo")

        # 3. The PI opens the donor view: the site has the photo on the body map, its thumbnail below the map.
        page.get_by_role("button", name="Sign out").click()
        settle(page, "You signed out")
        sign_in(page, server.base, "pi", PASSWORDS["pi"])
        page.goto(f"{server.base}/donor?donor={DONOR}")
        settle(page, "Photos at")
        place = shown(page, ".st-key-donor_photo_site")
        assert "Liver (L01-A) · 1 photo(s)" in place, place
        gallery = page.locator(".st-key-donor_site_photos")
        gallery.locator("img").first.wait_for()
        assert "Gross photo of region L01-A · L01-A · Liver" in gallery.inner_text()
        widths = loaded_images(page, ".st-key-donor_site_photos img")
        assert widths and all(0 < w <= 256 for w in widths), widths  # the thumbnail, drawn
        assert page.locator("[data-testid='stVegaLiteChart'], .vega-embed").count() >= 1
        snap("donor-body-map")
        # 4. ... and opens the full image.
        gallery.get_by_role("button", name="Open").first.click()
        settle(page, "L01-A.jpg · ")
        full = page.locator(".st-key-donor_site_photos_full img")
        full.first.wait_for()
        assert loaded_images(page, ".st-key-donor_site_photos_full img") == [160]
        snap("donor-full-image")
    except Exception:
        shot(page, "attachments-failure")
        raise
    finally:
        context.close()

    engine = make_engine(server.db_url)
    try:
        with Session(engine) as session:
            [row] = session.exec(select(Attachment)).all()
            assert (row.target, row.target_code, row.kind) == ("sampling_site", f"{DONOR}:L01-A", "gross_photo")
            pi = session.exec(select(User).where(User.username == "pi")).one()
            info, data = attachments.read_attachment(session, actor=pi, attachment_id=row.id)
            assert info.media_type == "image/jpeg" and Image.open(io.BytesIO(data)).size == (160, 120)
    finally:
        engine.dispose()
    assert_clean_log(server.log)
