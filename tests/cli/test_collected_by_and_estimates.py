"""Issue 19: the person who collected a specimen and its notes are shown (specimen show, identified tables export,
the specimens import), estimated times say so (autopsy summary, specimen show, the cases' rows, the donor timeline),
and a lesion of unknown kind is flagged (the case checklist; the planner's rule is in test_plans_rules.py)."""

from __future__ import annotations

import json

from sqlalchemy.engine import Engine
from sqlmodel import select
from typer.testing import CliRunner

from biobank.cli import app
from biobank.db.engine import session_scope
from biobank.exports import service as export_service
from biobank.imports.engine import run_import
from biobank.models import Autopsy, SamplingSite, Specimen, User
from biobank.queries.cohort import donor_timeline
from biobank.services.cases import case_rows
from biobank.services.checklist import CaseMaterial, LesionInfo, checklist
from tests.support.factories import collect, make_case

runner = CliRunner()


def seeded(engine: Engine, tech: User) -> str:
    """A case whose start is estimated, a region whose excision is estimated, specimens collected by 'J. Smith'."""
    with session_scope(engine) as session:
        make_case(session, tech)
        codes = collect(session, tech, collected_by=" J. Smith ")
        autopsy = session.exec(select(Autopsy)).one()
        autopsy.start_estimated = True
        site = session.exec(select(SamplingSite)).one()
        site.excised_estimated = True
        specimen = session.exec(select(Specimen).where(Specimen.code == codes[0])).one()
        specimen.notes = "decal 5 d EDTA per log"
    return codes[0]


def test_specimen_show_and_autopsy_summary_name_the_collector_notes_and_estimates(
    db_url: str, engine: Engine, tech: User, cli_login
) -> None:
    code = seeded(engine, tech)
    cli_login("tech")
    shown = runner.invoke(app, ["specimen", "show", code])
    assert shown.exit_code == 0, shown.output
    lines = {line.split()[0]: line for line in shown.output.splitlines() if line.strip()}
    assert lines["collected_by"].split(None, 1)[1] == "J. Smith"  # stored trimmed
    assert lines["entered_by"].split()[1] == "tech"  # the user who entered it, a different thing
    assert "decal 5 d EDTA per log" in lines["notes"]
    assert lines["excised_at"].endswith("(estimated)")
    data = json.loads(runner.invoke(app, ["specimen", "show", code, "--json"]).output)
    assert (data["collected_by"], data["excised_estimated"]) == ("J. Smith", True)
    summary = runner.invoke(app, ["autopsy", "summary", "RAP-1"])
    assert summary.exit_code == 0, summary.output
    start = next(line for line in summary.output.splitlines() if line.startswith("start_at"))
    assert start.endswith("(estimated)")
    end = next(line for line in summary.output.splitlines() if line.startswith("end_at"))
    assert "(estimated)" not in end


def test_estimates_reach_the_cases_rows_and_the_donor_timeline(engine: Engine, tech: User) -> None:
    seeded(engine, tech)
    with session_scope(engine) as session:
        (row,) = case_rows(session)
        timeline = donor_timeline(session, "RA-0001")
    assert (row["start_estimated"], row["end_estimated"]) == (True, False)
    assert "autopsy start (estimated)" in [e["event"] for e in timeline["post_mortem"]]


def test_identified_tables_carry_the_collector_and_notes_and_de_identified_ones_do_not(
    engine: Engine, tech: User, pi: User
) -> None:
    seeded(engine, tech)
    for identified in (True, False):
        with session_scope(engine) as session:
            files = export_service.export(session, actor=pi, request=export_service.ExportRequest(
                target="tables", donor_codes=("RA-0001",), identified=identified))
        everything = b"".join(files.values()).decode("utf-8", "replace")
        assert ("J. Smith" in everything) is identified
        assert ("collected_by" in everything) is identified
        assert ("decal 5 d EDTA per log" in everything) is identified


def test_the_specimens_import_takes_collected_by(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech)
    content = ("code,donor_code,sampling_site,storage_format,quantity,collected_at,collected_by\n"
               "X-1,RA-0001,L02-A,LN2,50 mg,2026-03-14 05:00,AB\n")
    with session_scope(engine) as session:
        report = run_import(session, actor=tech, kind="specimens", source=content.encode(), filename="s.csv")
    assert report.ok, report.errors
    with session_scope(engine) as session:
        assert session.exec(select(Specimen.collected_by).where(Specimen.code == "X-1")).one() == "AB"


def test_a_lesion_of_unknown_kind_is_an_open_checklist_item() -> None:
    items = checklist(CaseMaterial([LesionInfo("L01", "LIVER", "unknown"), LesionInfo("L02", "LUNG", "metastasis")],
                                   [], model_consent=False))
    (item,) = [i for i in items if i.key == "lesion_kinds"]
    assert not item.done and "L01" in item.detail and "L02" not in item.detail
    known = checklist(CaseMaterial([LesionInfo("L02", "LUNG", "metastasis")], [], model_consent=False))
    assert "lesion_kinds" not in {i.key for i in known}
