"""The programme's working day in a real browser, as the roles walk it (issue #16 item 6): a coordinator enrols a
donor and records consent; the death call opens a case, the lesions known from imaging are recorded on it, its
labels are printed and the autopsy started; a technician records a region on the live board, aliquots,
extracts DNA, records its QC and stores it; a PI plans the donor; the coordinator records the withdrawal; the donor's
material disappears from the planner and the exports. Each step is screenshotted to artifacts/journey-NN-<step>.png.

Every step goes through the pages; the database is only read, to check what the pages said.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, select

from biobank.config import get_settings
from biobank.db.engine import make_engine
from biobank.domain.errors import BiobankError, ConsentError
from biobank.exports import service as export_service
from biobank.models import Autopsy, Donor, Specimen, User
from biobank.queries import exports as export_query
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

PASSWORDS = {"coord": "demo-consent-2026", "tech": "demo-bench-2026", "pi": "demo-cohort-2026"}
BOX = "BOX80-005"  # a -80 °C box of the demo with free slots
PLAN = "WGS-JOURNEY"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_demo(tmp_path_factory)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch_chromium()


def as_user(page, base: str, username: str) -> None:
    """Whoever is signed in signs out; ``username`` signs in."""
    if page.get_by_role("button", name="Sign out").count():
        page.get_by_role("button", name="Sign out").click()
        settle(page, "You signed out")
    sign_in(page, base, username, PASSWORDS[username])


def visit(page, base: str, path: str, wait_for: str) -> None:
    """Open a page by its address (a bookmark or a link), signed in as before."""
    page.goto(f"{base}/{path}")
    settle(page, wait_for)


def pick(page, key: str, option: str) -> None:
    """Add ``option`` to the multiselect keyed ``key``: type it, take the option offered."""
    page.locator(f".st-key-{key} input").first.click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=True).wait_for()
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")


def grid(page, header: str, holding: str | None = None) -> list[str]:
    """The cells (headers first) of the table on screen with a ``header`` column (and a cell ``holding``): read
    from the grid's accessible table, which holds the rows drawn on its canvas."""
    tables = page.evaluate(
        "() => Array.from(document.querySelectorAll('[data-testid=stDataFrame] table'))"
        ".map(t => Array.from(t.querySelectorAll('th, td')).map(c => c.textContent))"
    )
    found = [cells for cells in tables if header in cells and (holding is None or holding in cells)]
    assert found, f"no table with a {header!r} column{f' holding {holding!r}' if holding else ''} on screen"
    return found[0]


def main_text(page) -> str:
    return page.locator("[data-testid='stMain']").inner_text()


def type_time(page, label: str, when: datetime) -> None:
    """Type a time into a Streamlit date-and-time field, segment by segment as a keyboard does."""
    page.get_by_role("spinbutton", name=f"year, {label}", exact=False).first.click()
    page.keyboard.type(when.strftime("%Y%m%d%H%M"))
    page.keyboard.press("Tab")


