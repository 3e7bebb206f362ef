"""An import report a data manager can act on (issue 19): every error of a row, correct counts, values echoed as
typed in the lab's time zone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from biobank.db.engine import session_scope
from biobank.imports.engine import ImportReport, run_import
from biobank.models import User
from tests.support.dbtools import snapshot
from tests.support.factories import make_case

SITES = "donor_code,kind,lesion_code,region_label,site_code,excised_at,gross_description\n"


def do_import(engine: Engine, actor: User, kind: str, content: str, **options: Any) -> ImportReport:
    with session_scope(engine) as session:
        return run_import(session, actor=actor, kind=kind, source=content.encode("utf-8"), filename=f"{kind}.csv",
                          **options)


def test_a_row_with_three_bad_cells_gives_three_errors(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
    before = snapshot(engine)
    # a kind that is not one, an unreadable time, and a description over its limit: one round, three errors
    report = do_import(engine, tech, "sampling_sites",
                       SITES + f"RA-0001,tumourish,L02,A,LIVER,yesterday-ish,{'g' * 501}\n")
    assert snapshot(engine) == before
    assert sorted((e.row, e.column) for e in report.errors) == [
        (2, "excised_at"), (2, "gross_description"), (2, "kind")]
    assert report.error_count == 3


def test_a_row_whose_cells_read_but_break_two_field_limits_gives_both(engine: Engine, tech: User) -> None:
    report = do_import(engine, tech, "sampling_sites",
                       SITES + f"RA-0001,tumour_region,L02,{'A' * 300},LIVER,2026-03-14 06:00,{'g' * 501}\n")
    assert sorted(e.column for e in report.errors) == ["gross_description", "region_label"], report.errors


def test_notes_of_the_file_are_counted_in_the_summary(engine: Engine, tech: User) -> None:
    extra = ",".join(f"extra_{i}" for i in range(15))
    report = do_import(engine, tech, "donors", f"code,sex,{extra}\nRA-0101,F,{',' * 14}\n", dry_run=True)
    assert report.ok, report.errors
    assert len(report.file_notes) == 15
    assert report.note_count == 1  # 'F' read as female
    assert "16 note(s)" in report.summary()
    assert report.as_dict()["note_count"] == 16


def test_a_refused_header_says_how_many_rows_were_not_checked(engine: Engine, tech: User) -> None:
    report = do_import(engine, tech, "donors", "sex,age_at_death\nF,61\nM,70\n")
    assert not report.ok
    assert report.rows == 2
    summary = report.summary()
    assert "0 row(s) read" not in summary
    assert "the header was refused" in summary and "2 data row(s)" in summary


def test_an_unreadable_header_says_no_row_was_read(engine: Engine, tech: User) -> None:
    report = do_import(engine, tech, "donors", "code,Code\nRA-0101,RA-0101\n")
    assert not report.ok
    assert "no row was read" in report.summary()


def test_a_time_in_the_future_is_echoed_as_typed_not_in_utc(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
    report = do_import(engine, tech, "sampling_sites", SITES + "RA-0001,tumour_region,L02,A,LIVER,01/07/2099 09:00,\n")
    (error,) = report.errors
    assert error.value == "01/07/2099 09:00"
    assert "+00:00" not in error.value + error.message
    assert "01 Jul 2099 09:00" in error.message


def test_the_docs_and_the_help_list_every_import_kind() -> None:
    from typer.testing import CliRunner

    from biobank.cli import app
    from biobank.imports.engine import kinds_reference
    from biobank.imports.registry import import_kind_names

    doc = (Path(__file__).resolve().parents[2] / "docs" / "import-kinds.md").read_text(encoding="utf-8")
    table = doc.split("<!-- kinds:start -->\n", 1)[1].split("<!-- kinds:end -->", 1)[0]
    assert table == kinds_reference(), "docs/import-kinds.md is stale: paste kinds_reference() between the markers"
    help_text = " ".join(CliRunner().invoke(app, ["import", "--help"], env={"COLUMNS": "400"}).output.split())
    for name in import_kind_names():
        assert f"`{name}`" in table
        assert name in help_text, name


def test_a_time_before_death_is_echoed_as_typed_not_in_utc(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
    content = ("code,donor_code,sampling_site,storage_format,quantity,collected_at,stabilised_at\n"
               "X-1,RA-0001,L02-A,LN2,50 mg,14/03/2026 05:00,14/03/2026 04:30\n")
    with session_scope(engine) as session:
        from tests.support.factories import collect

        collect(session, tech)
    report = do_import(engine, tech, "specimens", content)
    (error,) = report.errors
    assert (error.column, error.value) == ("stabilised_at", "14/03/2026 04:30"), error
    assert "+00:00" not in error.value + error.message
