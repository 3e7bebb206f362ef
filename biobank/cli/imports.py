"""Bulk import from spreadsheets, blank templates, and specimen labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biobank.cli.common import (
    JsonOption,
    UserOption,
    acting_user,
    emit_json,
    fail,
    handle_errors,
    unit_of_work,
)
from biobank.config import get_settings

KindArgument = Annotated[
    str,
    typer.Argument(help="donors, consents, treatment_lines, autopsies, lesions, sampling_sites, specimens, containers, "
                   "placements, models, passages, model_qc, passage_specimens, passage_descendants or sequencing "
                   "(sequencing results of a submitted plan)."),
]


@handle_errors
def import_file(
    kind: KindArgument,
    file: Annotated[Path, typer.Argument(help="CSV, TSV or .xlsx file (a filled-in template).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and report; write nothing.")] = False,
    mode: Annotated[str, typer.Option("--mode", help="create: new rows only; upsert: update rows by natural key.")] = "create",
    errors: Annotated[Path | None, typer.Option("--errors", help="Write the error report (and notes) to this CSV.")] = None,
    sheet: Annotated[str | None, typer.Option("--sheet", help="Worksheet of an .xlsx file (default: the first).")] = None,
    month_first: Annotated[bool, typer.Option("--month-first", help="Read 03/04/2024 as March 4 (default: day first).")] = False,
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """Import a spreadsheet of KIND: the whole file is validated first and written in one transaction, or not at all.

    Exits 2 with a summary when any row has an error (nothing is written); every error names the row, column, value
    and what was expected, and every reinterpreted cell is reported as a note.
    """
    from biobank.imports.engine import errors_csv, run_import

    if not file.is_file():
        raise fail(f"file={str(file)!r}: not found")
    with unit_of_work() as session:
        actor = acting_user(session, user)
        report = run_import(session, actor=actor, kind=kind, source=file, filename=file.name, mode=mode,
                            dry_run=dry_run, dayfirst=not month_first, sheet=sheet)
    if errors is not None:
        errors.write_text(errors_csv(report, include_notes=True), encoding="utf-8")
    if as_json:
        emit_json(report.as_dict())
    else:
        for note in report.file_notes:
            typer.echo(f"note: {note}")
        for n in report.notes[:20]:
            typer.echo(f"note: row {n.row}, {n.column}: {n.note}")
        if report.note_count > 20:
            typer.echo(f"note: ... {report.note_count - 20} more note(s){' in ' + str(errors) if errors else ''}")
        for e in report.errors[:50]:
            where = f"row {e.row}" if e.row else "file"
            column = f", {e.column}" if e.column else ""
            typer.echo(f"error: {where}{column}: {e.message}", err=True)
        if report.error_count > 50:
            typer.echo(f"error: ... {report.error_count - 50} more error(s){' in ' + str(errors) if errors else ''}", err=True)
        if mode == "create" and any("upsert mode" in e.message for e in report.errors):
            typer.echo("hint: run again with --mode upsert to update the rows that already exist", err=True)
        typer.echo(report.summary(), err=not report.ok)
    if not report.ok:
        raise typer.Exit(2)


@handle_errors
def template(
    kind: KindArgument,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write (.csv or .xlsx); default: print CSV.")] = None,
) -> None:
    """Write the blank template of KIND: CSV with a # comment per column, or Excel with a 'columns' sheet."""
    from biobank.imports.templates import template_csv, template_xlsx

    zone = get_settings().timezone
    if output is None:
        typer.echo(template_csv(kind, tz_name=zone), nl=False)
        return
    if output.suffix.lower() == ".xlsx":
        output.write_bytes(template_xlsx(kind, tz_name=zone))
    elif output.suffix.lower() in (".csv", ".txt"):
        output.write_text(template_csv(kind, tz_name=zone), encoding="utf-8")
    else:
        raise fail(f"output={str(output)!r}: write a .csv or .xlsx file")
    typer.echo(f"wrote {output}")


@handle_errors
def labels(
    codes: Annotated[list[str] | None, typer.Argument(help="Specimen codes.")] = None,
    case: Annotated[str | None, typer.Option("--case", help="Every specimen of this case.")] = None,
    planned: Annotated[str | None, typer.Option("--planned", help="Pre-print the regions of this case's lesions not yet collected.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="cryotube, cassette or slide.")] = "cryotube",
    zpl: Annotated[bool, typer.Option("--zpl", help="ZPL for a Zebra printer instead of a PDF sheet.")] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write (PDF or ZPL).")] = None,
) -> None:
    """Print specimen labels (DataMatrix or QR plus code, donor, site, format and date) as a PDF sheet or ZPL."""
    from biobank.labels import service

    chosen = sum(bool(x) for x in (codes, case, planned))
    if chosen != 1:
        raise fail("give specimen codes, or --case CASE, or --planned CASE (exactly one)")
    if output is None:
        raise fail("give -o FILE (.pdf or .zpl)")
    with unit_of_work() as session:
        if planned:
            items = service.planned_labels(session, planned)
        else:
            items = service.labels_for(session, codes or service.case_codes(session, case or ""))
        data = service.render(items, fmt, zpl=zpl)
    output.write_bytes(data)
    typer.echo(f"wrote {len(items)} label(s) to {output}")


__all__ = ["import_file", "labels", "template"]
