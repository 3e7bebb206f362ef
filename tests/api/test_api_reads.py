"""The REST API's remaining reads on both databases: cases, donors (de-identified) and their lesions, specimen
lineage and custody, the storage tree and a box, derived models. Each route answers what the query the command line
prints answers for the same record; 401 without a token; an unknown code is a 404 naming the field and value; a donor
whose consent is withdrawn is hidden from a PI and a technician on every route and shown to an administrator."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from biobank.api import create_app
from biobank.api.common import jsonable
from biobank.api.routes.reads import deidentified
from biobank.models import Container, Donor, Specimen, SpecimenLocation, User
from biobank.queries import cohort, core
from biobank.queries import derived as model_reads
from biobank.queries import storage as storage_reads
from biobank.services import cases, derived, donors
from biobank.services.inputs import ModelCreate, ModelQCCreate, PassageCreate
from tests.api.test_api import assert_problem, bearer, token_of

pytestmark = pytest.mark.demo(2)

#: Keys that would identify a donor; none may appear anywhere in a donor's detail.
IDENTIFYING = {"name", "first_name", "last_name", "birth_date", "date_of_birth", "dob", "address", "mrn",
               "hospital_number", "nhs_number", "death_at", "document", "reason", "on", "at"}
#: The viable specimen of the first demo donor a model is grown from.
SOURCE = "RA0001-L02A-VC1"


@pytest.fixture
def client(engine) -> TestClient:
    return TestClient(create_app())


def keys_of(data: Any) -> set[str]:
    """Every key anywhere in a JSON value."""
    if isinstance(data, dict):
        return set(data) | {k for v in data.values() for k in keys_of(v)}
    if isinstance(data, list):
        return {k for v in data for k in keys_of(v)}
    return set()


def read(engine, query, *args, **kwargs) -> Any:
    """What a query answers, as JSON values."""
    with Session(engine) as session:
        return jsonable(query(session, *args, **kwargs))


def grow_model(engine) -> tuple[str, str]:
    """An organoid from SOURCE (its donor consents to model derivation first) with a P0, its QC and a frozen vial:
    the model's code and the vial's."""
    with Session(engine, expire_on_commit=False) as session:
        tech = User(username="api_grower", role="admin")
        session.add(tech)
        session.flush()
        donor = session.exec(select(Donor).join(Specimen, Specimen.donor_id == Donor.id)
                             .where(Specimen.code == SOURCE)).one()
        scopes = set(core.donor_detail(session, donor.code)["consent_scopes"]) | {"model_derivation"}
        donors.record_consent(session, actor=tech, donor_code=donor.code, given_by="donor",
                              consented_on=date(2024, 1, 10), scopes=scopes, change="scope_change",
                              reason="model derivation added")
        model = derived.create_model(session, actor=tech, data=ModelCreate(
            source_code=SOURCE, kind="organoid", initiated_on=date(2024, 2, 22)))
        derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code,
                                                                       passaged_on=date(2024, 3, 1)))
        derived.record_model_qc(session, actor=tech, data=ModelQCCreate(
            model_code=model.code, passage_label="P0", tested_on=date(2024, 3, 5), mycoplasma="negative"))
        [vial] = derived.passage_specimens(session, actor=tech, model_code=model.code, passage_label="P0",
                                           material_type="cells", storage_format="viable_cryo", quantity=1e6,
                                           unit="cells", at=datetime(2024, 3, 5, 12, tzinfo=UTC))
        session.commit()
        return model.code, vial.code


def test_every_route_needs_a_token_and_an_unknown_code_is_a_404_naming_it(engine, client):
    for path in ("/cases", "/cases/X", "/donors/X", "/donors/X/lesions", "/specimens/X/lineage",
                 "/specimens/X/custody", "/storage", "/storage/X", "/models", "/models/X"):
        assert_problem(client.get(f"/api/v1{path}"), 401, "token")
    token = bearer(token_of(engine, "api_tech", "technician"))
    for path, field in (("/cases/NO-CASE", "case"), ("/donors/NO-DONOR", "donor"), ("/donors/NO-DONOR/lesions",
                        "donor"), ("/specimens/NO-SPEC/lineage", "code"), ("/specimens/NO-SPEC/custody", "code"),
                        ("/storage/NO-BOX", "container"), ("/models/NO-MODEL", "model")):
        code = path.split("/")[2]
        assert_problem(client.get(f"/api/v1{path}", headers=token), 404, field, code)
    assert_problem(client.get("/api/v1/cases", params={"state": "done"}, headers=token), 422, "state", "done")
    assert_problem(client.get("/api/v1/models", params={"kind": "clone"}, headers=token), 422, "kind", "clone")


def test_cases_and_donors_answer_what_the_queries_answer_and_a_donor_is_de_identified(engine, client):
    token = bearer(token_of(engine, "api_pi", "pi"))
    listed = client.get("/api/v1/cases", headers=token).json()
    assert listed == read(engine, cases.case_rows) and len(listed) == 2
    assert {"warm_pmi_hours", "median_pmi_hours", "start_estimated", "end_estimated"} <= listed[0].keys()
    state = listed[0]["status"]
    assert client.get("/api/v1/cases", params={"state": state}, headers=token).json() == [
        row for row in listed if row["status"] == state]
    for row in listed:
        shown = client.get(f"/api/v1/cases/{row['case']}", headers=token).json()
        assert shown == read(engine, core.autopsy_summary, row["case"])
        assert shown["donor"] == row["donor"] and "pmi_at_start_hours" in shown
        detail = client.get(f"/api/v1/donors/{row['donor']}", headers=token).json()
        assert detail == jsonable(deidentified(read(engine, core.donor_detail, row["donor"])))
        assert detail["code"] == row["donor"] and detail["consents"] and detail["consent_scopes"]
        assert not keys_of(detail) & IDENTIFYING
        lesions = client.get(f"/api/v1/donors/{row['donor']}/lesions", headers=token).json()
        assert lesions == read(engine, cohort.donor_lesions, row["donor"]) and lesions
        assert {"lesion", "site", "laterality", "kind", "regions"} <= lesions[0].keys()


def test_lineage_custody_and_models_answer_what_specimen_show_and_models_show_answer(engine, client):
    model, vial = grow_model(engine)
    token = bearer(token_of(engine, "api_tech", "technician"))
    lineage = client.get(f"/api/v1/specimens/{SOURCE}/lineage", headers=token).json()
    detail = read(engine, core.specimen_detail, SOURCE)
    tree = detail["lineage_tree"]
    assert (lineage["primary"], lineage["ancestors"], lineage["children"]) == (
        tree["primary"], tree["ancestors"], tree["children"])
    assert [d["code"] for d in lineage["descendants"] if d["depth"] == 1] == [c["code"] for c in tree["children"]]
    [made] = [d for d in lineage["descendants"] if d["code"] == vial]
    assert (made["parent"], made["model"], made["passage"]) == (SOURCE, model, "P0")
    rows = read(engine, model_reads.model_rows)
    assert lineage["models"] == [r for r in rows if r["code"] == model]
    up = client.get(f"/api/v1/specimens/{vial}/lineage", headers=token).json()
    assert up["ancestors"] == read(engine, core.specimen_detail, vial)["lineage_tree"]["ancestors"]
    assert up["parent"] == SOURCE and up["descendants"] == [] and up["models"] == []
    custody = client.get(f"/api/v1/specimens/{SOURCE}/custody", headers=token).json()
    assert custody == detail["custody"] and custody
    assert [e["at"] for e in custody] == sorted(e["at"] for e in custody)  # oldest first
    assert client.get("/api/v1/models", headers=token).json() == rows and rows
    assert client.get("/api/v1/models", params={"kind": "pdx"}, headers=token).json() == []
    shown = client.get(f"/api/v1/models/{model}", headers=token).json()
    assert shown == read(engine, model_reads.model_detail, model)
    assert shown["passage_tree"][0]["qc"] and shown["passage_tree"][0]["specimens"] == [vial]


def test_the_storage_tree_and_a_box_answer_what_storage_tree_and_show_answer(engine, client):
    token = bearer(token_of(engine, "api_viewer", "viewer"))
    tree = client.get("/api/v1/storage", headers=token).json()
    assert tree == read(engine, storage_reads.tree) and tree
    with Session(engine) as session:
        box = session.exec(select(Container.code).join(SpecimenLocation, SpecimenLocation.container_id == Container.id)
                           .order_by(Container.code)).first()
    shown = client.get(f"/api/v1/storage/{box}", headers=token).json()
    assert shown == read(engine, storage_reads.box_view, box)
    assert shown["cells"] and all(cell["code"] for cell in shown["cells"]) and shown["path"].endswith(box)


def test_a_withdrawn_donor_is_hidden_on_every_route_from_a_pi_and_a_technician_not_from_an_admin(engine, client):
    model, _vial = grow_model(engine)
    pi, tech = bearer(token_of(engine, "api_pi", "pi")), bearer(token_of(engine, "api_tech", "technician"))
    admin = bearer(token_of(engine, "api_admin", "admin"))
    with Session(engine, expire_on_commit=False) as session:
        donor = session.exec(select(Donor).join(Specimen, Specimen.donor_id == Donor.id)
                             .where(Specimen.code == SOURCE)).one()
        case = core.donor_detail(session, donor.code)["case"]
        box = session.exec(select(Container.code).join(SpecimenLocation, SpecimenLocation.container_id == Container.id)
                           .join(Specimen, Specimen.id == SpecimenLocation.specimen_id)
                           .where(Specimen.donor_id == donor.id)).first()
        donors.withdraw_consent(session, actor=session.exec(select(User).where(User.username == "api_admin")).one(),
                                donor_code=donor.code, requested_by="next_of_kin",
                                withdrawn_at=datetime.now(UTC), reason="API test")
        session.commit()
    records = {f"/cases/{case}": "case", f"/donors/{donor.code}": "donor", f"/donors/{donor.code}/lesions": "donor",
               f"/specimens/{SOURCE}/lineage": "code", f"/specimens/{SOURCE}/custody": "code", f"/models/{model}": "model"}
    for headers in (pi, tech):
        assert donor.code not in {row["donor"] for row in client.get("/api/v1/cases", headers=headers).json()}
        assert donor.code not in {row["donor"] for row in client.get("/api/v1/models", headers=headers).json()}
        for path, field in records.items():
            assert_problem(client.get(f"/api/v1{path}", headers=headers), 404, field, path.split("/")[2])
        cells = client.get(f"/api/v1/storage/{box}", headers=headers).json()["cells"]
        withheld = [cell for cell in cells if cell["code"] is None]
        assert withheld and all(cell["position"] and cell["donor"] is None for cell in withheld)
        assert donor.code not in {cell["donor"] for cell in cells}
    assert donor.code in {row["donor"] for row in client.get("/api/v1/cases", headers=admin).json()}
    assert [row["code"] for row in client.get("/api/v1/models", headers=admin).json()] == [model]
    for path in records:
        assert client.get(f"/api/v1{path}", headers=admin).status_code == 200, path
    detail = client.get(f"/api/v1/donors/{donor.code}", headers=admin).json()
    assert detail["consent_withdrawn"] is True and detail["withdrawal"] == {"requested_by": "next_of_kin"}
    assert not keys_of(detail) & IDENTIFYING
    assert client.get(f"/api/v1/storage/{box}", headers=admin).json() == read(engine, storage_reads.box_view, box)