def test_the_programme_walks_a_donor_from_enrolment_to_withdrawal(server, browser):
    base, db_url = server.base, server.db_url
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    step = 0

    def snap(name: str) -> None:
        nonlocal step
        step += 1
        shot(page, f"journey-{step:02d}-{name}")

    try:
        # 1. The coordinator registers the donor under the next free code.
        as_user(page, base, "coord")
        visit(page, base, "enrolment", "Register a donor")
        page.get_by_text("Register a donor").click()
        code_box = page.get_by_role("textbox", name="Code")
        code_box.wait_for()
        donor = (code_box.get_attribute("placeholder") or "").removeprefix("empty: ")
        assert donor.startswith("RA-"), donor
        page.get_by_role("textbox", name="Primary diagnosis").fill("Invasive ductal carcinoma of breast")
        choose(page, "Primary site", "Breast", search=True)
        page.get_by_role("textbox", name="ICD-O-3 topography").fill("C50.9")
        page.get_by_role("textbox", name="ICD-O-3 morphology").fill("8500/3")
        page.get_by_role("button", name="Register the donor").click()
        settle(page, f"Donor {donor} registered")
        assert page.get_by_text("No consent is recorded for this donor yet.").count() == 1
        enrolled = grid(page, "versions")
        assert donor in enrolled and enrolled[enrolled.index(donor) + 1] == "enrolled", enrolled
        snap("donor-registered")

        # 2. ...and records the donor's consent; the history shows the form version.
        for scope in ("research use", "genomic sequencing", "model derivation"):
            pick(page, "enrol_consent_scopes", scope)
        page.get_by_role("textbox", name="Form version").fill("ICF-v3.2")
        page.get_by_role("textbox", name="Taken by").fill("research nurse")
        page.get_by_role("button", name="Record the consent").click()
        settle(page, f"Initial consent of {donor} recorded")
        page.get_by_text("Consent in force: research use, genomic sequencing, model derivation").wait_for()
        page.get_by_text("Consent history (1 version(s))").click()
        settle(page)
        history = grid(page, "form")
        assert "ICF-v3.2" in history and "research nurse" in history and "coord" in history, history
        snap("consent-recorded")

        # 3. The coordinator takes the death call: the case opens and is chosen.
        visit(page, base, "cases", "Cases by state")
        page.get_by_text("Take the death call").click()
        choose(page, "Donor who died", donor)
        died = (datetime.now(get_settings().zone) - timedelta(hours=2)).replace(second=0, microsecond=0)
        type_time(page, "Time of death", died)
        page.get_by_role("textbox", name="Place of death").fill("St Elsewhere hospice")
        page.get_by_role("textbox", name="Death reported by").fill("Night nurse, hospice")
        page.get_by_role("textbox", name="Prosector").fill("Dr A. Patel")
        page.get_by_role("button", name="Open the case").click()
        settle(page, "opened: work through its checklist below")
        flash = page.get_by_text("opened: work through its checklist below").first.inner_text()
        case = flash.split()[1]
        assert case.startswith("RAP-"), flash
        assert f"{case} · donor {donor} · scheduled" in main_text(page)
        assert f"Died {died:%d %b %Y %H:%M} at St Elsewhere hospice" in main_text(page)
        snap("death-call")

        # 4. ...records the lesions known from the imaging report, whose labels are pre-printed with the case's.
        for site, kind, side, code in (("Breast", "primary", "left", "L01"), ("Liver", "metastasis", "(default)", "L02")):
            if not page.locator(".st-key-cases_new_lesion_site").is_visible():  # open while the case is scheduled
                page.get_by_text("Known lesions").click()
                settle(page)
            choose(page, "Site", site, key="cases_new_lesion_site", search=True)
            choose(page, "Kind", kind, key="cases_new_lesion_kind")
            choose(page, "Laterality", side, key="cases_new_lesion_side")
            page.get_by_role("button", name="Add the lesion").click()
            settle(page, f"Lesion {code} added")
        lesions = grid(page, "regions")
        assert "L01" in lesions and "L02" in lesions and "Liver" in lesions, lesions
        snap("lesions-known")

        # 5. ...prints the case's labels: the checklist shows them printed.
        with page.expect_download() as download:
            page.get_by_role("button", name="Print labels").click()
        assert download.value.suggested_filename == f"labels-{case}.pdf"
        settle(page, f"labels of case {case} printed (on the checklist)")
        text = main_text(page)
        assert "Labels printed — printed" in text, text
        snap("labels-printed")

        # 6. ...records refrigeration and the team call, and starts the autopsy: the case list has it in progress.
        page.get_by_role("button", name="Record refrigeration").click()
        settle(page, f"Case {case}: refrigeration recorded.")
        page.get_by_role("button", name="Team notified").click()
        settle(page, f"Case {case}: team notified.")
        page.get_by_role("button", name="Start the autopsy").click()
        settle(page, f"Case {case} started: it is on the live board.")
        assert "Call checklist · 7 of 7 done" in main_text(page)
        assert f"{case} · donor {donor} · in progress" in main_text(page)
        chosen = page.locator(".st-key-cases_case").inner_text()
        assert "Scheduled" not in chosen, chosen  # the case chosen does not read as it was before the start
        page.get_by_role("tab", name="In progress (2)").click()
        settle(page)
        cases = grid(page, "labels printed")
        row = cases[cases.index(case):]
        assert row[1] == donor and row[11], row  # labels printed: when
        snap("case-started")

        # 7. A technician records a region of the primary on the live board.
        as_user(page, base, "tech")
        visit(page, base, "board", "Record a region")
        choose(page, "Running case", case)
        page.get_by_text(f"Donor {donor}").first.wait_for()
        choose(page, "Lesion", "L01")
        page.get_by_role("button", name="Record region and make specimens").click()
        settle(page, "Just made: L01-A")
        made = grid(page, "unit")
        tag = donor.replace("-", "")
        tube, second, ffpe = f"{tag}-L01A-SF1", f"{tag}-L01A-SF2", f"{tag}-L01A-FF1"
        assert {tube, second, ffpe} <= set(made), made
        assert page.get_by_text("Tube labels (PDF)").count() == 1
        assert "1 region(s) of L01 recorded so far" in main_text(page)
        snap("board-region")

        # 8. ...aliquots a snap-frozen piece on the specimen view: two aliquots with their own codes.
        visit(page, base, f"specimen?specimen={tube}", "Custody history")
        page.get_by_role("tab", name="Aliquot").click()
        page.get_by_role("textbox", name="Aliquots").fill("2")
        page.get_by_role("textbox", name="Quantity each (mg)").fill("10")
        page.get_by_role("button", name="Make aliquots").click()
        settle(page, "1 specimen aliquoted; 2 new specimens")
        aliquots = [f"{tube}.1", f"{tube}.2"]
        assert ", ".join(aliquots) in grid(page, "made")
        assert "Remaining\n\n30 / 50 mg" in main_text(page)
        snap("aliquoted")

        # 9. ...extracts DNA from the other piece: the extract's code.
        visit(page, base, f"specimen?specimen={second}", "Custody history")
        page.get_by_role("tab", name="Extract DNA/RNA").click()
        page.get_by_role("textbox", name="Quantity used from each parent (mg)").fill("25")
        page.get_by_role("textbox", name="Elution volume (µl)").fill("100")
        page.get_by_role("textbox", name="Concentration (ng/µl)").fill("50")
        page.get_by_role("button", name="Record extraction").click()
        settle(page, "1 specimen extracted; 1 new specimen")
        dna = f"{second}-DNA1"
        assert dna in grid(page, "made") and "5000 ng dna" in grid(page, "made")
        snap("extracted")

        # 10. ...records the extract's QC: the specimen view shows the values.
        visit(page, base, f"specimen?specimen={dna}", "Custody history")
        page.get_by_role("tab", name="Nucleic-acid QC").click()
        page.get_by_role("textbox", name="A260/280").fill("1.86")
        page.get_by_role("textbox", name="A260/230").fill("2.05")
        page.get_by_role("textbox", name="DIN").fill("7.4")
        page.get_by_role("button", name="Record QC").click()
        settle(page, "1 specimen QC recorded")
        qc = grid(page, "value", holding="a260 280")
        values = dict(zip(qc[2::2], qc[3::2], strict=False))
        assert values.get("a260 280") == "1.86" and values.get("a260 230") == "2.05" and values.get("din") == "7.4", qc
        assert values.get("yield ng") == "5000.0" and values.get("concentration ng/µL") == "50.0", qc
        snap("qc-recorded")

        # 11. ...stores the extract by scanning it into a -80 °C box: the specimen view gives the place.
        visit(page, base, "storage", "Box or container")
        choose(page, "Box or container", BOX)
        scan = page.locator(".st-key-storage_scan_code input")
        scan.fill(dna)
        scan.press("Enter")
        settle(page, "stored in")
        confirm = page.locator(".st-key-storage_scan_confirm").inner_text()
        assert f"{dna} stored in {BOX} " in confirm, confirm
        slot = confirm.split(f"{BOX} ", 1)[1].split()[0]
        snap("stored")
        visit(page, base, f"specimen?specimen={dna}", "Custody history")
        assert f"{BOX}:{slot}" in page.locator("[data-testid='stMetric']").filter(has_text="Location").inner_text()
        snap("stored-location")

        # 12. A PI plans the donor: the donor is offered, the extract suggested; the plan is saved as a draft.
        as_user(page, base, "pi")
        visit(page, base, "planner", "Choose one or more donors")
        pick(page, "planner_donors", donor)
        settle(page, "Rule report")
        offered = grid(page, "specimen_code")
        apart = offered.index("specimen_code") - offered.index("include")  # header cells come first
        assert dna in offered and offered[offered.index(dna) - apart] == "true", offered  # included by the suggestion
        assert {tube, *aliquots} <= set(offered), offered
        page.get_by_role("textbox", name="Plan code").fill(PLAN)
        page.get_by_role("textbox", name="Plan name").fill(f"WGS of {donor}")
        page.get_by_role("button", name="Save plan").click()
        settle(page, f"Plan {PLAN} saved as a draft")
        snap("planned")

        # 13. The coordinator records the donor's withdrawal of all consent, the material kept blocked.
        as_user(page, base, "coord")
        visit(page, base, "enrolment", "Register a donor")
        choose(page, "Donor", donor)
        page.get_by_role("tab", name="Withdrawal").click()
        page.get_by_role("textbox", name="Reason").fill("The family asked on the donor's behalf")
        page.keyboard.press("Tab")
        settle(page)
        page.get_by_role("button", name="Record the withdrawal").click()
        settle(page, f"Consent of {donor} withdrawn.")
        page.get_by_text("Consent withdrawn", exact=False).first.wait_for()
        snap("withdrawn")
        visit(page, base, f"donor?donor={donor}", "Consent history: 1 version(s), then withdrawn")
        assert "blocked from distribution, analysis plans and exports" in main_text(page)
        snap("donor-withdrawn")

        # 14. The PI's planner no longer offers the donor, and the saved plan is blocked: its exports are refused.
        as_user(page, base, "pi")
        visit(page, base, "planner", "Choose one or more donors")
        page.locator(".st-key-planner_donors input").first.click()
        page.keyboard.type(donor)
        page.get_by_text("No results").first.wait_for()
        assert page.get_by_role("option", name=donor, exact=True).count() == 0
        page.keyboard.press("Escape")
        snap("planner-refuses")
        visit(page, base, f"planner?plan={PLAN}", "Rule report")
        report = grid(page, "rule")
        assert "consent was withdrawn: the donor's material is blocked from plans" in report, report
        text = main_text(page)
        for target in export_service.TARGETS:  # each export says it is refused, none is offered for download
            assert f"{target}: plan {PLAN}: export refused" in text, target
            assert page.get_by_role("button", name=f"Download {target}", exact=False).count() == 0, target
        snap("plan-blocked")
        visit(page, base, f"specimen?specimen={dna}", "Custody history")
        assert "may not be distributed, planned or exported" in main_text(page)
        snap("specimen-blocked")
    except Exception:
        shot(page, "journey-failure")
        raise
    finally:
        context.close()

    # What the pages said, through the library: the donor and the case as written, and no export hands the donor on.
    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            record = session.exec(select(Donor).where(Donor.code == donor)).one()
            assert session.exec(select(Autopsy.case_code).where(Autopsy.donor_id == record.id)).one() == case
            assert session.exec(select(Specimen.status).where(Specimen.code == dna)).one() == "available"
            pi = session.exec(select(User).where(User.username == "pi")).one()
            with pytest.raises(ConsentError, match=f"consent withdrawn for {donor}"):
                export_service.export_files(session, actor=pi, target="tables", donor_codes=[donor])
            with pytest.raises(BiobankError):
                export_service.export_files(session, actor=pi, target="sarek", plan_code=PLAN)
            cohort = export_query.export_frames(session)
            assert donor not in set(cohort.donors["donor_code"]), "a withdrawn donor in the whole-cohort export"
            assert not cohort.samples["specimen_code"].str.startswith(tag).any()
            assert f"{donor}: consent withdrawn" in cohort.excluded
    finally:
        engine.dispose()
    assert_clean_log(server.log)
