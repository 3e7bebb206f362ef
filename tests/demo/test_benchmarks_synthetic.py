"""The synthetic benchmark cohort is valid data: every constraint and trigger accepted it, and the services keep
working on top of it (sequences moved on, codes unique)."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session, func, select

from benchmarks import synthetic
from biobank.db.engine import session_scope
from biobank.models import CustodyEvent, Donor, Specimen
from biobank.queries import core as queries
from biobank.services import donors, specimens
from biobank.services.inputs import DonorCreate


def test_a_small_synthetic_cohort_loads_under_every_rule_and_the_services_work_on_it(engine, tech):
    result = synthetic.build(engine, 600)
    assert result.specimens == 600 and result.donors == 3 and result.rows > 600

    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Specimen)).one() == 600
        lineages = dict(session.exec(select(Specimen.lineage, func.count()).group_by(Specimen.lineage)).all())
        custody = session.exec(select(func.count()).select_from(CustodyEvent)).one()
        assert custody == 2 * lineages["primary"] + lineages["derivative"]
        counts = queries.cohort_counts(session)
        assert counts["specimens"] == 600 and counts["donors"] == 3
        assert sum(row["specimens"] for row in queries.donor_rows(session)) == 600
        assert queries.pmi_distribution(session)
        parent = session.exec(select(Specimen.code).where(Specimen.code.like("%-SF2"))).first()  # type: ignore[attr-defined]
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA foreign_key_check")).fetchall() == []

    with session_scope(engine) as session:
        made = specimens.aliquot(session, actor=tech, parent_code=parent, portions=[5])
        assert made[0].code == f"{parent}.1"
        donors.register_donor(session, actor=tech, data=DonorCreate(code="RA-9999"))
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Donor)).one() == 4

    again = synthetic.build(engine, 250)  # appending continues the ids and codes
    assert again.specimens == 250
