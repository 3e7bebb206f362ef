"""Every page renders for every role on the demo cohort; viewers get no write controls and the services refuse them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from biobank.db.engine import session_scope
from biobank.demo.cohort import load_demo
from biobank.domain.errors import PermissionDeniedError
from biobank.models import Autopsy, User
from biobank.services import collection, donors
from biobank.services.inputs import FormatRequest, RegionCollect
from dashboards.shell.navigation import ALL_ROLES, PAGES
from tests.support.apptest import APP, assert_no_exception, make_app
from tests.support.dbtools import snapshot

USERS = {"technician": "tech", "coordinator": "coord", "pi": "pi", "admin": "admin", "viewer": "viewer"}


@pytest.fixture
def demo(engine):
    with session_scope(engine) as session:
        return load_demo(session, donors_count=3, seed=1)


def signed_in(db_url, username, page=None):
    at = make_app(db_url, page=page)
    at.session_state["username"] = username
    return at


@pytest.mark.parametrize("role", sorted(ALL_ROLES))
def test_every_page_of_a_role_renders_without_an_exception(db_url, demo, role):
    at = signed_in(db_url, USERS[role]).run()
    assert_no_exception(at)
    opened = []
    for spec in PAGES:
        if role not in spec.roles:
            continue
        at.switch_page(str(Path(APP).parent / "views" / f"{spec.module}.py")).run()
        assert_no_exception(at)
        assert at.session_state["username"] == USERS[role], f"{spec.module} signed {role} out"
        opened.append(spec.module)
    assert "donor" in opened and "specimen" in opened
    assert ("board" in opened) == (role in {"technician", "admin"})
    assert ("audit" in opened) == (role == "admin")


def test_a_viewer_sees_no_write_controls_on_any_page(db_url, demo):
    at = signed_in(db_url, "viewer").run()
    for spec in PAGES:
        if "viewer" not in spec.roles:
            continue
        at.switch_page(str(Path(APP).parent / "views" / f"{spec.module}.py")).run()
        assert_no_exception(at)
        assert not at.form_submit_button, f"{spec.module} shows a form to a viewer"
        assert [b.key for b in at.button] == ["sign_out"], f"{spec.module} shows buttons to a viewer"


def test_the_services_refuse_a_viewers_write_and_change_nothing(engine, demo):
    with session_scope(engine) as session:
        case = session.exec(select(Autopsy).where(Autopsy.status == "in_progress")).one()
        case_code, excised = case.case_code, case.death_at + timedelta(hours=1)
    before = snapshot(engine)
    with pytest.raises(PermissionDeniedError, match="viewer"), session_scope(engine) as session:
        viewer = session.exec(select(User).where(User.username == "viewer")).one()
        collection.collect_region(session, actor=viewer, data=RegionCollect(case_code=case_code, kind="germline_blood", site_code="BLOOD", excised_at=excised, formats=[FormatRequest("frozen", 1000, "ul")]))
    assert snapshot(engine) == before


def test_the_cohort_overview_filters_by_pmi_band_and_offers_csv_downloads(db_url, demo):
    at = signed_in(db_url, "pi", page="cohort").run()
    everything = {m.label: m.value for m in at.metric}
    at.selectbox(key="cohort_band").set_value("0-4 h").run()
    assert_no_exception(at)
    banded = {m.label: m.value for m in at.metric}
    assert int(banded["Specimens"].replace(",", "")) < int(everything["Specimens"].replace(",", ""))
    assert everything["Donors"] == "3"
    names = {b.proto.label for b in at.download_button} if hasattr(at.download_button[0], "proto") else set()
    assert len(at.download_button) >= 5, names


def test_the_donor_view_shows_a_banner_when_consent_was_withdrawn(db_url, engine, demo):
    with session_scope(engine) as session:
        admin = session.exec(select(User).where(User.username == "admin")).one()
        death = session.exec(select(Autopsy.death_at).where(Autopsy.case_code.like("%-001"))).one()
        donors.withdraw_consent(session, actor=admin, donor_code="RA-0001", requested_by="next_of_kin",
                                withdrawn_at=death + timedelta(days=90), reason="family request")
    at = signed_in(db_url, "viewer", page="donor").run()
    assert_no_exception(at)
    assert at.selectbox(key="donor_code").value == "RA-0001"
    assert "Consent withdrawn" in at.error[0].value
    at.selectbox(key="donor_code").set_value("RA-0002").run()
    assert not at.error
    assert "Consent covers" in at.success[0].value


def test_a_scanned_code_opens_the_specimen_with_sprec_and_custody(db_url, demo):
    at = signed_in(db_url, "viewer", page="specimen").run()
    at.text_input(key="specimen_query").set_value("ra0001-l01a-sf1").run()
    assert_no_exception(at)
    sprec = next(m.value for m in at.markdown if m.value.startswith("**SPREC**"))
    code = sprec.split("`")[1]
    assert code.startswith("TIS-A06-") and len(code.split("-")) == 7  # shown whole, all seven elements
    assert "RA0001-L01A-SF1" in at.markdown[0].value
    assert at.query_params["specimen"] == "RA0001-L01A-SF1"  # the address bar links to it
    at.text_input(key="specimen_query").set_value("RA0001-L01A").run()
    assert "No specimen" in at.error[0].value
    assert "RA0001-L01A-SF1" in at.markdown[0].value  # offered as a near match


def test_the_audit_log_filters_by_table_and_user(db_url, demo):
    at = signed_in(db_url, "admin", page="audit").run()
    assert_no_exception(at)
    at.selectbox(key="audit_table").set_value("lesion").run()
    shown = at.dataframe[0].value
    assert set(shown["table"]) == {"lesion"} and set(shown["user"]) == {"tech"}
    at.selectbox(key="audit_user").set_value("pi").run()
    assert at.dataframe[0].value.empty


def _rule_colours(at) -> dict[str, str]:
    """The PMI target and limit lines of every chart on the page: line label -> colour."""
    import json

    colours: dict[str, str] = {}

    def walk(spec):
        if isinstance(spec, dict):
            color = spec.get("encoding", {}).get("color", {}) if isinstance(spec.get("encoding"), dict) else {}
            scale = color.get("scale", {}) if isinstance(color, dict) else {}
            if scale.get("domain") and any(str(d).startswith(("target", "limit")) for d in scale["domain"]):
                colours.update({str(d).split()[0]: c for d, c in zip(scale["domain"], scale["range"], strict=True)})
            for value in spec.values():
                walk(value)
        elif isinstance(spec, list):
            for value in spec:
                walk(value)

    for node in at.main:
        if type(node).__name__ == "UnknownElement" and node.type == "vega_lite_chart":
            walk(json.loads(node.proto.spec))
    return colours


def test_the_home_page_draws_target_and_limit_in_the_colours_of_the_other_pages(db_url, demo):
    home = signed_in(db_url, "pi", "home").run()
    cohort = signed_in(db_url, "pi", "cohort").run()
    assert _rule_colours(home) and _rule_colours(home) == _rule_colours(cohort)
    assert _rule_colours(home)["target"] != _rule_colours(home)["limit"]


def test_the_cohort_filters_reach_the_model_count_and_take_rate(db_url, demo):
    at = signed_in(db_url, "pi", "cohort").run()
    everything = next(m for m in at.metric if m.label == "Models")
    at.selectbox(key="cohort_band").set_value("12+ h").run()
    assert_no_exception(at)
    filtered = next(m for m in at.metric if m.label == "Models")
    assert int(filtered.value.replace(",", "") if filtered.value != "—" else 0) < int(everything.value.replace(",", ""))


def test_a_bookmarked_specimen_link_opens_that_specimen(db_url, demo):
    from dashboards.shell.links import url

    assert url("specimen", "RA0001-L01A-SF1") == "/specimen?specimen=RA0001-L01A-SF1"
    at = signed_in(db_url, "viewer", page="specimen")
    at.query_params["specimen"] = "RA0001-L01A-SF1"
    at.run()
    assert_no_exception(at)
    assert at.text_input(key="specimen_query").value == "RA0001-L01A-SF1"
    assert "RA0001-L01A-SF1" in at.markdown[0].value


def test_audit_rows_name_the_record_by_its_code_not_its_row_number(db_url, demo):
    at = signed_in(db_url, "admin", page="audit").run()
    at.selectbox(key="audit_table").set_value("specimen").run()
    assert_no_exception(at)
    records = at.dataframe[0].value["record"]
    assert len(records) and all(r.startswith("RA") and "-" in r for r in records)  # RA0001-L01A-SF1, not "912"


def test_the_donor_page_shows_unmeasured_sizes_as_empty_and_serialises_every_table(db_url, engine, demo, caplog):
    """A lesion without a size shows an empty cell (not "None"), and no table falls back from Arrow (which logged a
    pyarrow traceback in the server log)."""
    from biobank.services.inputs import LesionCreate

    with session_scope(engine) as session:
        tech = session.exec(select(User).where(User.username == "tech")).one()
        collection.add_lesion(session, actor=tech, data=LesionCreate(donor_code="RA-0001", code="L09", site_code="SPLEEN", kind="metastasis"))
    caplog.set_level("WARNING")
    at = signed_in(db_url, "pi", page="donor").run()
    assert_no_exception(at)
    lesions = next(d.value for d in at.dataframe if "lesion" in d.value.columns and "mm" in d.value.columns)
    assert lesions["mm"].map(lambda v: isinstance(v, str)).all()
    assert "" in set(lesions["mm"]) and "None" not in set(lesions["mm"]) and "nan" not in set(lesions["mm"])
    assert not [r for r in caplog.records if "Arrow" in r.getMessage() or r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]


def test_a_case_link_opens_its_donor(db_url, demo):
    at = signed_in(db_url, "pi", page="donor")
    at.query_params["case"] = "rap-2024-002"
    at.run()
    assert_no_exception(at)
    assert at.selectbox(key="donor_code").value == "RA-0002"


def test_a_specimens_label_can_be_reprinted_from_its_page(db_url, engine, demo):
    from biobank.printables import labels_pdf

    at = signed_in(db_url, "viewer", page="specimen")
    at.query_params["specimen"] = "RA0001-L01A-FF1"
    at.run()
    assert_no_exception(at)
    assert [b.label for b in at.get("download_button") if b.key == "specimen_reprint_label"] == ["Reprint label (cassette, PDF)"]
    with session_scope(engine) as session:
        assert labels_pdf(session, codes=["RA0001-L01A-FF1"], fmt="cassette").startswith(b"%PDF")
