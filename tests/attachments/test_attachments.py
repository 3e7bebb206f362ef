"""Attachments (issue 22): upload, thumbnail, EXIF stripped, hash checked on every read, bad files refused, who sees
what, a withdrawal, a failed upload leaving nothing; on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import text
from sqlmodel import select

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.domain.errors import NotFoundError, PermissionDeniedError, ValidationError
from biobank.models import Attachment
from biobank.services import attachments as service
from biobank.services import donors
from tests.conftest import DEATH
from tests.support.factories import H, collect, make_case


def jpeg(*, gps: bool = False, size: tuple[int, int] = (640, 480)) -> bytes:
    """A JPEG photo; with ``gps``, EXIF holding a position, a device and a time, as a phone writes them."""
    image = Image.new("RGB", size, (180, 40, 60))
    exif = Image.Exif()
    if gps:
        exif[0x010F] = "PhoneMaker"  # Make
        exif[0x0110] = "PhoneModel X"  # Model
        exif[0x0132] = "2026:03:14 05:10:00"  # DateTime
        exif[0x8825] = {1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.9)}  # GPSInfo
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (40, 30), (0, 0, 255, 128)).save(out, format="PNG")
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture
def case(engine, tech, store_dir) -> dict[str, str]:
    with session_scope(engine) as session:
        make_case(session, tech)
        specimen = collect(session, tech)[0]
    return {"specimen": specimen, "site": "RA-0001:L02-A", "lesion": "RA-0001:L02", "donor": "RA-0001"}


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def test_a_photo_is_stored_by_its_hash_with_a_thumbnail_and_no_exif(engine, tech, case, store_dir):
    with session_scope(engine) as session:
        info = service.attach(session, actor=tech, target="specimen", code=case["specimen"], data=jpeg(gps=True),
                              filename="IMG_0001.JPG", kind="gross_photo", caption="before sampling, ruler in view",
                              taken_at=DEATH + 3 * H, taken_by="Dr Okafor")
    assert info.media_type == "image/jpeg" and info.has_thumbnail and info.state == "active"
    assert info.created_by == "tech" and info.target == "specimen" and info.code == case["specimen"]
    assert info.donor_code == "RA-0001"
    with session_scope(engine) as session:
        got, data = service.read_attachment(session, actor=tech, attachment_id=info.id)
        _, small = service.read_attachment(session, actor=tech, attachment_id=info.id, thumbnail=True)
    assert got == info
    stored = store_dir / info.sha256[:2] / info.sha256[2:4] / info.sha256
    assert stored.read_bytes() == data and len(data) == info.size_bytes
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (640, 480)
        assert not image.getexif() and "exif" not in image.info
    assert b"PhoneModel" not in data and b"GPS" not in data
    with Image.open(io.BytesIO(small)) as thumb:
        assert max(thumb.size) == get_settings().attachment_thumbnail_px
    # the original (with its EXIF) is not kept by default: the thumbnail and the photo are the only files
    assert len(_files(store_dir)) == 2


def test_the_original_is_kept_only_when_the_setting_says_so(engine, tech, case, store_dir, monkeypatch):
    monkeypatch.setenv("BIOBANK_ATTACHMENT_KEEP_ORIGINAL", "true")
    get_settings.cache_clear()
    original = jpeg(gps=True)
    with session_scope(engine) as session:
        info = service.attach(session, actor=tech, target="sampling_site", code=case["site"], data=original,
                              filename="a.jpg", kind="gross_photo")
        _, data = service.read_attachment(session, actor=tech, attachment_id=info.id)
    assert data != original and b"PhoneModel" not in data
    kept = [p for p in _files(store_dir) if p.read_bytes() == original]
    assert len(kept) == 1 and len(_files(store_dir)) == 3


def test_a_pdf_has_no_thumbnail_and_a_png_is_kept_as_png(engine, tech, case):
    with session_scope(engine) as session:
        report = service.attach(session, actor=tech, target="donor", code="ra-0001", data=PDF,
                                filename="manifest.pdf", kind="manifest")
        image = service.attach(session, actor=tech, target="lesion", code="RA0001-L02", data=png(),
                               filename="drawing.png", kind="other")
    assert report.media_type == "application/pdf" and not report.has_thumbnail and report.code == "RA-0001"
    assert image.media_type == "image/png" and image.code == "RA-0001:L02"
    with session_scope(engine) as session, pytest.raises(NotFoundError, match="no thumbnail"):
        service.read_attachment(session, actor=tech, attachment_id=report.id, thumbnail=True)


def test_a_changed_or_missing_file_is_refused_on_read_and_reported_by_verify_store(engine, tech, case, store_dir):
    with session_scope(engine) as session:
        info = service.attach(session, actor=tech, target="specimen", code=case["specimen"], data=jpeg(),
                              filename="p.jpg", kind="gross_photo")
        assert service.verify_store(session) == []
    stored = store_dir / info.sha256[:2] / info.sha256[2:4] / info.sha256
    stored.write_bytes(stored.read_bytes()[:-10] + b"0123456789")
    with session_scope(engine) as session:
        with pytest.raises(service.AttachmentIntegrityError, match=f"attachment {info.id} .*corrupt") as refused:
            service.read_attachment(session, actor=tech, attachment_id=info.id)
        assert refused.value.value == info.id
        problems = service.verify_store(session)
    assert len(problems) == 1 and f"attachment {info.id}" in problems[0] and "corrupt" in problems[0]
    stored.unlink()
    with session_scope(engine) as session:
        with pytest.raises(service.AttachmentIntegrityError, match="missing"):
            service.read_attachment(session, actor=tech, attachment_id=info.id)
        assert "missing" in service.verify_store(session)[0]


@pytest.mark.parametrize(("data", "message"), [
    (jpeg()[:400], "corrupt or unreadable image"),
    (b"\x7fELF\x02\x01\x01" + b"\x00" * 200, "executable (ELF)"),
    (b"MZ\x90\x00" + b"\x00" * 200, "executable (Windows)"),
    (b"PK\x03\x04" + b"\x00" * 200, "archive (zip)"),
    (b"\xff\xd8\xff" + b"not really a jpeg" * 10, "corrupt or unreadable image"),
    (b"", "is empty"),
])
def test_a_corrupt_or_disguised_file_is_refused_naming_the_file_and_leaves_nothing(engine, tech, case, store_dir,
                                                                                  data, message):
    with session_scope(engine) as session, pytest.raises(ValidationError, match=re.escape(message)) as refused:
        service.attach(session, actor=tech, target="specimen", code=case["specimen"], data=data,
                       filename="photo.jpg", kind="gross_photo")
    assert refused.value.field == "file" and "photo.jpg" in str(refused.value)
    assert _files(store_dir) == []
    with session_scope(engine) as session:
        assert session.exec(select(Attachment)).all() == []


def test_the_size_limit(engine, tech, case, store_dir, monkeypatch):
    monkeypatch.setenv("BIOBANK_ATTACHMENT_MAX_BYTES", "1000")
    get_settings.cache_clear()
    with session_scope(engine) as session, pytest.raises(ValidationError, match="at most 1,000") as refused:
        service.attach(session, actor=tech, target="specimen", code=case["specimen"], data=jpeg(),
                       filename="big.jpg", kind="gross_photo")
    assert refused.value.field == "file" and _files(store_dir) == []


def test_a_failed_transaction_leaves_neither_a_row_nor_a_file(engine, tech, case, store_dir):
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        service.attach(session, actor=tech, target="specimen", code=case["specimen"], data=jpeg(),
                       filename="p.jpg", kind="gross_photo")
        assert len(_files(store_dir)) == 2
        raise RuntimeError("the commit never comes")
    assert _files(store_dir) == []
    with session_scope(engine) as session:
        assert session.exec(select(Attachment)).all() == []
    # a refused row (its time before the specimen's collection) writes no file either
    with session_scope(engine) as session, pytest.raises(ValidationError, match="cannot be before"):
        service.attach(session, actor=tech, target="specimen", code=case["specimen"], data=jpeg(),
                       filename="p.jpg", kind="gross_photo", taken_at=DEATH - timedelta(days=1))
    assert _files(store_dir) == []


def test_who_attaches_and_who_sees_identified_material(engine, tech, pi, viewer, admin, case):
    with session_scope(engine) as session, pytest.raises(PermissionDeniedError):
        service.attach(session, actor=viewer, target="donor", code="RA-0001", data=PDF, filename="f.pdf",
                       kind="other")
    with session_scope(engine) as session:
        form = service.attach(session, actor=tech, target="donor", code="RA-0001", data=PDF, filename="icf.pdf",
                              kind="consent_form")
        photo = service.attach(session, actor=tech, target="lesion", code=case["lesion"], data=jpeg(),
                               filename="l.jpg", kind="gross_photo")
    seen = {}
    with session_scope(engine) as session:
        for user in (viewer, tech, pi, admin):
            seen[user.username] = {a.id for a in service.donor_attachments(session, actor=user, donor_code="RA-0001")}
            listed = {a.id for a in service.list_attachments(session, actor=user, target="donor", code="RA-0001")}
            assert listed == seen[user.username] - {photo.id}
    assert seen == {"viewer": {photo.id}, "tech": {photo.id}, "pi": {photo.id, form.id},
                    "admin": {photo.id, form.id}}
    with session_scope(engine) as session:
        with pytest.raises(NotFoundError, match=f"attachment {form.id} not found"):
            service.read_attachment(session, actor=tech, attachment_id=form.id)
        assert service.read_attachment(session, actor=pi, attachment_id=form.id)[1] == PDF


def test_a_withdrawal_hides_every_attachment_but_from_admins(engine, tech, pi, admin, case):
    with session_scope(engine) as session:
        photo = service.attach(session, actor=tech, target="sampling_site", code=case["site"], data=jpeg(),
                               filename="s.jpg", kind="gross_photo")
        donors.withdraw_consent(session, actor=admin, donor_code="RA-0001", requested_by="next_of_kin",
                                withdrawn_at=datetime.now(UTC), reason="family request")
    with session_scope(engine) as session:
        for user in (tech, pi):
            assert service.donor_attachments(session, actor=user, donor_code="RA-0001") == []
            assert service.list_attachments(session, actor=user, target="sampling_site", code=case["site"]) == []
            with pytest.raises(NotFoundError):
                service.read_attachment(session, actor=user, attachment_id=photo.id)
        assert [a.id for a in service.donor_attachments(session, actor=admin, donor_code="RA-0001")] == [photo.id]
        with pytest.raises(NotFoundError):
            service.attach(session, actor=tech, target="donor", code="RA-0001", data=PDF, filename="x.pdf",
                           kind="other")


def test_a_retraction_is_an_audited_state_and_nothing_is_deleted(engine, tech, admin, case):
    with session_scope(engine) as session:
        photo = service.attach(session, actor=tech, target="specimen", code=case["specimen"], data=jpeg(),
                               filename="p.jpg", kind="gross_photo")
    with session_scope(engine) as session:
        done = service.retract(session, actor=tech, attachment_id=photo.id, reason="wrong specimen in the picture")
    assert done.state == "retracted" and done.retraction_reason == "wrong specimen in the picture"
    with session_scope(engine) as session:
        assert service.list_attachments(session, actor=tech, target="specimen", code=case["specimen"]) == []
        shown = service.list_attachments(session, actor=admin, target="specimen", code=case["specimen"])
        assert [(a.id, a.state) for a in shown] == [(photo.id, "retracted")]
        reasons = session.execute(text("SELECT reason FROM audit_log WHERE table_name = 'attachment' "
                                       "AND action = 'update'")).scalars().all()
        assert reasons == ["wrong specimen in the picture"]
    with pytest.raises(ValidationError, match="never deleted"), session_scope(engine) as session:
        session.execute(text("DELETE FROM attachment"))
