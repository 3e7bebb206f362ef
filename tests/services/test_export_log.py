"""The export log on real exports of the demo cohort, on both databases: each export through ``export_files``
writes one record (who, when, the selection, the donors and specimens carried, each file's SHA-256 recomputed here
from the bytes); a donor's exports are found for that donor only, still after a withdrawal; a refused export
records nothing; the log is append-only, for the application's PostgreSQL login too; only administrators and PIs
read it."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import delete, func, update
from sqlmodel import Session, select

from biobank.db.engine import session_scope
from biobank.demo.cohort import load_demo
from biobank.domain.errors import BiobankError, ConsentError, NotFoundError, PermissionDeniedError
from biobank.exports import log, service
from biobank.models import AuditLog, ExportDonor, ExportRecord, User
from biobank.services import planning
from tests.resilience.test_tamper import Deployment, deployment  # noqa: F401  (the application's login, PostgreSQL)
from tests.support.dbtools import POSTGRES_URL


@pytest.fixture
def demo(engine) -> dict[str, User]:
    """Two demo donors (RA-0001, RA-0002) and the demo's accounts (admin, pi, tech, coord, viewer)."""
    with session_scope(engine) as session:
        load_demo(session, donors_count=2, seed=7)
    with Session(engine, expire_on_commit=False) as session:
        return {u.username: u for u in session.exec(select(User)).all()}


def _export(engine, actor: User, target: str, **selection) -> dict[str, bytes]:
    with session_scope(engine) as session:
        return service.export_files(session, actor=actor, target=target, **selection)


