"""File transfers over the REST API on both databases: every export target listed, a plan's sarek samplesheet
downloaded byte for byte as ``biobank export sarek`` writes it and recorded in the export log as the token's user, a
folder target as a zip, de-identified unless asked otherwise, the service's consent rule and refusals as problems;
imports uploaded as multipart through the import engine: a dry run writes nothing, a real import writes (read back
through the query layer) once under a replayed ``Idempotency-Key``, a file with two bad rows is a 422 naming both and
writes nothing, and unknown kinds, roles that may not, oversized and non-multipart uploads are refused."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, select
from typer.testing import CliRunner

from biobank.api import create_app
from biobank.api.routes import transfer
from biobank.exports import service as export_service
from biobank.exports.log import export_log
from biobank.imports.registry import import_kind_names
from biobank.models import Donor, Specimen, User
from biobank.queries import core as core_reads
from biobank.services import donors, planning
from tests.api.test_api import assert_problem, bearer, token_of
from tests.support.cli_auth import isolate_cli_config

pytestmark = pytest.mark.demo(2)


@pytest.fixture
def client(engine) -> TestClient:
    return TestClient(create_app())


def _user(engine, username: str) -> User:
    with Session(engine, expire_on_commit=False) as session:
        return session.exec(select(User).where(User.username == username)).one()


def _donor_codes(engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(Donor.code).order_by(Donor.code)).all())


def _plan(engine, username: str, code: str, donor: str) -> None:
    with Session(engine, expire_on_commit=False) as session:
        planning.create_plan(session, actor=_user(engine, username), code=code, name="API", purpose="phylogeny",
                             assay="wgs", donor_codes=[donor])
        session.commit()


def _unzip(response) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# --- exports ------------------------------------------------------------------------------------------------------


def test_every_export_target_is_listed_with_its_selection_media_type_and_options(engine, client):
    from biobank.cli.plans import TARGET_OPTIONS as CLI_OPTIONS

    token = bearer(token_of(engine, "api_viewer", "viewer"))
    listed = client.get("/api/v1/exports", headers=token).json()
    assert [t["target"] for t in listed] == list(export_service.TARGETS)
    by_target = {t["target"]: t for t in listed}
    assert by_target["sarek"]["media_type"] == "text/csv" and by_target["sarek"]["filename"] == "samplesheet.csv"
    assert by_target["fhir"]["media_type"] == "application/fhir+json"
    assert {by_target[t]["media_type"] for t in ("clonal", "machina", "metient", "cbioportal", "phenopackets",
                                                 "tables")} == {"application/zip"}
    assert all(t["deidentified"] and t["selection"] == ["plan", "donor", "specimen"] for t in listed)
    assert by_target["tables"]["identifying_options"] == ["identified"] and by_target["tables"]["whole_cohort"]
    assert not by_target["sarek"]["whole_cohort"]
    assert by_target["sarek"]["options"] == ["fastq_dir", "bam_dir", "template", "include_models", "assay"]
    # the options each target takes are the CLI's (biobank export TARGET --help)
    assert {t: tuple(name for name, _a, _d in options) for t, options in CLI_OPTIONS.items()} \
        == transfer.TARGET_OPTIONS
    assert_problem(client.get("/api/v1/exports"), 401, "token")


def test_a_plans_sarek_sheet_downloads_as_the_cli_writes_it_and_is_logged_under_the_token_user(
        engine, client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pi = token_of(engine, "api_pi", "pi")
    admin = token_of(engine, "api_admin", "admin")
    _plan(engine, "api_pi", "API-SAREK", _donor_codes(engine)[0])

    response = client.get("/api/v1/exports/sarek", params={"plan": "API-SAREK", "template": True},
                          headers=bearer(pi))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="API-SAREK-template-samplesheet.csv"'

    isolate_cli_config(tmp_path, monkeypatch)
    monkeypatch.setenv("BIOBANK_TOKEN", admin)  # the CLI's export, made by another user
    written = tmp_path / "samplesheet.csv"
    from biobank.cli import app

    result = CliRunner().invoke(app, ["export", "sarek", "-o", str(written), "--plan", "API-SAREK", "--template",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    assert response.content == written.read_bytes()
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows and {"patient", "sample", "status"} <= set(rows[0])

    with Session(engine) as session:
        records = export_log(session, actor=_user(engine, "api_admin"), target="sarek")
    assert [r["user"] for r in records] == ["api_admin", "api_pi"]  # newest first: the CLI's, then the API's
    api_record = records[1]
    assert api_record["selection"] == {"plan_code": "API-SAREK", "assay": "wgs", "template": True}
    assert api_record["files"] == [{"name": "samplesheet.csv", "bytes": len(response.content),
                                    "sha256": hashlib.sha256(response.content).hexdigest()}]

    # without input files or a template, the service's refusal names what to give
    body = assert_problem(client.get("/api/v1/exports/sarek", params={"plan": "API-SAREK"}, headers=bearer(pi)),
                          422, "input_files")
    assert "template=true" in body["detail"]


def test_a_folder_target_is_a_zip_and_de_identified_unless_asked(engine, client):
    admin = bearer(token_of(engine, "api_admin", "admin"))
    first = _donor_codes(engine)[0]
    with Session(engine) as session:  # a name the identified tables carry (who collected) and the others must not
        specimen_id = session.exec(select(Specimen.id).join(Donor, Donor.id == Specimen.donor_id)
                                   .where(Donor.code == first).order_by(Specimen.id)).first()
        session.execute(update(Specimen).where(Specimen.id == specimen_id)  # type: ignore[arg-type]
                        .values(collected_by="Quentin Marchbanks"))
        session.commit()

    response = client.get("/api/v1/exports/tables", params={"donor": first}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == 'attachment; filename="export-tables.zip"'
    files = _unzip(response)
    assert "export-tables/specimens.csv" in files and "export-tables/donors.csv" in files
    texts = {name: content.decode() for name, content in files.items() if name.endswith(".csv")}
    assert not any("Quentin Marchbanks" in text or "collected_by" in text.splitlines()[0] for text in texts.values())
    assert "death_at" not in texts["export-tables/donors.csv"].splitlines()[0]

    packets = client.get("/api/v1/exports/phenopackets", params={"donor": first}, headers=admin)
    assert packets.status_code == 200 and list(_unzip(packets)) == [f"export-phenopackets/{first}.json"]
    assert b"Quentin Marchbanks" not in b"".join(_unzip(packets).values())

    identified = client.get("/api/v1/exports/tables", params={"donor": first, "identified": True}, headers=admin)
    assert identified.status_code == 200, identified.text
    assert "Quentin Marchbanks" in _unzip(identified)["export-tables/specimens.csv"].decode()


def test_export_refusals_are_problems_and_a_withdrawn_donor_follows_the_service(engine, client):
    pi, tech = bearer(token_of(engine, "api_pi", "pi")), bearer(token_of(engine, "api_tech", "technician"))
    kept, withdrawn = _donor_codes(engine)
    assert_problem(client.get("/api/v1/exports/sequencer", headers=pi), 404, "target", "sequencer")
    assert_problem(client.get("/api/v1/exports/sarek", params={"plan": "NO-PLAN", "template": True}, headers=pi),
                   404, "plan", "NO-PLAN")
    body = assert_problem(client.get("/api/v1/exports/phenopackets", params={"donor": kept}, headers=tech),
                          403, "role", "technician")
    assert "export" in body["detail"]
    assert_problem(client.get("/api/v1/exports/sarek", params={"donor": kept, "conipher": True}, headers=pi),
                   422, "conipher")
    assert_problem(client.get("/api/v1/exports/fhir", params={"fhir_version": 6}, headers=pi), 422, "fhir_version")
    assert_problem(client.get("/api/v1/exports/clonal"), 401, "token")

    with Session(engine, expire_on_commit=False) as session:
        donors.withdraw_consent(session, actor=_user(engine, "api_pi"), donor_code=withdrawn,
                                requested_by="next_of_kin", withdrawn_at=datetime.now(UTC), reason="API test")
        session.commit()
    assert_problem(client.get("/api/v1/exports/phenopackets", params={"donor": withdrawn}, headers=pi), 409,
                   "donor")
    cohort = client.get("/api/v1/exports/phenopackets", headers=pi)  # the whole cohort: the withdrawn donor left out
    assert cohort.status_code == 200, cohort.text
    assert sorted(_unzip(cohort)) == [f"export-phenopackets/{kept}.json"]
    with Session(engine) as session:
        logged = export_log(session, actor=_user(engine, "api_pi"))
    assert [(r["target"], r["donors"]) for r in logged] == [("phenopackets", [kept])]  # refusals record nothing


# --- imports ------------------------------------------------------------------------------------------------------

GOOD = "code,sex,age_at_death\nRA-0101,female,61\nRA-0102,male,70\n"
TWO_BAD = "code,sex,age_at_death\nRA-0103,female,61\nRA-0104,martian,70\nRA-0105,male,seventy\n"


def _upload(client: TestClient, kind: str, text: str, token: dict[str, str], name: str = "donors.csv", **params):
    return client.post(f"/api/v1/imports/{kind}", params=params, headers=token,
                       files={"file": (name, text.encode(), "text/csv")})


def _codes(engine) -> set[str]:
    with Session(engine) as session:
        return {row["code"] for row in core_reads.donor_rows(session)}


def test_import_kinds_are_the_registrys(engine, client):
    token = bearer(token_of(engine, "api_viewer", "viewer"))
    kinds = client.get("/api/v1/imports", headers=token).json()
    assert [k["kind"] for k in kinds] == import_kind_names()
    donors_kind = next(k for k in kinds if k["kind"] == "donors")
    assert donors_kind["columns"][0] == {"name": "code", "required": True, "type": "text", "vocabulary": [],
                                         "help": donors_kind["columns"][0]["help"]}
    assert next(k for k in kinds if k["kind"] == "collection_log")["mapped"] is True


def test_a_dry_run_writes_nothing_and_a_real_import_writes_once_under_a_replayed_key(engine, client):
    admin = bearer(token_of(engine, "api_admin", "admin"))
    before = _codes(engine)
    dry = _upload(client, "donors", GOOD, admin, dry_run=True)
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert (report["rows"], report["inserted"], report["written"], report["dry_run"]) == (2, 2, False, True)
    assert report["errors"] == [] and report["summary"].endswith("dry run, nothing was written")
    assert _codes(engine) == before

    headers = admin | {"Idempotency-Key": "import-0001"}
    first = _upload(client, "donors", GOOD, headers)  # dry_run defaults to false, as the CLI
    assert first.status_code == 200, first.text
    assert (first.json()["inserted"], first.json()["written"]) == (2, True)
    assert _codes(engine) == before | {"RA-0101", "RA-0102"}
    replay = _upload(client, "donors", GOOD, headers)
    assert replay.status_code == 200 and replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert_problem(_upload(client, "donors", GOOD.replace("61", "62"), headers), 409, "Idempotency-Key",
                   "import-0001")
    again = _upload(client, "donors", GOOD, admin)  # without the key: the engine's own refusal of a second create
    assert again.status_code == 422 and {e["row"] for e in again.json()["errors"]} == {2, 3}
    with Session(engine) as session:
        created_by = session.exec(select(Donor.created_by_id).where(Donor.code == "RA-0101")).one()
    assert created_by == _user(engine, "api_admin").id


def test_a_file_with_two_bad_rows_is_a_422_naming_both_and_writes_nothing(engine, client):
    admin = bearer(token_of(engine, "api_admin", "admin"))
    before = _codes(engine)
    for dry_run in (False, True):
        body = assert_problem(_upload(client, "donors", TWO_BAD, admin, dry_run=dry_run), 422, "file", "donors.csv")
        assert body["error_count"] == 2 and len(body["errors"]) == 2
        assert [(e["row"], e["column"], e["value"]) for e in body["errors"]] == [
            (3, "sex", "martian"), (4, "age_at_death", "seventy")]
        assert body["report"]["written"] is False and "nothing was written" in body["detail"]
        assert _codes(engine) == before  # not even the good row
    keyed = admin | {"Idempotency-Key": "import-0002"}
    assert _upload(client, "donors", TWO_BAD, keyed).status_code == 422
    fixed = _upload(client, "donors", TWO_BAD.replace("martian", "male").replace("seventy", "70"), keyed)
    assert fixed.status_code == 200, fixed.text  # the refusal released its key with everything else
    assert _codes(engine) == before | {"RA-0103", "RA-0104", "RA-0105"}


def test_import_refusals(engine, client, monkeypatch: pytest.MonkeyPatch):
    admin = bearer(token_of(engine, "api_admin", "admin"))
    viewer = bearer(token_of(engine, "api_viewer", "viewer"))
    assert_problem(_upload(client, "nonsense", GOOD, admin), 404, "kind", "nonsense")
    body = assert_problem(_upload(client, "donors", GOOD, viewer, dry_run=True), 403, "role", "viewer")
    assert "enter" in body["detail"]
    assert_problem(_upload(client, "donors", GOOD, {}), 401, "token")
    assert_problem(client.post("/api/v1/imports/donors", content=GOOD.encode(),
                               headers=admin | {"Content-Type": "text/csv"}), 415, "Content-Type", "text/csv")
    assert_problem(_upload(client, "collection_log", GOOD, admin), 422, "map")
    bad_map = client.post("/api/v1/imports/collection_log", headers=admin, files={
        "file": ("log.csv", GOOD.encode(), "text/csv"), "map": ("map.toml", b"not = [toml", "application/toml")})
    assert "TOML" in assert_problem(bad_map, 422, "map")["detail"]
    assert_problem(client.post("/api/v1/imports/donors", headers=admin, files={
        "file": ("donors.csv", GOOD.encode(), "text/csv"), "map": ("map.toml", b"", "application/toml")}), 422, "map")
    assert_problem(_upload(client, "donors", GOOD, admin, create_containers=True), 422, "create_containers")
    monkeypatch.setattr(transfer, "MAX_UPLOAD_BYTES", 16)
    assert_problem(_upload(client, "donors", GOOD, admin), 413, "file", 16)
    assert _codes(engine).isdisjoint({"RA-0101", "RA-0102"})


def test_the_openapi_document_declares_the_transfers_media_types(engine, client):
    document = client.get("/api/v1/openapi.json").json()
    download = document["paths"]["/api/v1/exports/{target}"]["get"]["responses"]
    assert set(download["200"]["content"]) == {"text/csv", "application/fhir+json", "application/zip"}
    upload = document["paths"]["/api/v1/imports/{kind}"]["post"]
    assert set(upload["requestBody"]["content"]) == {"multipart/form-data"}
    assert {"413", "415", "422"} <= set(upload["responses"])
