"""Photos on the pages (issue 22): the live board attaches a photo (upload or camera) to the region being recorded,
refusals are one line naming the field with nothing written; the donor view puts a lesion's photos on the body map's
site with their thumbnails, which open the full image; the specimen view shows the photos of where it was taken; a
corrupt stored file is a message, not a traceback; identified files follow the role."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import select

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.models import Attachment
from biobank.services import attachments, collection, donors
from biobank.services.inputs import AutopsyOpen, DonorCreate, FormatRequest, LesionCreate, RegionCollect
from tests.support.apptest import assert_no_exception, make_app

DONOR, CASE = "RA-0200", "RAP-T-200"
SPECIMEN = "RA0200-L01A-SF1"


def jpeg(colour: tuple[int, int, int] = (180, 40, 40), size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    return out.getvalue()


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def store(store_dir: Path) -> Path:
    """The attachment store of the test (tests/conftest.py)."""
    return store_dir


@pytest.fixture
def running_case(engine, tech, store):
    """A case started after a death 5 h ago; lesion L01 of the liver."""
    death = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code=DONOR, sex="female", primary_diagnosis="Breast carcinoma"))
        donors.record_consent(session, actor=tech, donor_code=DONOR, given_by="donor",
                              consented_on=(death - timedelta(days=40)).date(), scopes={"research_use"})
        collection.open_autopsy(session, actor=tech, data=AutopsyOpen(donor_code=DONOR, case_code=CASE, death_at=death,
                                                                      start_at=death + timedelta(hours=1)))
        collection.add_lesion(session, actor=tech, data=LesionCreate(donor_code=DONOR, code="L01", site_code="LIVER",
                                                                     kind="metastasis"))
    return death


@pytest.fixture
def region(engine, tech, running_case):
    """Region L01-A recorded, with one snap-frozen specimen."""
    with session_scope(engine) as session:
        collection.collect_region(session, actor=tech, data=RegionCollect(
            case_code=CASE, kind="tumour_region", site_code="LIVER", lesion_code="L01", region_label="A",
            excised_at=running_case + timedelta(hours=2), formats=[FormatRequest("snap_frozen", 50, "mg")]))
    return "L01-A"


def rows(engine) -> list[Attachment]:
    with session_scope(engine) as session:
        return list(session.exec(select(Attachment).order_by(Attachment.id)).all())


def page(db_url: str, name: str, username: str, **params: str):
    at = make_app(db_url, page=name)
    at.session_state["username"] = username
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def photo_box(at, case: str = CASE):
    return f"board_photo_{case}"


def target_box(at, key: str):
    [box] = [s for s in at.selectbox if s.key.startswith(f"{key}_target_")]
    return box


def images(at) -> list[str]:
    """The captions of the images on the page."""
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


def widget(items, prefix: str):
    [found] = [w for w in items if w.key and w.key.startswith(prefix)]
    return found


def test_an_upload_on_the_board_is_attached_to_the_lesion_before_sampling_with_the_region_as_caption(db_url, engine, running_case):
    at = page(db_url, "board", "tech")
    assert_no_exception(at)
    key = photo_box(at)
    box = target_box(at, key)
    assert box.value == "lesion|RA-0200:L01"
    assert widget(at.text_input, f"{key}_caption_").value == "L01-A · Liver, before sampling"
    assert widget(at.selectbox, f"{key}_kind_").value == "gross_photo"  # a photo by default
    at.segmented_control(key=f"{key}_source").set_value("Upload a file").run()
    widget(at.get("file_uploader"), f"{key}_file_").set_value(("lesion.jpg", jpeg(), "image/jpeg"))
    widget(at.button, f"{key}_submit_").click().run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert any("lesion.jpg attached to Lesion L01" in s.value for s in at.success), [s.value for s in at.success]
    [row] = rows(engine)
    assert (row.target, row.target_code, row.kind, row.media_type) == ("lesion", "RA-0200:L01", "gross_photo", "image/jpeg")
    assert row.caption.startswith("L01-A · ") and row.thumbnail_sha256 is not None
    # the uploader is empty again for the next photo
    assert widget(at.get("file_uploader"), f"{key}_file_").value is None


def test_after_recording_a_region_the_camera_photo_goes_to_that_region(db_url, engine, running_case):
    at = page(db_url, "board", "tech")
    scope = f"{CASE}_tumour_region_L01_0"
    at.session_state[f"board_excised_{scope}"] = (running_case + timedelta(hours=2)).astimezone(get_settings().zone).replace(tzinfo=None)
    at.form_submit_button(key=f"board_submit_{scope}").click().run()
    assert not at.error, [e.value for e in at.error]
    key = photo_box(at)
    assert target_box(at, key).value == "site|RA-0200:L01-A"  # the region just recorded comes first
    assert widget(at.text_input, f"{key}_caption_").value.startswith("L01-A · ")
    widget(at.get("camera_input"), f"{key}_camera_").set_value(("image.jpg", jpeg((20, 90, 160)), "image/jpeg"))
    widget(at.button, f"{key}_submit_").click().run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    [row] = rows(engine)
    assert (row.target, row.target_code, row.kind) == ("sampling_site", "RA-0200:L01-A", "gross_photo")
    assert row.taken_at is not None  # a camera photo is taken now


def test_a_disguised_file_or_none_is_refused_in_words_naming_the_field_and_nothing_is_written(db_url, engine, running_case, store):
    at = page(db_url, "board", "tech")
    key = photo_box(at)
    at.segmented_control(key=f"{key}_source").set_value("Upload a file").run()
    widget(at.button, f"{key}_submit_").click().run()
    assert [e.value for e in at.error] == ["file: take a photo or choose a file first."]
    widget(at.get("file_uploader"), f"{key}_file_").set_value(("photo.jpg", b"MZ\x90\x00" + b"\x00" * 200, "image/jpeg"))
    widget(at.button, f"{key}_submit_").click().run()
    assert_no_exception(at)
    [message] = [e.value for e in at.error]
    assert message.startswith("File (photo.jpg) is an executable (Windows)"), message
    widget(at.get("file_uploader"), f"{key}_file_").set_value(("cut.jpg", jpeg()[:60], "image/jpeg"))
    widget(at.button, f"{key}_submit_").click().run()
    assert_no_exception(at)
    assert at.error and at.error[0].value.startswith("File (cut.jpg)"), [e.value for e in at.error]
    assert rows(engine) == []
    assert not [p for p in store.rglob("*") if p.is_file()]  # no file left behind


def test_the_donor_view_puts_a_lesions_photos_on_its_site_and_opens_the_full_image(db_url, engine, region, tech, pi):
    with session_scope(engine) as session:
        attachments.attach(session, actor=tech, target="lesion", code=f"{DONOR}:L01", data=jpeg(), filename="before.jpg",
                           kind="gross_photo", caption="L01 before sampling")
        attachments.attach(session, actor=tech, target="sampling_site", code=f"{DONOR}:L01-A", data=jpeg((0, 120, 0)),
                           filename="after.jpg", kind="gross_photo", caption="L01-A after sampling")
        attachments.attach(session, actor=tech, target="donor", code=DONOR, data=pdf(), filename="consent.pdf",
                           kind="consent_form")
    at = page(db_url, "donor", "pi", donor=DONOR)
    assert_no_exception(at)
    place = at.selectbox(key="donor_photo_site")
    assert place.value == "Liver (L01-A)"
    assert "2 photo(s)" in place.format_func(place.value)
    [body_map] = [c for c in at.get("vega_lite_chart") if '"rect"' in c.proto.spec]
    assert '"photos"' in body_map.proto.spec and "badge" in body_map.proto.spec  # the count on the site, in its tooltip
    before, after = rows(engine)[:2]
    in_gallery = [c for c in images(at)]
    assert "Gross photo of lesion L01 · L01 before sampling" in " ".join(in_gallery)
    assert "Gross photo of region L01-A · L01-A after sampling" in " ".join(in_gallery)
    at.button(key=f"donor_site_photos_open_{before.id}").click().run()
    assert_no_exception(at)
    assert any(c.startswith("before.jpg · ") for c in images(at)), images(at)  # the full image, named
    at.button(key="donor_site_photos_close").click().run()
    assert not any(c.startswith("before.jpg · ") for c in images(at))
    assert after.id is not None
    # the PI sees the consent form (identified material) among the donor's files
    assert any("consent.pdf" in m.value for m in at.markdown)


def test_a_technician_does_not_see_identified_files_and_a_corrupt_file_is_a_message(db_url, engine, region, tech, store):
    with session_scope(engine) as session:
        photo = attachments.attach(session, actor=tech, target="specimen", code=SPECIMEN, data=jpeg(), filename="he.jpg",
                                   kind="histology_image")
        attachments.attach(session, actor=tech, target="donor", code=DONOR, data=pdf(), filename="report.pdf",
                           kind="pathology_report")
    at = page(db_url, "donor", "tech", donor=DONOR)
    assert_no_exception(at)
    assert not any("report.pdf" in m.value for m in at.markdown)
    # the stored thumbnail is damaged on disk: the page says so, and goes on
    thumbnail = rows(engine)[0].thumbnail_sha256
    [path] = [p for p in store.rglob(thumbnail)]
    path.write_bytes(b"damaged")
    at = page(db_url, "specimen", "tech", specimen=SPECIMEN)
    assert_no_exception(at)
    assert any("he.jpg" in w.value for w in at.warning), [w.value for w in at.warning]
    assert photo.id is not None


def test_the_specimen_view_shows_its_own_and_its_regions_photos_and_attaches_a_histology_image(db_url, engine, region, tech):
    with session_scope(engine) as session:
        attachments.attach(session, actor=tech, target="sampling_site", code=f"{DONOR}:L01-A", data=jpeg(),
                           filename="region.jpg", kind="gross_photo", caption="L01-A at the table")
    at = page(db_url, "specimen", "tech", specimen=SPECIMEN)
    assert_no_exception(at)
    assert any("Nothing attached to this specimen." in c.value for c in at.caption)
    assert any("Where it was taken" in m.value for m in at.markdown)
    [region_row] = rows(engine)
    at.button(key=f"specimen_origin_attachments_open_{region_row.id}").click().run()
    assert any(c.startswith("region.jpg · ") for c in images(at)), images(at)
    widget(at.get("file_uploader"), "specimen_photo_file_").set_value(("he.png", png(), "image/png"))
    assert widget(at.selectbox, "specimen_photo_kind_").value == "histology_image"
    widget(at.button, "specimen_photo_submit_").click().run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    latest = rows(engine)[-1]
    assert (latest.target, latest.target_code, latest.kind, latest.media_type) == ("specimen", SPECIMEN, "histology_image", "image/png")


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 120, 200)).save(out, "PNG")
    return out.getvalue()


def test_a_withdrawal_hides_the_donors_photos_from_a_pi_but_not_from_an_admin(db_url, engine, region, tech, pi, admin):
    with session_scope(engine) as session:
        attachments.attach(session, actor=tech, target="sampling_site", code=f"{DONOR}:L01-A", data=jpeg(),
                           filename="region.jpg", kind="gross_photo")
        donors.withdraw_consent(session, actor=admin, donor_code=DONOR, requested_by="next_of_kin",
                                withdrawn_at=datetime.now(UTC) - timedelta(minutes=5), reason="family request")
    at = page(db_url, "donor", "pi", donor=DONOR)
    assert_no_exception(at)
    assert not [s for s in at.selectbox if s.key == "donor_photo_site"] and images(at) == []
    at = page(db_url, "donor", "admin", donor=DONOR)
    assert_no_exception(at)
    assert at.selectbox(key="donor_photo_site").value == "Liver (L01-A)"


def test_a_technician_retracts_an_opened_photo_with_a_reason_and_a_pi_may_not(db_url, engine, region, tech, pi):
    with session_scope(engine) as session:
        attachments.attach(session, actor=tech, target="sampling_site", code=f"{DONOR}:L01-A", data=jpeg((0, 0, 160)),
                           filename="wrong.jpg", kind="gross_photo", caption="photo of the wrong region")
    [photo] = rows(engine)
    viewer = page(db_url, "donor", "pi", donor=DONOR)
    viewer.button(key=f"donor_site_photos_open_{photo.id}").click().run()
    assert_no_exception(viewer)
    assert not [f for f in viewer.get("form") if "retract" in str(f.proto)]  # a PI may not correct entries
    at = page(db_url, "donor", "tech", donor=DONOR)
    at.button(key=f"donor_site_photos_open_{photo.id}").click().run()
    key = f"donor_site_photos_retract_{photo.id}"
    at.button(key=f"FormSubmitter:{key}-Retract").click().run()
    assert_no_exception(at)
    assert any("reason" in e.value.lower() for e in at.error), [e.value for e in at.error]
    assert rows(engine)[0].state == "active"  # refused, unchanged
    at.text_input(key=f"{key}_reason").input("wrong region")
    at.button(key=f"FormSubmitter:{key}-Retract").click().run()
    assert_no_exception(at)
    [retracted] = rows(engine)
    assert retracted.state == "retracted" and retracted.retraction_reason == "wrong region"
    assert not any(c.startswith("wrong.jpg") for c in images(at))
