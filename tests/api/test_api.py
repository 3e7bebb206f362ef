"""The REST API's first slice on both databases: bearer tokens (401), roles (403), problem details naming the
field and value, cursor pagination that walks every specimen once, ``fields=``, a withdrawn donor hidden from a PI,
and QC written once (audited as the token's user) under a replayed ``Idempotency-Key``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from biobank.api import create_app
from biobank.models import Donor, Specimen, User
from biobank.models.core import AuditLog
from biobank.queries.specimens import LIST_COLUMNS, specimen_list
from biobank.services import donors, planning, tokens

pytestmark = pytest.mark.demo(2)

PROBLEM = "application/problem+json"


def token_of(engine, username: str, role: str) -> str:
    """A personal token of a new account ``username`` with ``role``."""
    with Session(engine, expire_on_commit=False) as session:
        user = User(username=username, role=role)
        session.add(user)
        session.commit()
        token = tokens.issue_personal_token(session, user=user, name="api-test").token
        session.commit()
        return token


@pytest.fixture
def client(engine) -> TestClient:
    return TestClient(create_app())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response, status: int, field: str | None, value=None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys() and body["status"] == status
    assert body.get("field") == field
    if value is not None:
        assert body["value"] == value
    return body


def test_no_token_or_a_bad_one_is_401_and_a_role_that_may_not_is_403(engine, client):
    assert_problem(client.get("/api/v1/specimens"), 401, "token")
    assert_problem(client.get("/api/v1/donors", headers=bearer("bbk_not-a-token")), 401, "token")
    body = assert_problem(client.get("/api/v1/plans", headers=bearer("nonsense")), 401, "token")
    assert body["detail"].startswith("not a biobank token")  # the token service's own words
    viewer = token_of(engine, "api_viewer", "viewer")
    code = client.get("/api/v1/specimens?limit=1", headers=bearer(viewer)).json()["items"][0]["code"]
    body = assert_problem(client.post(f"/api/v1/specimens/{code}/qc", json={"rin": 8}, headers=bearer(viewer)),
                          403, "role", "viewer")
    assert "api_viewer" in body["detail"] and "technician" in body["detail"]  # the CLI's message


def test_unknown_codes_and_bad_values_are_problems_naming_the_field(engine, client):
    token = bearer(token_of(engine, "api_tech", "technician"))
    assert_problem(client.get("/api/v1/specimens/NO-SUCH", headers=token), 404, "code", "NO-SUCH")
    assert_problem(client.get("/api/v1/plans/NO-PLAN", headers=token), 404, "plan", "NO-PLAN")
    assert_problem(client.post("/api/v1/specimens/NO-SUCH/qc", json={"rin": 8}, headers=token), 404, "code", "NO-SUCH")
    assert_problem(client.get("/api/v1/specimens?fields=code,nope", headers=token), 422, "fields", "code,nope")
    assert_problem(client.get("/api/v1/specimens?cursor=%%%", headers=token), 422, "cursor")
    assert_problem(client.get("/api/v1/specimens?limit=501", headers=token), 422, "limit", "501")
    code = client.get("/api/v1/specimens?limit=1", headers=token).json()["items"][0]["code"]
    body = assert_problem(client.post(f"/api/v1/specimens/{code}/qc", json={"rin": 11}, headers=token), 422, "rin")
    assert "RIN" in body["detail"]


def test_pagination_walks_every_specimen_once_and_fields_chooses_columns(engine, client):
    token = bearer(token_of(engine, "api_admin", "admin"))
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 7, "fields": "code,status"} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/specimens", params=params, headers=token).json()
        assert all(set(row) == {"code", "status"} for row in page["items"]) and len(page["items"]) <= 7
        seen += [row["code"] for row in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    with Session(engine) as session:
        expected = [row["code"] for row in specimen_list(session, limit=None)]
    assert len(expected) > 14 and seen == expected
    full = client.get("/api/v1/specimens", params={"limit": 1}, headers=token).json()["items"][0]
    assert tuple(full) == LIST_COLUMNS
    donor = full["donor"]
    mine = client.get("/api/v1/specimens", params={"donor": donor, "limit": 500}, headers=token).json()["items"]
    assert mine and {row["donor"] for row in mine} == {donor}
    shown = client.get(f"/api/v1/specimens/{full['code']}", headers=token).json()
    assert shown["code"] == full["code"] and "custody" in shown and "lineage_tree" in shown


def test_a_withdrawn_donor_is_hidden_from_a_pi_but_not_from_an_admin(engine, client):
    pi, admin = bearer(token_of(engine, "api_pi", "pi")), bearer(token_of(engine, "api_admin", "admin"))
    with Session(engine, expire_on_commit=False) as session:
        donor = session.exec(select(Donor).order_by(Donor.code)).first()
        assert donor is not None
        kept = session.exec(select(Specimen.code).where(Specimen.donor_id == donor.id)).first()
        donors.withdraw_consent(session, actor=session.exec(select(User).where(User.username == "api_admin")).one(),
                                donor_code=donor.code, requested_by="next_of_kin",
                                withdrawn_at=datetime.now(UTC), reason="API test")
        session.commit()
    codes = {row["code"] for row in client.get("/api/v1/donors", headers=pi).json()}
    assert donor.code not in codes and codes
    assert donor.code in {row["code"] for row in client.get("/api/v1/donors", headers=admin).json()}
    listed = client.get("/api/v1/specimens", params={"donor": donor.code}, headers=pi).json()["items"]
    assert listed == []
    assert client.get("/api/v1/specimens", params={"donor": donor.code}, headers=admin).json()["items"]
    assert_problem(client.get(f"/api/v1/specimens/{kept}", headers=pi), 404, "code", kept)
    row = next(r for r in client.get("/api/v1/donors", headers=admin).json() if r["code"] == donor.code)
    assert row["consent_withdrawn"] is True and "name" not in row and "birth_date" not in row


def test_qc_is_written_once_under_a_replayed_idempotency_key_and_audited_as_the_token_user(engine, client):
    token = bearer(token_of(engine, "api_tech", "technician"))
    code = client.get("/api/v1/specimens?limit=1&status=available", headers=token).json()["items"][0]["code"]

    def audited() -> int:
        with Session(engine) as session:
            tech = session.exec(select(User).where(User.username == "api_tech")).one()
            return session.exec(select(func.count()).select_from(AuditLog).where(AuditLog.user_id == tech.id)).one()

    before = audited()
    headers = token | {"Idempotency-Key": "scan-0001"}
    first = client.post(f"/api/v1/specimens/{code}/qc", json={"tumour_cellularity_pct": 60}, headers=headers)
    assert first.status_code == 200, first.text
    after = audited()
    assert after > before
    replay = client.post(f"/api/v1/specimens/{code}/qc", json={"tumour_cellularity_pct": 60}, headers=headers)
    assert replay.status_code == 200 and replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert audited() == after  # nothing written twice
    other = client.post(f"/api/v1/specimens/{code}/qc", json={"tumour_cellularity_pct": 70}, headers=headers)
    assert_problem(other, 409, "Idempotency-Key", "scan-0001")
    shown = client.get(f"/api/v1/specimens/{code}", headers=token).json()
    assert shown["qc"]["tumour_cellularity_pct"] == 60


def test_plans_list_and_a_plan_with_its_rule_report(engine, client):
    token = bearer(token_of(engine, "api_pi", "pi"))
    with Session(engine, expire_on_commit=False) as session:
        pi = session.exec(select(User).where(User.username == "api_pi")).one()
        donor = session.exec(select(Donor.code).order_by(Donor.code)).first()
        planning.create_plan(session, actor=pi, code="API-1", name="API", purpose="phylogeny", assay="wgs",
                             donor_codes=[donor])
        session.commit()
    plans = client.get("/api/v1/plans", headers=token).json()
    assert [p["code"] for p in plans] == ["API-1"] and plans[0]["status"] == "draft"
    plan = client.get("/api/v1/plans/API-1", headers=token).json()
    with Session(engine) as session:
        report = planning.check_plan(session, "API-1")
    assert plan["code"] == "API-1" and plan["check"]["summary"] == report.summary()
    assert len(plan["check"]["findings"]) == len(report.to_records())


def test_serve_api_runs_uvicorn_on_the_app_factory(monkeypatch):
    from typer.testing import CliRunner

    from biobank.cli import app
    from biobank.cli import core as cli_core

    calls: list[list[str]] = []
    monkeypatch.setattr(cli_core.os, "execve", lambda path, argv, env: calls.append(argv))
    result = CliRunner().invoke(app, ["serve", "--api", "--port", "8123"])
    assert result.exit_code == 0, result.output
    [argv] = calls
    assert argv[1:5] == ["-m", "uvicorn", "biobank.api:create_app", "--factory"]
    assert argv[-2:] == ["--port", "8123"]
