"""The Exports page (administrators only): every recorded export with who, when, the target, the selection, the counts
and each file's SHA-256, filtered by target and by donor; and a planner download is recorded when it is clicked,
with the SHA-256 of the files served."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from biobank.db.engine import session_scope
from biobank.demo.cohort import load_demo
from biobank.exports import log, service
from biobank.models import User
from biobank.services import donors, planning
from dashboards.shell.navigation import PAGES
from tests.support.apptest import assert_no_exception, make_app


@pytest.fixture
def demo(engine) -> dict[str, User]:
    with session_scope(engine) as session:
        load_demo(session, donors_count=2, seed=7)
    with Session(engine, expire_on_commit=False) as session:
        return {u.username: u for u in session.exec(select(User)).all()}


def page(db_url: str, username: str = "admin"):
    at = make_app(db_url, page="exports")
    at.session_state["username"] = username
    return at.run()


def test_only_administrators_have_the_page():
    [spec] = [spec for spec in PAGES if spec.module == "exports"]
    assert spec.roles == {"admin"} and spec.section == "Admin"


def test_the_page_lists_exports_with_their_files_and_filters_by_target_and_donor(db_url, engine, demo):
    with session_scope(engine) as session:
        packets = service.export_files(session, actor=demo["pi"], target="phenopackets", donor_codes=["RA-0002"])
        service.export_files(session, actor=demo["admin"], target="tables")
    with session_scope(engine) as session:
        donors.withdraw_consent(session, actor=demo["admin"], donor_code="RA-0002", requested_by="donor",
                                withdrawn_at=datetime.now(UTC), reason="changed mind")
    at = page(db_url)
    assert_no_exception(at)
    assert at.title[0].value == "Exports"
    rows = at.dataframe[0].value
    assert list(rows["target"]) == ["tables", "phenopackets"] and list(rows["who"]) == ["admin", "pi"]
    assert list(rows["donors"]) == [2, 1] and rows["donor codes"].iloc[1] == "RA-0002"
    assert rows["selection"].iloc[1] == "donor_codes=RA-0002"
    files = at.dataframe[1].value
    shown = files[files["file"] == "RA-0002.json"].iloc[0]
    assert shown["sha256"] == hashlib.sha256(packets["RA-0002.json"]).hexdigest()
    assert shown["bytes"] == len(packets["RA-0002.json"])

    at = at.selectbox(key="exports_target").set_value("phenopackets").run()
    assert list(at.dataframe[0].value["target"]) == ["phenopackets"]
    at.selectbox(key="exports_target").set_value("all")
    at = at.selectbox(key="exports_donor").set_value("RA-0002").run()  # withdrawn: the recipients to tell
    assert_no_exception(at)
    assert list(at.dataframe[0].value["target"]) == ["tables", "phenopackets"]


def test_a_planner_download_is_recorded_when_clicked_with_the_files_served(db_url, engine, demo, monkeypatch):
    served: dict[str, bytes] = {}  # what each download button hands the browser, by media file id
    store = MemoryMediaFileStorage.load_and_get_id

    def keep(self, path_or_data, mimetype, kind, filename=None):  # type: ignore[no-untyped-def]
        file_id = store(self, path_or_data, mimetype, kind, filename)
        served[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    with session_scope(engine) as session:
        planning.create_plan(session, actor=demo["pi"], code="WGS-1", name="Multiregional WGS", purpose="phylogeny",
                             assay="wgs", donor_codes=["RA-0001"])
    at = make_app(db_url, page="planner")
    at.query_params["plan"] = "WGS-1"
    at.session_state["username"] = "pi"
    at = at.run()
    assert_no_exception(at)
    button = at.download_button(key="planner_dl_phenopackets")
    with zipfile.ZipFile(io.BytesIO(served[button.proto.url.rsplit("/", 1)[1].split(".")[0]])) as archive:
        content = archive.read("WGS-1-phenopackets/RA-0001.json")  # the file inside the zip the browser gets
    with Session(engine) as session:
        assert log.export_log(session, actor=demo["admin"]) == []  # shown is not exported
    at = button.click().run()
    assert_no_exception(at)
    with Session(engine) as session:
        [record] = log.export_log(session, actor=demo["admin"])
    assert (record["user"], record["target"], record["selection"]) == ("pi", "phenopackets", {"plan_code": "WGS-1"})
    assert record["donors"] == ["RA-0001"] and record["specimen_count"] >= 3
    assert record["files"] == [{"name": "RA-0001.json", "bytes": len(content),
                                "sha256": hashlib.sha256(content).hexdigest()}]
