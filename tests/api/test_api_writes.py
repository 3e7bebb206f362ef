"""The REST API's writes for a freezer scanner, a sequencing core and label printing, on both databases: each route
writes what its CLI command writes (read back through the query layer), audited as the token's user, once under a
replayed ``Idempotency-Key``; a viewer's 403, an occupied position's 409 and a bad body's 422 write nothing; labels
come back as a PDF or ZPL download, and a withdrawn donor's labels are a 404 for a PI."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from biobank.api import create_app
from biobank.models import AnalysisPlan, Specimen, User
from biobank.models.core import AuditLog
from biobank.models.plans import SequencingFile, SequencingResult, SequencingRun
from biobank.queries import core as core_reads
from biobank.queries import sequencing as seq_reads
from biobank.queries import storage as storage_reads
from biobank.services import donors, specimens
from tests.api.test_api import assert_problem, bearer, token_of
from tests.support.factories import wgs_plan_of_ra0001

pytestmark = pytest.mark.demo(2)

#: A -80 °C 9x9 box of the demo cohort with three specimens in it: the scanner's target.
BOX = "BOX80-002"
#: A stored, available snap-frozen specimen of the demo cohort (in BOX80-001).
STORED = "RA0001-L02A-SF1"
#: A frozen DNA extract to split into fresh, unstored aliquots.
DNA_PARENT = "RA0001-L02A-SF1-DNA1"
MD5 = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def client(engine) -> TestClient:
    return TestClient(create_app())


def audited(engine, username: str) -> int:
    """How many audit rows name ``username`` as the author."""
    with Session(engine) as session:
        user = session.exec(select(User).where(User.username == username)).one()
        return session.exec(select(func.count()).select_from(AuditLog).where(AuditLog.user_id == user.id)).one()


def new_aliquots(engine, count: int) -> list[str]:
    """``count`` new aliquots of the DNA extract, not stored anywhere yet (made by the aliquot service)."""
    with Session(engine, expire_on_commit=False) as session:
        tech = User(username=f"bench{count}", role="technician")
        session.add(tech)
        session.flush()
        parent = session.exec(select(Specimen).where(Specimen.code == DNA_PARENT)).one()
        portion = (parent.quantity_remaining or 0) / (count + 1)
        children = specimens.aliquot(session, actor=tech, parent_code=DNA_PARENT, portions=[portion] * count)
        session.commit()
        return [c.code for c in children]


def box(engine) -> tuple[list[str], list[str]]:
    """The occupied and the free positions of the target box, read through the storage queries."""
    with Session(engine) as session:
        view = storage_reads.box_view(session, BOX)
    occupied = sorted(c["position"] for c in view["cells"])
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    every = [f"{letters[r]}{c}" for r in range(view["rows"]) for c in range(1, view["cols"] + 1)]
    return occupied, [p for p in every if p not in occupied]


def where(engine, code: str) -> dict:
    with Session(engine) as session:
        return storage_reads.find(session, code)


def test_store_writes_the_location_audited_once_under_a_replayed_key(engine, client):
    tech = bearer(token_of(engine, "api_tech", "technician"))
    first, second = new_aliquots(engine, 2)
    _occupied, free = box(engine)
    before = audited(engine, "api_tech")
    headers = tech | {"Idempotency-Key": "store-0001"}
    body = {"container": BOX, "position": free[0]}
    done = client.post(f"/api/v1/specimens/{first}/store", json=body, headers=headers)
    assert done.status_code == 200, done.text
    stored = where(engine, first)
    assert stored["container"] == BOX and stored["position"] == free[0]
    assert done.json()["code"] == first and done.json()["location"] == stored["location"]
    after = audited(engine, "api_tech")
    assert after > before
    replay = client.post(f"/api/v1/specimens/{first}/store", json=body, headers=headers)
    assert replay.status_code == 200 and replay.json() == done.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert audited(engine, "api_tech") == after  # written once
    custody = client.get(f"/api/v1/specimens/{first}", headers=tech).json()["custody"]
    assert [e["kind"] for e in custody].count("stored") == 1 and custody[-1]["user"] == "api_tech"

    # no position: the service picks the first free one, as `storage store` does
    done = client.post(f"/api/v1/specimens/{second}/store", json={"container": BOX}, headers=tech)
    assert done.status_code == 200, done.text
    assert where(engine, second)["position"] == done.json()["position"] == free[1]


def test_store_refusals_write_nothing(engine, client):
    tech = bearer(token_of(engine, "api_tech", "technician"))
    viewer = bearer(token_of(engine, "api_viewer", "viewer"))
    (code,) = new_aliquots(engine, 1)
    occupied, free = box(engine)
    baseline = audited(engine, "api_tech"), audited(engine, "api_viewer")
    body = assert_problem(client.post(f"/api/v1/specimens/{code}/store", json={"container": BOX, "position": free[0]},
                                      headers=viewer), 403, "role", "viewer")
    assert "api_viewer" in body["detail"]
    body = assert_problem(client.post(f"/api/v1/specimens/{code}/store",
                                      json={"container": BOX, "position": occupied[0]}, headers=tech),
                          409, "position", occupied[0])
    assert occupied[0] in body["detail"]
    assert_problem(client.post(f"/api/v1/specimens/{code}/store", json={"container": BOX, "position": "Z99"},
                               headers=tech), 422, "position", "Z99")
    assert_problem(client.post(f"/api/v1/specimens/{code}/store", json={"container": "NO-BOX"}, headers=tech),
                   404, "container", "NO-BOX")
    assert_problem(client.post("/api/v1/specimens/NO-SUCH/store", json={"container": BOX}, headers=tech),
                   404, "code", "NO-SUCH")
    assert_problem(client.post(f"/api/v1/specimens/{code}/store", json={"position": "A1"}, headers=tech),
                   422, "container")
    assert_problem(client.post(f"/api/v1/specimens/{code}/store",
                               json={"container": BOX, "when": "2026-01-01T10:00:00"}, headers=tech), 422, "when")
    assert_problem(client.post(f"/api/v1/specimens/{code}/store", json={"container": BOX, "positon": "A1"},
                               headers=tech), 422, "positon")
    assert_problem(client.post(f"/api/v1/specimens/{code}/store", json={"container": "BOX\u0000"}, headers=tech),
                   422, "container")  # PostgreSQL cannot hold a NUL: refused before the database sees it
    assert where(engine, code)["stored"] is False
    assert (audited(engine, "api_tech"), audited(engine, "api_viewer")) == baseline
    assert box(engine)[0] == occupied


def test_move_is_read_back_from_the_specimen_and_an_occupied_position_is_a_409(engine, client):
    tech = bearer(token_of(engine, "api_tech", "technician"))
    viewer = bearer(token_of(engine, "api_viewer", "viewer"))
    occupied, free = box(engine)
    origin = where(engine, STORED)
    assert origin["stored"] and origin["container"] != BOX
    baseline = audited(engine, "api_tech"), audited(engine, "api_viewer")

    assert_problem(client.post(f"/api/v1/specimens/{STORED}/move", json={"container": BOX, "position": free[0]},
                               headers=viewer), 403, "role", "viewer")
    assert_problem(client.post(f"/api/v1/specimens/{STORED}/move",
                               json={"container": BOX, "position": occupied[0], "reason": "rack swap"},
                               headers=tech), 409, "position", occupied[0])
    assert where(engine, STORED)["location"] == origin["location"]
    assert (audited(engine, "api_tech"), audited(engine, "api_viewer")) == baseline

    headers = tech | {"Idempotency-Key": "move-0001"}
    body = {"container": BOX, "position": free[0], "reason": "rack swap"}
    done = client.post(f"/api/v1/specimens/{STORED}/move", json=body, headers=headers)
    assert done.status_code == 200, done.text
    shown = client.get(f"/api/v1/specimens/{STORED}", headers=tech).json()
    assert shown["location"] == done.json()["location"] and shown["location"].endswith(f"{BOX}:{free[0]}")
    moved = [e for e in shown["custody"] if e["kind"] == "moved"]
    assert len(moved) == 1 and moved[0]["user"] == "api_tech" and moved[0]["from"] == origin["location"]
    after = audited(engine, "api_tech")
    assert after > baseline[0]
    replay = client.post(f"/api/v1/specimens/{STORED}/move", json=body, headers=headers)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == done.json() and audited(engine, "api_tech") == after
    # the same key with another body is a conflict, not a second move
    other = client.post(f"/api/v1/specimens/{STORED}/move", json=body | {"position": free[1]}, headers=headers)
    assert_problem(other, 409, "Idempotency-Key", "move-0001")
    assert where(engine, STORED)["position"] == free[0]


def test_checkout_and_return_write_the_checkout_record(engine, client):
    tech = bearer(token_of(engine, "api_tech", "technician"))
    viewer = bearer(token_of(engine, "api_viewer", "viewer"))
    origin = where(engine, STORED)
    with Session(engine) as session:
        thawed = session.exec(select(Specimen.freeze_thaw_count).where(Specimen.code == STORED)).one()

    assert_problem(client.post(f"/api/v1/specimens/{STORED}/checkout", json={"purpose": "sections"},
                               headers=viewer), 403, "role", "viewer")
    out = client.post(f"/api/v1/specimens/{STORED}/checkout", json={"purpose": "sections"},
                      headers=tech | {"Idempotency-Key": "out-1"})
    assert out.status_code == 200, out.text
    record = out.json()
    assert record["code"] == STORED and record["checked_out_by"] == "api_tech" and record["purpose"] == "sections"
    assert record["from_location"] == origin["location"] and record["returned_at"] is None
    with Session(engine) as session:
        [row] = [r for r in storage_reads.checkouts(session) if r["code"] == STORED]
    assert row["checked_out_by"] == "api_tech"
    again = client.post(f"/api/v1/specimens/{STORED}/checkout", json={"purpose": "sections"},
                        headers=tech | {"Idempotency-Key": "out-1"})
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == record
    assert_problem(client.post(f"/api/v1/specimens/{STORED}/checkout", headers=tech), 409, "code", STORED)
    assert_problem(client.post("/api/v1/specimens/NO-SUCH/checkout", headers=tech), 404, "code", "NO-SUCH")

    back = client.post(f"/api/v1/specimens/{STORED}/return", json={"note": "back from the cryostat"}, headers=tech)
    assert back.status_code == 200, back.text
    record = back.json()
    assert record["returned_by"] == "api_tech" and record["returned_at"] and record["kept_frozen"] is False
    assert record["location"] == origin["location"] and record["freeze_thaw_count"] == thawed + 1
    with Session(engine) as session:
        assert [r for r in storage_reads.checkouts(session) if r["code"] == STORED] == []
        detail = core_reads.specimen_detail(session, STORED)
    assert detail["status"] == "available" and detail["freeze_thaw_count"] == thawed + 1
    assert detail["custody"][-1]["kind"] == "returned" and "back from the cryostat" in detail["custody"][-1]["note"]
    assert_problem(client.post(f"/api/v1/specimens/{STORED}/return", json={}, headers=tech), 422, "code", STORED)


def test_a_sequencing_run_and_results_are_read_back_from_the_plans_sequencing_state(engine, client):
    wgs_plan_of_ra0001(engine, submit=True)
    tech = bearer(token_of(engine, "api_tech", "technician"))
    viewer = bearer(token_of(engine, "api_viewer", "viewer"))
    with Session(engine) as session:
        plan_id = session.exec(select(AnalysisPlan.id).where(AnalysisPlan.code == "WGS-1")).one()
        samples = seq_reads.sample_states(session, plan_ids=[plan_id])
    assert set(samples["state"]) == {"submitted"}
    dna = sorted(samples.loc[samples["material_type"] == "dna", "specimen_code"])
    good, open_ = dna[0], dna[1]

    run = {"run_id": "RUN-1", "instrument": "NovaSeq X", "flow_cell": "10B",
           "started_at": "2026-11-01T09:00:00+00:00"}
    assert_problem(client.post("/api/v1/sequencing/runs", json=run, headers=viewer), 403, "role", "viewer")
    done = client.post("/api/v1/sequencing/runs", json=run, headers=tech | {"Idempotency-Key": "run-1"})
    assert done.status_code == 201, done.text
    assert done.json()["run_id"] == "RUN-1" and done.json()["flow_cell"] == "10B"
    replay = client.post("/api/v1/sequencing/runs", json=run, headers=tech | {"Idempotency-Key": "run-1"})
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert_problem(client.post("/api/v1/sequencing/runs", json=run, headers=tech), 409, "run_id", "RUN-1")
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(SequencingRun)).one() == 1

    sha = hashlib.sha256(b"crai").hexdigest()
    result = {"plan": "WGS-1", "specimen": good, "read_count": 900_000_000, "mean_coverage": 61,
              "contamination_pct": 0.5, "purity": 0.6, "ploidy": 2,
              "files": [{"uri": f"s3://core/RUN-1/{good}.cram", "checksum_kind": "md5", "checksum": MD5,
                         "size_bytes": 1024, "file_kind": "cram"},
                        f"s3://core/RUN-1/{good}.crai:sha256:{sha}"]}
    assert_problem(client.post("/api/v1/sequencing/runs/RUN-1/results", json=result, headers=viewer),
                   403, "role", "viewer")
    headers = tech | {"Idempotency-Key": "result-1"}
    done = client.post("/api/v1/sequencing/runs/RUN-1/results", json=result, headers=headers)
    assert done.status_code == 201, done.text
    assert done.json() | {"id": None} == {"id": None, "plan": "WGS-1", "specimen": good, "run_id": "RUN-1",
                                          "outcome": "passed", "qc_note": "automatic QC passed", "files": 2}
    after = audited(engine, "api_tech")
    replay = client.post("/api/v1/sequencing/runs/RUN-1/results", json=result, headers=headers)
    assert replay.status_code == 201 and replay.json() == done.json() and audited(engine, "api_tech") == after
    with Session(engine) as session:
        files = session.exec(select(SequencingFile).order_by(col(SequencingFile.uri))).all()
        assert session.exec(select(func.count()).select_from(SequencingResult)).one() == 1
    assert [(f.checksum_kind, f.size_bytes) for f in files] == [("sha256", None), ("md5", 1024)]

    # refusals name the field and write nothing
    assert_problem(client.post("/api/v1/sequencing/runs/RUN-1/results", json=result, headers=tech),
                   409, "run_id", "RUN-1")
    assert_problem(client.post("/api/v1/sequencing/runs/NO-RUN/results", json=result | {"specimen": open_},
                               headers=tech), 404, "run_id", "NO-RUN")
    assert_problem(client.post("/api/v1/sequencing/runs/RUN-1/results", json=result | {"plan": "NO-PLAN"},
                               headers=tech), 404, "plan", "NO-PLAN")
    bad_file = result | {"specimen": open_, "files": [{"uri": "s3://x/a.bam", "checksum_kind": "md5",
                                                       "checksum": "abc"}]}
    assert_problem(client.post("/api/v1/sequencing/runs/RUN-1/results", json=bad_file, headers=tech),
                   422, "checksum", "abc")
    assert_problem(client.post("/api/v1/sequencing/runs/RUN-1/results",
                               json=result | {"specimen": open_, "contamination_pct": 120}, headers=tech),
                   422, "contamination_pct", 120)

    # a result QC cannot judge yet, then a person's verdict
    done = client.post("/api/v1/sequencing/runs/RUN-1/results",
                       json={"plan": "WGS-1", "specimen": open_, "mean_coverage": 60}, headers=tech)
    assert done.status_code == 201 and done.json()["outcome"] == "sequenced", done.text
    verdict = {"plan": "WGS-1", "specimen": open_, "outcome": "failed_qc", "note": "low library complexity"}
    assert_problem(client.post("/api/v1/sequencing/runs/RUN-1/outcome", json=verdict, headers=viewer),
                   403, "role", "viewer")
    assert_problem(client.post("/api/v1/sequencing/runs/RUN-1/outcome", json=verdict | {"note": None},
                               headers=tech), 422, "note")
    done = client.post("/api/v1/sequencing/runs/RUN-1/outcome", json=verdict, headers=tech)
    assert done.status_code == 200 and done.json()["outcome"] == "failed_qc", done.text
    assert_problem(client.post("/api/v1/sequencing/runs/RUN-1/outcome", json=verdict | {"outcome": "passed"},
                               headers=tech), 409, "outcome", "failed_qc")

    status = client.get("/api/v1/plans/WGS-1/sequencing", headers=viewer)
    assert status.status_code == 200, status.text
    shown = status.json()
    by_code = {r["specimen_code"]: r for r in shown["samples"]}
    assert shown["plan"] == "WGS-1" and set(by_code) == set(samples["specimen_code"])
    assert by_code[good]["state"] == "passed" and by_code[good]["mean_coverage"] == 61
    assert by_code[good]["read_count"] == 900_000_000 and by_code[good]["run_id"] == "RUN-1"
    assert by_code[open_]["state"] == "failed_qc" and by_code[open_]["qc_note"] == "low library complexity"
    assert [r["failed_specimen_code"] for r in shown["replacements"]] == [open_]
    with Session(engine) as session:
        states = seq_reads.sample_states(session, plan_ids=[plan_id]).set_index("specimen_code")["state"]
    assert {code: row["state"] for code, row in by_code.items()} == states.to_dict()
    assert_problem(client.get("/api/v1/plans/NO-PLAN/sequencing", headers=viewer), 404, "plan", "NO-PLAN")


def test_labels_download_as_pdf_or_zpl_and_a_withdrawn_donors_are_not_found(engine, client):
    pi = bearer(token_of(engine, "api_pi", "pi"))
    admin = bearer(token_of(engine, "api_admin", "admin"))
    with Session(engine) as session:
        codes = list(session.exec(select(Specimen.code).where(col(Specimen.code).startswith("RA0001-"))
                                  .order_by(Specimen.code).limit(3)))
        hidden = session.exec(select(Specimen.code).where(col(Specimen.code).startswith("RA0002-"))).first()
    pdf = client.post("/api/v1/labels", json={"codes": codes, "format": "pdf"}, headers=pi)
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-disposition"].startswith("attachment") and "labels.pdf" in pdf.headers[
        "content-disposition"]
    zpl = client.post("/api/v1/labels", json={"codes": codes, "format": "zpl", "label_format": "cassette"},
                      headers=pi)
    assert zpl.status_code == 200, zpl.text
    assert zpl.headers["content-type"].startswith("text/plain") and zpl.text.startswith("^XA")
    assert zpl.text.count("^XA") == len(codes) and all(code in zpl.text for code in codes)
    assert "labels.zpl" in zpl.headers["content-disposition"]
    with Session(engine) as session:
        case_code = core_reads.specimen_detail(session, codes[0])["case"]
    case = client.post("/api/v1/labels", json={"case": case_code, "format": "zpl"}, headers=pi)
    assert case.status_code == 200 and case.text.count("^XA") > len(codes), case.text[:200]

    assert_problem(client.post("/api/v1/labels", json={"codes": ["NO-SUCH"]}, headers=pi), 404, "code", "NO-SUCH")
    assert_problem(client.post("/api/v1/labels", json={"codes": codes, "label_format": "mug"}, headers=pi),
                   422, "label_format", "mug")
    assert_problem(client.post("/api/v1/labels", json={"codes": codes, "format": "png"}, headers=pi), 422, "format")
    assert_problem(client.post("/api/v1/labels", json={}, headers=pi), 422, "codes")
    assert_problem(client.post("/api/v1/labels", json={"codes": codes, "case": "X"}, headers=pi), 422, "case")

    with Session(engine, expire_on_commit=False) as session:
        actor = session.exec(select(User).where(User.username == "api_admin")).one()
        donors.withdraw_consent(session, actor=actor, donor_code="RA-0002", requested_by="next_of_kin",
                                withdrawn_at=datetime.now(UTC), reason="API test")
        session.commit()
        case_code = core_reads.specimen_detail(session, hidden)["case"]
    assert_problem(client.post("/api/v1/labels", json={"codes": [codes[0], hidden]}, headers=pi),
                   404, "code", hidden)
    assert_problem(client.post("/api/v1/labels", json={"case": case_code}, headers=pi), 404, "case", case_code)
    assert_problem(client.post("/api/v1/labels", json={"planned": case_code}, headers=pi),
                   404, "planned", case_code)
    shown = client.post("/api/v1/labels", json={"codes": [hidden], "format": "zpl"}, headers=admin)
    assert shown.status_code == 200 and hidden in shown.text


def test_the_openapi_document_declares_the_label_download_and_the_write_problems(client):
    document = client.get("/api/v1/openapi.json").json()
    labels = document["paths"]["/api/v1/labels"]["post"]
    assert set(labels["responses"]["200"]["content"]) == {"application/pdf", "text/plain"}
    assert {"401", "404", "422"} <= set(labels["responses"])
    for path in ("store", "move", "checkout", "return"):
        operation = document["paths"][f"/api/v1/specimens/{{code}}/{path}"]["post"]
        assert {"403", "404", "409", "422"} <= set(operation["responses"]) and operation["summary"]
        assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"])
    move = document["components"]["schemas"]["MoveBody"]["properties"]
    assert {"container", "position", "reason", "when"} == set(move)
