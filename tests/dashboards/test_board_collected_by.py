"""The live board (issue 19): a "Collected by" field stored through the collection service, and an estimated start
shown as estimated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select

from biobank.config import get_settings
from biobank.db.engine import session_scope
from biobank.models import Autopsy, Specimen
from biobank.services import collection, donors
from biobank.services.inputs import AutopsyOpen, DonorCreate, LesionCreate
from tests.support.apptest import assert_no_exception, make_app


def key(field: str, n: int = 0) -> str:
    return f"board_{field}_RAP-T-200_tumour_region_L01_{n}"


def test_the_board_records_who_collected_and_flags_an_estimated_start(db_url, engine, tech) -> None:
    death = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    with session_scope(engine) as session:
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-0200", sex="male"))
        donors.record_consent(session, actor=tech, donor_code="RA-0200", given_by="donor",
                              consented_on=(death - timedelta(days=10)).date(), scopes={"research_use"})
        collection.open_autopsy(session, actor=tech, data=AutopsyOpen(
            donor_code="RA-0200", case_code="RAP-T-200", death_at=death, start_at=death + timedelta(hours=2)))
        collection.add_lesion(session, actor=tech, data=LesionCreate(
            donor_code="RA-0200", code="L01", site_code="LIVER", kind="metastasis"))
        session.exec(select(Autopsy)).one().start_estimated = True
    at = make_app(db_url, page="board")
    at.session_state["username"] = "tech"
    at.run()
    assert_no_exception(at)
    assert any("(estimated)" in m.value and "Autopsy started" in m.value for m in at.markdown)
    at.text_input(key=key("collected_by")).set_value("  K. Osei ")
    at.session_state[key("excised")] = (death + timedelta(hours=3)).astimezone(get_settings().zone).replace(tzinfo=None)
    at.form_submit_button(key=key("submit")).click().run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    with session_scope(engine) as session:
        made = session.exec(select(Specimen.collected_by)).all()
    assert made and set(made) == {"K. Osei"}
