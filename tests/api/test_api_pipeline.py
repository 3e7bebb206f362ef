"""A pipeline's round trip over the REST API with a service token, on both databases: it pulls a submitted plan's
sarek samplesheet, registers its sequencing run and posts every sample's result and files back; the plan's sequencing
state then shows each sample sequenced, every write audited under the service account, and the token revoked ends
it (401)."""

from __future__ import annotations

import csv
import hashlib
import io

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from biobank.api import create_app
from biobank.models import User
from biobank.models.core import AuditLog
from biobank.services import tokens
from tests.api.test_api import assert_problem, bearer
from tests.support.factories import wgs_plan_of_ra0001

pytestmark = pytest.mark.demo(1)


def service_token(engine, account: str, role: str) -> str:
    with Session(engine, expire_on_commit=False) as session:
        admin = session.exec(select(User).where(User.role == "admin")).first()
        issued = tokens.create_service_token(session, actor=admin, account=account, name="ci", role=role, days=30)
        session.commit()
        return issued.token


def test_a_pipeline_pulls_a_plans_sarek_sheet_and_posts_its_sequencing_results_back(engine):
    wgs_plan_of_ra0001(engine, "WGS-P", submit=True)
    client = TestClient(create_app())
    token = bearer(service_token(engine, "sarek-pipeline", "pi"))

    sheet = client.get("/api/v1/exports/sarek", params={"plan": "WGS-P", "template": True}, headers=token)
    assert sheet.status_code == 200, sheet.text
    rows = list(csv.DictReader(io.StringIO(sheet.text)))
    plan = client.get("/api/v1/plans/WGS-P", headers=token).json()
    included = {s["specimen_code"] for s in plan["specimens_detail"]}
    samples = sorted({row["sample"] for row in rows})
    assert samples and set(samples) <= included and {row["patient"] for row in rows} == {"RA-0001"}

    run = client.post("/api/v1/sequencing/runs", json={"run_id": "NVX-0042", "instrument": "NovaSeq X",
                                                      "flow_cell_id": "22FCX7LT3"}, headers=token)
    assert run.status_code == 201, run.text
    for number, sample in enumerate(samples):
        cram = f"s3://core/NVX-0042/{sample}.cram"
        body = {"plan": "WGS-P", "specimen": sample, "read_count": 800_000_000 + number, "mean_coverage": 62.5,
                "contamination_pct": 0.4,
                "files": [{"uri": cram, "checksum_kind": "sha256", "checksum": hashlib.sha256(cram.encode()).hexdigest(),
                           "size_bytes": 50_000_000_000, "file_kind": "cram"}]}
        posted = client.post("/api/v1/sequencing/runs/NVX-0042/results", json=body,
                             headers=token | {"Idempotency-Key": f"NVX-0042/{sample}"})
        assert posted.status_code == 201, posted.text
        assert posted.json()["specimen"] == sample and posted.json()["files"] == 1
        retried = client.post("/api/v1/sequencing/runs/NVX-0042/results", json=body,
                              headers=token | {"Idempotency-Key": f"NVX-0042/{sample}"})
        assert retried.status_code == 201 and retried.headers["Idempotent-Replayed"] == "true"

    state = client.get("/api/v1/plans/WGS-P/sequencing", headers=token).json()
    by_code = {s["specimen_code"]: s for s in state["samples"]}
    for number, sample in enumerate(samples):
        got = by_code[sample]
        assert got["run_id"] == "NVX-0042" and got["read_count"] == 800_000_000 + number, got
        assert got["state"] in ("sequenced", "passed") and got["results"] == 1, got
    with Session(engine) as session:
        pipeline = session.exec(select(User).where(User.username == "sarek-pipeline")).one()
        assert pipeline.is_service
        audited = session.exec(select(func.count()).select_from(AuditLog).where(AuditLog.user_id == pipeline.id)).one()
    assert audited >= 1 + len(samples)

    with Session(engine, expire_on_commit=False) as session:
        admin = session.exec(select(User).where(User.role == "admin")).first()
        tokens.revoke_token(session, actor=admin, name="ci", account="sarek-pipeline")
        session.commit()
    assert_problem(client.get("/api/v1/plans/WGS-P/sequencing", headers=token), 401, "token")
