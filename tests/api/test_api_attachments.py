"""Attachments over the REST API on both databases: a photo uploaded (multipart) with its EXIF stripped, listed for
its record and under its donor, read back with its SHA-256 and as a thumbnail, retracted; a disguised file and an
oversized one refused with nothing kept; a consent form hidden from a technician; a changed file never served
(409); a replayed upload kept once."""

from __future__ import annotations

import hashlib
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, func, select

from biobank.api import create_app
from biobank.config import get_settings
from biobank.models import Attachment
from tests.api.test_api import assert_problem, bearer, token_of
from tests.attachments.test_attachments import PDF, jpeg

pytestmark = pytest.mark.demo(1)


def kept(engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Attachment)).one()


def upload(client, token, data: bytes, name: str, **fields: str):
    return client.post("/api/v1/attachments", files={"file": (name, data, "application/octet-stream")},
                       data=fields, headers=token)


def test_a_photo_uploaded_listed_read_and_retracted(engine, store_dir):
    client = TestClient(create_app())
    tech = bearer(token_of(engine, "api_att", "technician"))
    code = client.get("/api/v1/specimens?limit=1&status=available", headers=tech).json()["items"][0]["code"]
    donor = client.get(f"/api/v1/specimens/{code}", headers=tech).json()["donor"]
    headers = tech | {"Idempotency-Key": "photo-1"}
    made = upload(client, headers, jpeg(gps=True), "IMG_1.JPG", code=code, kind="gross_photo", caption="ruler in view")
    assert made.status_code == 201, made.text
    info = made.json()
    assert info["target"] == "specimen" and info["code"] == code and info["has_thumbnail"]
    again = upload(client, headers, jpeg(gps=True), "IMG_1.JPG", code=code, kind="gross_photo", caption="ruler in view")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true" and kept(engine) == 1

    listed = client.get("/api/v1/attachments", params={"code": code}, headers=tech).json()
    assert [a["id"] for a in listed] == [info["id"]]
    under = client.get(f"/api/v1/donors/{donor}/attachments", headers=tech).json()
    assert info["id"] in [a["id"] for a in under]
    got = client.get(f"/api/v1/attachments/{info['id']}", headers=tech)
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert hashlib.sha256(got.content).hexdigest() == info["sha256"]
    assert b"PhoneMaker" not in got.content and not Image.open(io.BytesIO(got.content)).getexif()
    thumb = client.get(f"/api/v1/attachments/{info['id']}", params={"thumbnail": True}, headers=tech)
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.content)).size) <= 256

    assert_problem(client.post(f"/api/v1/attachments/{info['id']}/retract", json={"reason": ""}, headers=tech),
                   422, "reason")
    done = client.post(f"/api/v1/attachments/{info['id']}/retract", json={"reason": "wrong specimen"}, headers=tech)
    assert done.status_code == 200 and done.json()["state"] == "retracted"
    assert client.get("/api/v1/attachments", params={"code": code}, headers=tech).json() == []


def test_refusals_keep_nothing_and_identified_files_are_for_pis(engine, store_dir, monkeypatch):
    client = TestClient(create_app())
    tech = bearer(token_of(engine, "api_att2", "technician"))
    pi = bearer(token_of(engine, "api_pi2", "pi"))
    viewer = bearer(token_of(engine, "api_v2", "viewer"))
    code = client.get("/api/v1/specimens?limit=1", headers=tech).json()["items"][0]["code"]
    donor = client.get(f"/api/v1/specimens/{code}", headers=tech).json()["donor"]
    assert_problem(upload(client, tech, b"\x7fELF\x02\x01\x01" + bytes(200), "photo.jpg", code=code,
                          kind="gross_photo"), 422, "file")
    assert_problem(upload(client, viewer, jpeg(), "a.jpg", code=code, kind="gross_photo"), 403, "role", "viewer")
    assert_problem(upload(client, tech, jpeg(), "a.jpg", code="NO-SUCH", kind="gross_photo", target="specimen"),
                   404, "code", "NO-SUCH")
    assert_problem(upload(client, tech, jpeg(), "a.jpg", code=code, kind="selfie"), 422, "kind")
    monkeypatch.setenv("BIOBANK_ATTACHMENT_MAX_BYTES", "1000")
    get_settings.cache_clear()
    assert_problem(upload(client, tech, jpeg(), "big.jpg", code=code, kind="gross_photo"), 413, "file")
    monkeypatch.delenv("BIOBANK_ATTACHMENT_MAX_BYTES")
    get_settings.cache_clear()
    assert_problem(client.post("/api/v1/attachments", content=b"x", headers=tech | {"Content-Type": "text/plain"}),
                   415, "Content-Type")
    assert kept(engine) == 0 and not [p for p in store_dir.rglob("*") if p.is_file()]

    form = upload(client, tech, PDF, "consent.pdf", code=donor, target="donor", kind="consent_form")
    assert form.status_code == 201, form.text
    form_id = form.json()["id"]
    assert client.get(f"/api/v1/donors/{donor}/attachments", headers=tech).json() == []
    assert [a["id"] for a in client.get(f"/api/v1/donors/{donor}/attachments", headers=pi).json()] == [form_id]
    assert_problem(client.get(f"/api/v1/attachments/{form_id}", headers=tech), 404, "attachment", form_id)
    assert client.get(f"/api/v1/attachments/{form_id}", headers=pi).content == PDF

    [stored] = [p for p in store_dir.rglob("*") if p.is_file() and p.read_bytes() == PDF]
    stored.write_bytes(PDF.replace(b"1.4", b"1.7"))  # changed behind the biobank's back
    body = assert_problem(client.get(f"/api/v1/attachments/{form_id}", headers=pi), 409, "attachment", form_id)
    assert "consent.pdf" in body["detail"]
