"""An import holds the same lab checks as the services (no time in the future, the input models' limits) and says
so in words that suit any interface."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from biobank.db.engine import session_scope
from biobank.imports.engine import run_import
from biobank.models import User
from tests.support.dbtools import snapshot
from tests.support.factories import collect, make_case

SITES = "donor_code,kind,lesion_code,region_label,site_code,excised_at,gross_description\n"


def do_import(engine: Engine, actor: User, kind: str, content: str, **options):  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return run_import(session, actor=actor, kind=kind, source=content.encode("utf-8"), filename=f"{kind}.csv",
                          **options)


def test_an_existing_row_in_create_mode_names_no_command_line_flag(engine: Engine, tech: User) -> None:
    """Reported: "(or --mode upsert)" reached the web import page."""
    content = "code,sex\nRA-0101,female\n"
    do_import(engine, tech, "donors", content)
    report = do_import(engine, tech, "donors", content)
    (error,) = report.errors
    assert error.message == "donor RA-0101 already exists; choose upsert mode to update existing rows"
    assert error.expected == "a new key (or upsert mode)"
    assert "--" not in error.message + error.expected


def test_an_excision_in_the_future_is_refused_by_the_import_too(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
    before = snapshot(engine)
    report = do_import(engine, tech, "sampling_sites", SITES + "RA-0001,tumour_region,L02,A,LIVER,2099-01-01 09:00,\n")
    assert snapshot(engine) == before
    (error,) = report.errors
    assert (error.row, error.column) == (2, "excised_at")
    assert error.message.startswith("Excised (01 Jan 2099 09:00 Europe/London) is in the future")
    assert error.expected.startswith("is in the future")  # the reason, without the field and value


def test_the_import_holds_the_input_models_text_limits(engine: Engine, tech: User) -> None:
    """The import once allowed 500 characters of gross description and the form 5000; both are the column's 500."""
    with session_scope(engine) as session:
        make_case(session, tech)
    too_long = do_import(engine, tech, "sampling_sites", SITES + f"RA-0001,tumour_region,L02,A,LIVER,2026-03-14 06:00,{'g' * 501}\n")
    assert [(e.column, e.expected) for e in too_long.errors] == [("gross_description", "text of at most 500 characters")]
    fits = do_import(engine, tech, "sampling_sites", SITES + f"RA-0001,tumour_region,L02,A,LIVER,2026-03-14 06:00,{'g' * 500}\n")
    assert fits.ok, fits.errors


def test_a_specimen_row_with_an_implausible_quantity_or_a_future_time_is_refused(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech)
    content = (
        "code,donor_code,sampling_site,storage_format,quantity,stabilised_at\n"
        "Z-1,RA-0001,L02-A,snap_frozen,1000000000 mg,\n"
        "Z-2,RA-0001,L02-A,snap_frozen,5 mg,2099-01-01 10:00\n"
    )
    report = do_import(engine, tech, "specimens", content)
    assert {(e.row, e.column) for e in report.errors} == {(2, "quantity"), (3, "stabilised_at")}
    quantity = next(e for e in report.errors if e.row == 2)
    assert quantity.message.startswith("Quantity (1,000,000,000) is more than 100,000 mg")
