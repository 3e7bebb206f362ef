"""Bulk import from spreadsheets, blank templates, and specimen labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from biobank.cli.progress import Bar, QuietOption
from biobank.config import get_settings
from biobank.imports.registry import import_kind_names

if TYPE_CHECKING:
    from biobank.imports.report import ImportReport


def _kinds_help() -> str:
    """Every import kind, from the registry (a new kind is listed without editing this file)."""
    names = import_kind_names()
    return f"What the file holds: {', '.join(names[:-1])} or {names[-1]}." if len(names) > 1 else f"{names[0]}."


KindArgument = Annotated[str, typer.Argument(help=_kinds_help())]


@handle_errors
def import_file(
    kind: KindArgument,
    file: Annotated[Path, typer.Argument(help="CSV, TSV or .xlsx file (a filled-in template).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check every row (the database's rules too) and report; keep nothing.")] = False,
    mode: Annotated[str, typer.Option("--mode", help="create: new rows only; upsert: update rows by natural key.")] = "create",
    errors: Annotated[Path | None, typer.Option("--errors", help="Write the error report (and notes) to this CSV.")] = None,
    sheet: Annotated[str | None, typer.Option("--sheet", help="Worksheet of an .xlsx file (default: the first).")] = None,
    month_first: Annotated[bool, typer.Option("--month-first", help="Read 03/04/2024 as March 4 (default: day first).")] = False,
    map_file: Annotated[Path | None, typer.Option("--map", help="collection_log: the mapping file (TOML) naming which header is which field; see docs/collection-log.md.")] = None,
    create_containers: Annotated[bool, typer.Option("--create-containers", help="collection_log: create a box path's missing containers (kinds assumed, noted) instead of refusing it.")] = False,
    suggest_map: Annotated[bool, typer.Option("--suggest-map", help="collection_log: write a first mapping file from the log's headers and values (to -o or stdout); imports nothing.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="With --suggest-map: write the mapping here.")] = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
    user: UserOption = None,
) -> None:
    """Import a spreadsheet of KIND in one transaction, all or nothing: every row is checked, and written as it goes.

    Exits 2 with a summary when any row has an error or the database refuses one (nothing stays written); every error
    names the row, column, value and what was expected, and every reinterpreted cell is reported as a note. A dry run
    writes and checks everything the same way, the database's own rules included, then takes it all back.
    """
    from biobank.imports.engine import errors_csv, run_import

    if not file.is_file():
        raise fail(f"file={str(file)!r}: not found")
    if suggest_map:
        _suggest_map(kind, file, output, as_json)
        return
    if _is_collection_log(kind):
        report = _collection_log(file, map_file, create_containers, dry_run=dry_run, sheet=sheet, user=user)
    elif map_file is not None or create_containers:
        raise fail(f"--map and --create-containers are for collection_log, not {kind!r}")
    else:
        with unit_of_work() as session, Bar(quiet=quiet) as bar:
            actor = acting_user(session, user)
            report = run_import(session, actor=actor, kind=kind, source=file, filename=file.name, mode=mode,
                                dry_run=dry_run, dayfirst=not month_first, sheet=sheet,
                                progress=bar.phases({"validate": "reading and checking", "write": "writing"}))
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


def _is_collection_log(kind: str) -> bool:
    return kind.strip().lower().replace("-", "_") == "collection_log"


def _collection_log(file: Path, map_file: Path | None, create_containers: bool, *, dry_run: bool,
                    sheet: str | None, user: str | None) -> ImportReport:
    """``import collection_log FILE --map MAP.toml``: the lab's log through its mapping (rules in the library)."""
    from biobank.imports.kinds.collection_log import run_collection_log
    from biobank.imports.mapping import load_mapping

    if map_file is None:
        raise fail("collection_log needs --map MAP.toml (write a first one with --suggest-map)")
    mapping = load_mapping(map_file)
    with unit_of_work() as session:
        actor = acting_user(session, user)
        return run_collection_log(session, actor=actor, source=file, filename=file.name, mapping=mapping,
                                  dry_run=dry_run, create_containers=create_containers, sheet=sheet)


def _suggest_map(kind: str, file: Path, output: Path | None, as_json: bool) -> None:
    """``--suggest-map``: the first mapping file for a collection log, and what it could not map."""
    from biobank.imports.read import ImportFormatError
    from biobank.imports.suggest_map import suggest_map

    if kind != "collection_log":
        raise fail(f"--suggest-map is for collection_log, not {kind!r}")
    try:
        text, unmapped = suggest_map(file)
    except ImportFormatError as exc:
        raise fail(f"file={file.name!r}: {exc.message}") from None
    if output is not None:
        output.write_text(text, encoding="utf-8")
    if as_json:
        emit_json({"mapping": text if output is None else str(output), "unmapped": unmapped})
        return
    if output is None:
        typer.echo(text, nl=False)
    else:
        typer.echo(f"mapping written to {output}", err=True)
    for item in unmapped:
        typer.echo(f"not mapped: {item}", err=True)


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
