"""The sequencing part of the planner page: a technician records a run, results with files and an outcome; the
state table and the replacement for a failed sample show; a viewer sees the states without forms."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from biobank.models.plans import SequencingFile
from biobank.queries import sequencing as reads
from tests.support.apptest import assert_no_exception, click, make_app
from tests.support.factories import wgs_plan_of_ra0001

DNA = "RA0001-L04A-SF1-DNA1"
TUMOUR = "RA0001-L03A-SF1"
MD5 = "0123456789abcdef0123456789abcdef"




def states(engine) -> dict[str, str]:
    with Session(engine) as session:
        frame = reads.sample_states(session)
    return dict(zip(frame["specimen_code"], frame["state"], strict=True))



@pytest.mark.demo(1)
def test_technician_records_a_run_results_and_an_outcome_on_the_planner_page(db_url, engine):
    wgs_plan_of_ra0001(engine, submit=True)
    at = make_app(db_url, page="planner")
    at.session_state["username"] = "tech"
    at.query_params["plan"] = "WGS-1"
    at.run()
    assert_no_exception(at)
    assert at.selectbox(key="planner_plan").value == "WGS-1"
    assert any(s.value == "Sequencing" for s in at.subheader)
    assert "submitted: " in " ".join(c.value for c in at.caption)

    at.text_input(key="sequencing_run_id").input("RUN-1")
    at.text_input(key="sequencing_instrument").input("NovaSeq X")
    click(at, "Record run")
    assert "Run RUN-1 recorded." in [s.value for s in at.success]

    at.selectbox(key="sequencing_result_specimen").set_value(DNA)
    at.number_input(key="sequencing_coverage").set_value(61.0)
    at.number_input(key="sequencing_contamination").set_value(0.5)
    at.text_area(key="sequencing_files").input(f"s3://core/RUN-1/{DNA}.cram:md5:{MD5}:1024:cram")
    click(at, "Record result")
    assert f"{DNA} in run RUN-1: passed (automatic QC passed)" in [s.value for s in at.success]
    with Session(engine) as session:
        assert [f.uri for f in session.exec(select(SequencingFile)).all()] == [f"s3://core/RUN-1/{DNA}.cram"]

    # a bad checksum is refused in one line, nothing written
    at.selectbox(key="sequencing_result_specimen").set_value(TUMOUR)
    at.number_input(key="sequencing_coverage").set_value(20.0)
    at.text_area(key="sequencing_files").input("s3://core/x.cram:md5:abc")
    click(at, "Record result")
    assert any("result: " in e.value and "32 hexadecimal digits" in e.value for e in at.error)
    assert states(engine)[TUMOUR] == "submitted"

    at.text_area(key="sequencing_files").input("")
    click(at, "Record result")
    assert states(engine)[TUMOUR] == "failed_qc"
    assert any(f"{TUMOUR} failed QC: replace it with" in w.value and "Amend the plan" in w.value for w in at.warning)

    # no contamination: left for a person, who passes it with the outcome form
    at.selectbox(key="sequencing_result_specimen").set_value("RA0001-L05A-SF1-DNA1")
    at.number_input(key="sequencing_coverage").set_value(60.0)
    at.number_input(key="sequencing_contamination").set_value(None)
    click(at, "Record result")
    assert states(engine)["RA0001-L05A-SF1-DNA1"] == "sequenced"
    at.selectbox(key="sequencing_outcome_pick").set_value("RA0001-L05A-SF1-DNA1 | RUN-1")
    at.radio(key="sequencing_outcome").set_value("passed")
    click(at, "Record outcome")
    assert states(engine)["RA0001-L05A-SF1-DNA1"] == "passed"


@pytest.mark.demo(1)
def test_viewer_sees_the_states_without_forms(db_url, engine):
    wgs_plan_of_ra0001(engine, submit=True)
    at = make_app(db_url, page="planner")
    at.session_state["username"] = "viewer"
    at.query_params["plan"] = "WGS-1"
    at.run()
    assert_no_exception(at)
    assert any(s.value == "Sequencing" for s in at.subheader)
    assert not [b for b in at.button if b.label in ("Record run", "Record result", "Record outcome")]