def _count(engine, model) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_an_export_is_recorded_with_who_when_the_selection_the_counts_and_each_files_sha256(engine, demo):
    before = datetime.now(UTC)
    files = _export(engine, demo["pi"], "phenopackets", donor_codes=["RA-0001"])
    after = datetime.now(UTC)
    with Session(engine) as session:
        [record] = log.export_log(session, actor=demo["admin"])
        stored = session.exec(select(ExportRecord)).one()
        audited = session.exec(select(AuditLog).where(AuditLog.table_name == "export_record")).one()
    biosamples = json.loads(files["RA-0001.json"])["biosamples"]
    assert record["user"] == "pi" and stored.user_id == demo["pi"].id
    assert before <= record["exported_at"] <= after and record["exported_at"].utcoffset().total_seconds() == 0
    assert record["target"] == "phenopackets"
    assert record["selection"] == {"donor_codes": ["RA-0001"]}
    assert (record["donor_count"], record["donors"]) == (1, ["RA-0001"])
    assert record["specimen_count"] == len(biosamples) > 0  # the specimens the file carries
    assert record["files"] == [
        {"name": name, "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        for name, content in files.items()
    ]
    assert audited.user_id == demo["pi"].id and audited.action == "insert"


def test_options_given_are_kept_in_the_selection_and_the_whole_cohort_carries_every_donor(engine, demo):
    files = _export(engine, demo["admin"], "tables", identified=True)
    with Session(engine) as session:
        [record] = log.export_log(session, actor=demo["pi"], target="tables")
    specimens = pd.read_csv(io.BytesIO(files["specimens.csv"]))
    assert record["selection"] == {"identified": True}
    assert record["donors"] == ["RA-0001", "RA-0002"] and record["donor_count"] == 2
    assert record["specimen_count"] == len(specimens)
    assert {f["name"] for f in record["files"]} == set(files)

    _export(engine, demo["pi"], "clonal", donor_codes=["RA-0001"], conipher=True)
    with Session(engine) as session:
        [record] = log.export_log(session, actor=demo["pi"], target="CLONAL")
        chosen = service.select_frames(session, target="clonal", donor_codes=["RA-0001"]).samples
    assert record["selection"] == {"donor_codes": ["RA-0001"], "assay": "wgs", "conipher": True}
    assert record["specimen_count"] == len(chosen)  # the specimens selected (the normal too, which CONIPHER omits)


def test_a_donors_exports_are_found_for_that_donor_only_and_stay_listed_after_a_withdrawal(engine, demo):
    from biobank.services import donors

    _export(engine, demo["pi"], "phenopackets", donor_codes=["RA-0001"])
    _export(engine, demo["pi"], "phenopackets", donor_codes=["RA-0002"])
    _export(engine, demo["pi"], "tables")
    with Session(engine) as session:
        first = [r["selection"] for r in log.donor_exports(session, actor=demo["pi"], donor_code="ra-0001")]
        second = [r["target"] for r in log.donor_exports(session, actor=demo["admin"], donor_code="RA-0002")]
        assert log.export_log(session, actor=demo["admin"], limit=2)[0]["target"] == "tables"  # newest first
        with pytest.raises(NotFoundError):
            log.donor_exports(session, actor=demo["admin"], donor_code="RA-9999")
    assert first == [{}, {"donor_codes": ["RA-0001"]}]
    assert second == ["tables", "phenopackets"]

    with session_scope(engine) as session:
        donors.withdraw_consent(session, actor=demo["admin"], donor_code="RA-0002", requested_by="donor",
                                withdrawn_at=datetime.now(UTC), reason="changed mind")
    with pytest.raises(ConsentError):
        _export(engine, demo["pi"], "phenopackets", donor_codes=["RA-0002"])
    with Session(engine) as session:
        after = log.donor_exports(session, actor=demo["admin"], donor_code="RA-0002")
        assert log.donors_in_log(session, actor=demo["admin"]) == ["RA-0001", "RA-0002"]
    assert [r["target"] for r in after] == ["tables", "phenopackets"]  # the recipients to tell
    assert _count(engine, ExportRecord) == 3


def test_a_refused_export_records_nothing(engine, demo):
    with pytest.raises(PermissionDeniedError):
        _export(engine, demo["tech"], "tables")
    with pytest.raises(NotFoundError):
        _export(engine, demo["pi"], "phenopackets", donor_codes=["RA-0001", "RA-9999"])
    with pytest.raises(BiobankError), session_scope(engine) as session:
        service.export_files(session, actor=demo["pi"], target="phenopackets", donor_codes=["RA-0001"])
        raise ConsentError("the caller's unit of work fails after the export", field="donor")
    with pytest.raises(PermissionDeniedError), session_scope(engine) as session:
        log.record_export(session, actor=None, target="tables", selection={}, donor_codes=["RA-0001"],
                          specimen_count=0, files={})
    assert _count(engine, ExportRecord) == _count(engine, ExportDonor) == 0


def test_the_log_can_be_neither_changed_nor_deleted(engine, demo):
    _export(engine, demo["pi"], "phenopackets", donor_codes=["RA-0001"])
    attempts = [
        (update(ExportRecord).values(target="tables"), "tg_export_record_no_update"),
        (delete(ExportRecord), "tg_export_record_no_delete"),
        (update(ExportDonor).values(donor_id=ExportDonor.donor_id), "tg_export_donor_no_update"),
        (delete(ExportDonor), "tg_export_donor_no_delete"),
    ]
    for statement, rule in attempts:
        with pytest.raises(BiobankError) as refused, session_scope(engine) as session:
            session.execute(statement)
        assert refused.value.field == rule
        assert "never changed or deleted" in str(refused.value)
    with Session(engine) as session:
        assert session.exec(select(ExportRecord.target)).all() == ["phenopackets"]
    assert _count(engine, ExportDonor) == 1


@pytest.mark.parametrize("role", ["tech", "viewer", "coord"])
def test_only_administrators_and_pis_read_the_log(engine, demo, role):
    _export(engine, demo["pi"], "phenopackets", donor_codes=["RA-0001"])
    with Session(engine) as session:
        for read in (lambda: log.export_log(session, actor=demo[role]),
                     lambda: log.donor_exports(session, actor=demo[role], donor_code="RA-0001"),
                     lambda: log.donors_in_log(session, actor=demo[role]),
                     lambda: log.export_log(session, actor=None)):
            with pytest.raises(PermissionDeniedError, match="read_export_log"):
                read()
        for reader in ("admin", "pi"):
            assert len(log.export_log(session, actor=demo[reader])) == 1


def test_bad_filters_are_refused_naming_the_field(engine, demo):
    with Session(engine) as session:
        for options, field in (({"limit": 0}, "limit"), ({"limit": 10**9}, "limit"), ({"target": "x" * 40}, "target"),
                               ({"target": "no such"}, "target")):
            with pytest.raises(BiobankError) as refused:
                log.export_log(session, actor=demo["admin"], **options)
            assert refused.value.field == field
        assert log.export_log(session, actor=demo["admin"], target="  ") == []


@pytest.mark.skipif(not POSTGRES_URL, reason="set BIOBANK_TEST_POSTGRES_URL to run the application-login cases")
def test_the_application_login_may_record_and_read_exports_but_not_change_them(deployment: Deployment):  # noqa: F811
    from sqlalchemy.exc import DBAPIError

    with session_scope(deployment.app_engine) as session:
        admin = session.exec(select(User).where(User.username == "admin")).one()
        log.record_export(session, actor=admin, target="tables", selection={}, donor_codes=["RA-0001"],
                          specimen_count=1, files={"donors.csv": b"donor_code\nRA-0001\n"})
    with Session(deployment.app_engine) as session:
        admin = session.exec(select(User).where(User.username == "admin")).one()
        [record] = log.donor_exports(session, actor=admin, donor_code="RA-0001")
    assert record["files"] == [{"name": "donors.csv", "bytes": 19,
                                "sha256": hashlib.sha256(b"donor_code\nRA-0001\n").hexdigest()}]
    for statement in ("UPDATE export_record SET target = 'fhir'", "DELETE FROM export_record",
                      "TRUNCATE export_donor", "UPDATE export_donor SET donor_id = donor_id"):
        with pytest.raises(DBAPIError, match="permission denied"), deployment.app_engine.begin() as connection:
            connection.exec_driver_sql(statement)
    with pytest.raises(DBAPIError, match="append-only"), deployment.owner_engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM export_donor")  # even the owner meets the triggers


def test_a_download_recorded_on_its_click_says_what_was_rendered(engine, demo):
    """The planner renders with ``record=False`` and records on the click with the same request: the sarek template
    is logged as a template, with its assay, and the files as served."""
    with session_scope(engine) as session:
        planning.create_plan(session, actor=demo["pi"], code="WGS-LOG", name="log", purpose="phylogeny",
                             assay="wgs", donor_codes=["RA-0001"])
    request = service.ExportRequest(target="sarek", plan_code="WGS-LOG", template=True)
    with Session(engine) as session:
        files = service.export(session, actor=demo["pi"], request=request, record=False)
    assert _count(engine, ExportRecord) == 0, "rendering alone records nothing"
    with session_scope(engine) as session:
        service.record_served(session, actor=demo["pi"], request=request, files=files)
    with Session(engine) as session:
        [record] = log.export_log(session, actor=demo["pi"])
    assert record["selection"] == {"plan_code": "WGS-LOG", "assay": "wgs", "template": True}
    assert [f["sha256"] for f in record["files"]] == [hashlib.sha256(c).hexdigest() for c in files.values()]
