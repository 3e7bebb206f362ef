"""``biobank attach`` and ``biobank attachments`` (one file, a folder, list, get, retract; refusals in one line, exit
2), and backup/restore carrying the attachment store with its checksums verified; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, func, select
from typer.testing import CliRunner

from biobank.cli import app
from biobank.config import get_settings
from biobank.db import backup
from biobank.db.engine import make_engine, session_scope
from biobank.models import Attachment
from biobank.services import attachments as service
from biobank.services.auth import get_user
from tests.attachments.test_attachments import PDF, jpeg
from tests.support.dbtools import empty_database

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def rows(engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(Attachment)).one())


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


@pytest.mark.demo(1)
def test_attach_list_get_and_retract_from_the_command_line(engine, cli_login, store_dir, tmp_path):
    cli_login("tech", "admin", "pi")
    photo = tmp_path / "lesion.jpg"
    photo.write_bytes(jpeg(gps=True))
    code, out, err = run("attach", "RA0001-L01A", str(photo), "--kind", "gross_photo", "--caption", "after sampling",
                         "--taken-by", "Dr Rao", "--user", "tech", "--json")
    assert code == 0, err
    made = json.loads(out)
    assert (made["target"], made["code"], made["has_thumbnail"]) == ("sampling_site", "RA-0001:L01-A", True)
    code, out, err = run("attach", "RA-0001", str(photo), "--kind", "consent_form", "--target", "donor",
                         "--user", "tech")
    assert code == 0 and out.startswith("attachment ") and "attached to donor RA-0001" in out, err

    code, out, _ = run("attachments", "RA-0001:L01-A", "--user", "tech", "--json")
    assert code == 0 and [a["id"] for a in json.loads(out)] == [made["id"]]
    code, out, _ = run("attachments", "RA-0001", "--all", "--user", "tech")
    assert code == 0 and "RA-0001:L01-A" in out and "consent_form" not in out
    code, out, _ = run("attachments", "list", "RA-0001", "--all", "--user", "pi", "--json")
    assert code == 0 and {a["kind"] for a in json.loads(out)} == {"gross_photo", "consent_form"}

    target = tmp_path / "out.jpg"
    code, out, err = run("attachments", "get", str(made["id"]), "-o", str(target), "--user", "tech")
    assert code == 0 and "SHA-256 checked" in out, err
    assert b"GPS" not in target.read_bytes() and len(target.read_bytes()) == made["size_bytes"]
    code, _, err = run("attachments", "get", str(made["id"]), "-o", str(target), "--user", "tech")
    assert code == 2 and err.startswith("error: ") and "already exists" in err
    code, _, err = run("attachments", "get", str(made["id"]), "-o", str(tmp_path / "t.jpg"), "--thumbnail",
                       "--user", "tech")
    assert code == 0, err

    code, out, err = run("attachments", "retract", str(made["id"]), "--reason", "wrong region", "--user", "tech")
    assert code == 0 and "retracted" in out, err
    code, out, _ = run("attachments", "RA-0001:L01-A", "--user", "tech", "--json")
    assert json.loads(out) == []
    code, out, _ = run("attachments", "RA-0001:L01-A", "--user", "admin", "--json")
    assert [a["state"] for a in json.loads(out)] == ["retracted"]


@pytest.mark.demo(1)
def test_refusals_are_one_line_exit_2_and_write_nothing(engine, cli_login, store_dir, tmp_path):
    cli_login("tech")
    elf = tmp_path / "photo.jpg"
    elf.write_bytes(b"\x7fELF\x02\x01\x01" + b"\x00" * 100)
    good = tmp_path / "good.jpg"
    good.write_bytes(jpeg())
    for args in (
        ("attach", "RA0001-L01A", str(elf), "--kind", "gross_photo"),
        ("attach", "RA0001-L01A", str(good), "--kind", "selfie"),
        ("attach", "NOPE-1", str(good), "--kind", "gross_photo"),
        ("attach", "RA0001-L01A", str(tmp_path / "missing.jpg"), "--kind", "gross_photo"),
        ("attach", "RA0001-L01A", str(good), "--kind", "gross_photo", "--taken-at", "2099-01-01 10:00"),
        ("attach", "RA0001-L01A", str(good), "--kind", "gross_photo", "--caption", "x" * 600),
        ("attachments", "get", "99", "-o", str(tmp_path / "x"),),
        ("attachments", "retract", "abc", "--reason", "r"),
    ):
        code, out, err = run(*args, "--user", "tech")
        assert code == 2, (args, out, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert "executable (ELF)" in run("attach", "RA0001-L01A", str(elf), "--kind", "gross_photo", "--user",
                                     "tech")[2]
    assert rows(engine) == 0 and _files(store_dir) == []


@pytest.mark.demo(1)
def test_a_folder_is_attached_by_the_codes_its_names_start_with_all_or_nothing(engine, cli_login, store_dir,
                                                                             tmp_path):
    cli_login("tech")
    folder = tmp_path / "table-photos"
    folder.mkdir()
    (folder / "RA0001-L01A_before.jpg").write_bytes(jpeg())
    (folder / "ra0001-l01a-after.jpg").write_bytes(jpeg(size=(300, 200)))
    (folder / "RA0001-GB1.pdf").write_bytes(PDF)
    (folder / "IMG_4711.jpg").write_bytes(jpeg())
    code, out, err = run("attach", "--folder", str(folder), "--kind", "gross_photo", "--dry-run", "--user", "tech")
    assert code == 0 and "IMG_4711.jpg  ->  (matches nothing)" in out, err
    assert "RA0001-L01A_before.jpg  ->  sampling site RA-0001:L01-A" in out
    code, _, err = run("attach", "--folder", str(folder), "--kind", "gross_photo", "--user", "tech")
    assert code == 2 and "1 of 4 file name(s) start with no specimen or region code: IMG_4711.jpg" in err
    assert rows(engine) == 0 and _files(store_dir) == []

    (folder / "IMG_4711.jpg").write_bytes(b"MZ\x90\x00" + b"\x00" * 64)  # a Windows program, however named
    (folder / "IMG_4711.jpg").rename(folder / "RA0001-L01A-x.jpg")
    code, _, err = run("attach", "--folder", str(folder), "--kind", "gross_photo", "--user", "tech")
    assert code == 2 and "RA0001-L01A-x.jpg" in err and "nothing was attached" in err
    assert rows(engine) == 0 and _files(store_dir) == []

    (folder / "RA0001-L01A-x.jpg").unlink()
    code, out, err = run("attach", "--folder", str(folder), "--kind", "gross_photo", "--user", "tech", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert {(r["file"], r["target"], r["code"]) for r in report["attached"]} == {
        ("RA0001-L01A_before.jpg", "sampling_site", "RA-0001:L01-A"),
        ("ra0001-l01a-after.jpg", "sampling_site", "RA-0001:L01-A"),
        ("RA0001-GB1.pdf", "sampling_site", "RA-0001:GB1"),
    }
    assert rows(engine) == 3


@pytest.mark.demo(1)
def test_backup_and_restore_carry_the_store_and_verify_its_checksums(engine, backend, store_dir, tmp_path,
                                                                     monkeypatch):
    with session_scope(engine) as session:
        actor = get_user(session, "tech")
        made = service.attach(session, actor=actor, target="sampling_site", code="RA-0001:L01-A", data=jpeg(),
                              filename="a.jpg", kind="gross_photo")
    file = tmp_path / "bank.backup"
    result = backup.backup(engine, file)
    assert result.attachments == 2 and len(_files(backup.store_beside(file))) == 2
    before = backup.table_checksums(engine)

    restored_store = tmp_path / "restored-store"
    monkeypatch.setenv("BIOBANK_ATTACHMENTS_DIR", str(restored_store))
    get_settings.cache_clear()
    with empty_database(backend, tmp_path) as url:
        copy = make_engine(url)
        try:
            done = backup.restore(copy, file)
            assert done.attachments == 2 and backup.table_checksums(copy) == before
            with session_scope(copy) as session:
                admin = get_user(session, "admin")
                info, _data = service.read_attachment(session, actor=admin, attachment_id=made.id)
                assert service.verify_store(session) == []
            assert info.sha256 == made.sha256 and len(_files(restored_store)) == 2
        finally:
            copy.dispose()

    # a damaged copy of the store is refused before anything is restored
    damaged = _files(backup.store_beside(file))[0]
    damaged.write_bytes(b"not what it was")
    with empty_database(backend, tmp_path) as url:
        copy = make_engine(url)
        try:
            with pytest.raises(backup.BackupError, match="do not match their SHA-256"):
                backup.restore(copy, file)
            assert backup.table_counts(copy) == {}
        finally:
            copy.dispose()


@pytest.mark.demo(1)
def test_db_checksums_reports_missing_or_corrupt_attachment_files(engine, store_dir):
    with session_scope(engine) as session:
        made = service.attach(session, actor=get_user(session, "tech"), target="specimen",
                              code="RA0001-L01A-SF1", data=jpeg(), filename="a.jpg", kind="gross_photo")
    code, out, err = run("db", "checksums")
    assert code == 0 and "attachment" in out and err == ""
    (store_dir / made.sha256[:2] / made.sha256[2:4] / made.sha256).unlink()
    code, out, err = run("db", "checksums")
    assert code == 1 and f"attachment store: attachment {made.id} (RA0001-L01A-SF1, a.jpg)" in err
    assert "missing" in err
