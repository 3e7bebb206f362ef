"""The death call and the case's day: ``biobank autopsy open|times|start|end|notified|labels|checklist|list``.

Times are typed in the lab's time zone (``2026-03-14 02:10``), with a zone (``2026-03-14T02:10+00:00``), or as
``now``. Every command writes in one unit of work: a refusal leaves the database as it was.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from biobank.cli.common import (
    TIME_HELP,
    JsonOption,
    UserOption,
    acting_user,
    emit,
    emit_json,
    fail,
    handle_errors,
    read,
    typed_time,
    unit_of_work,
)
from biobank.cli.core import autopsy_app
from biobank.domain.errors import shown_time
from biobank.labels.formats import LABEL_FORMATS
from biobank.models import Autopsy
from biobank.queries import core as queries
from biobank.services import cases, collection
from biobank.services.checklist import ChecklistItem
from biobank.services.inputs import DeathCall

CaseArgument = Annotated[str, typer.Argument(help="Case code, e.g. RAP-2026-001.")]
AtOption = Annotated[str | None, typer.Option("--at", help=f"When ({TIME_HELP}); default now.")]
ReasonOption = Annotated[
    str | None,
    typer.Option("--reason", help="Why a time already recorded is changed (required then; kept in the audit log)."),
]
LabelFormatOption = Annotated[str, typer.Option("--label-format", help=f"{', '.join(sorted(LABEL_FORMATS))}.")]


def _label_file(path: Path | None) -> bool:
    """Whether ``path`` (when given) is ZPL; refused before anything is written when it cannot be written."""
    if path is None:
        return False
    if path.suffix.lower() not in (".pdf", ".zpl"):
        raise fail(f"{path}: name a .pdf file (a label sheet) or a .zpl file (a Zebra printer)")
    if not path.parent.is_dir():
        raise fail(f"{path}: the folder {path.parent} does not exist")
    return path.suffix.lower() == ".zpl"


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise fail(f"{path}: {exc.strerror or exc}") from None


def _case(autopsy: Autopsy) -> dict[str, Any]:
    """What a command prints about the case it changed (read inside the unit of work: objects expire on commit)."""
    return {
        "case": autopsy.case_code,
        "status": autopsy.status,
        "death_at": autopsy.death_at,
        "death_place": autopsy.death_place,
        "death_reported_by": autopsy.death_reported_by,
        "death_reported_at": autopsy.death_reported_at,
        "refrigerated_at": autopsy.refrigerated_at,
        "start_at": autopsy.start_at,
        "end_at": autopsy.end_at,
        "prosector": autopsy.prosector,
        "team": autopsy.team,
        "labels_printed_at": autopsy.labels_printed_at,
        "team_notified_at": autopsy.team_notified_at,
    }


def _shown(record: dict[str, Any]) -> dict[str, Any]:
    """Times in the lab's zone, as the dashboard shows them."""
    return {key: shown_time(value) if isinstance(value, datetime) else value for key, value in record.items()}


def _items(items: list[ChecklistItem]) -> list[dict[str, Any]]:
    return [{"key": i.key, "item": i.label, "done": i.done, "detail": i.detail} for i in items]


def _checklist_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"": "[x]" if i["done"] else "[ ]", "item": i["item"], "detail": i["detail"]} for i in items]


def _print_checklist(items: list[dict[str, Any]]) -> None:
    for row in _checklist_rows(items):
        typer.echo(f"{row['']} {row['item']}: {row['detail']}")


@autopsy_app.command("open")
@handle_errors
def autopsy_open(
    donor: Annotated[str, typer.Argument(help="Code of the donor who died, e.g. RA-0001.")],
    death: Annotated[str, typer.Option("--death", help=f"Time of death ({TIME_HELP}).")],
    place: Annotated[str, typer.Option("--place", help="Where the donor died (hospital and ward, hospice, home).")],
    reported_by: Annotated[str, typer.Option("--reported-by", help="Who reported the death (name and role).")],
    reported_at: Annotated[str | None, typer.Option("--reported-at", help=f"When it was reported ({TIME_HELP}); default now.")] = None,
    refrigerated: Annotated[str | None, typer.Option("--refrigerated", help=f"When the body was refrigerated ({TIME_HELP}).")] = None,
    case: Annotated[str | None, typer.Option("--case", help="Case code; default the next RAP-<year>-<number>.")] = None,
    prosector: Annotated[str | None, typer.Option("--prosector", help="Who will do the autopsy.")] = None,
    team: Annotated[str | None, typer.Option("--team", help="The team called in.")] = None,
    institution: Annotated[str | None, typer.Option("--institution", help="Where the autopsy takes place.")] = None,
    print_labels: Annotated[Path | None, typer.Option("--print-labels", help="Pre-print the case's labels to this .pdf or .zpl file in the same step.")] = None,
    label_format: LabelFormatOption = "cryotube",
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """Take the death call: open the case (scheduled until the autopsy starts) and, with --print-labels, pre-print
    its labels in the same step. Prints the call checklist: what is still to do."""
    zpl = _label_file(print_labels)
    data = DeathCall.build(
        donor_code=donor, death_at=typed_time("death_at", death), death_place=place, death_reported_by=reported_by,
        death_reported_at=typed_time("death_reported_at", reported_at),
        refrigerated_at=typed_time("refrigerated_at", refrigerated), case_code=case, institution=institution,
        prosector=prosector, team=team,
    )
    written = False
    try:
        with unit_of_work() as session:
            actor = acting_user(session, user)
            autopsy = cases.open_case(session, actor=actor, data=data)
            labels = 0
            if print_labels is not None:
                printed = cases.print_case_labels(session, actor=actor, case_code=autopsy.case_code, fmt=label_format,
                                                  zpl=zpl)
                _write(print_labels, printed.data)  # inside the unit of work: a file that cannot be written undoes the call
                written, labels = True, printed.count
            opened = _case(autopsy)
            checklist = _items(cases.call_checklist(session, autopsy.case_code))
    except BaseException:
        if written and print_labels is not None:
            print_labels.unlink(missing_ok=True)  # the call was not recorded: no labels for a case that does not exist
        raise
    if as_json:
        emit_json({**opened, "labels": labels, "checklist": checklist})
        return
    typer.echo(f"case {opened['case']} opened for donor {donor.strip()}: died {shown_time(opened['death_at'])} "
               f"at {opened['death_place']}")
    if print_labels is not None:
        typer.echo(f"wrote {labels} label(s) to {print_labels}")
    _print_checklist(checklist)


@autopsy_app.command("times")
@handle_errors
def autopsy_times(
    case: CaseArgument,
    death: Annotated[str | None, typer.Option("--death", help=f"Time of death ({TIME_HELP}).")] = None,
    refrigerated: Annotated[str | None, typer.Option("--refrigerated", help=f"Refrigeration ({TIME_HELP}).")] = None,
    start: Annotated[str | None, typer.Option("--start", help=f"Autopsy start ({TIME_HELP}).")] = None,
    end: Annotated[str | None, typer.Option("--end", help=f"Autopsy end ({TIME_HELP}).")] = None,
    reason: ReasonOption = None,
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """Record or correct the case's times; changing one already recorded needs --reason (the audit log keeps it
    with the old and the new time). Prints the times and the PMI figures that follow from them."""
    times = {"death_at": typed_time("death_at", death), "refrigerated_at": typed_time("refrigerated_at", refrigerated),
             "start_at": typed_time("start_at", start), "end_at": typed_time("end_at", end)}
    if all(value is None for value in times.values()):
        raise fail("give at least one of --death, --refrigerated, --start, --end")
    with unit_of_work() as session:
        autopsy = collection.update_autopsy_times(session, actor=acting_user(session, user), case_code=case,
                                                  reason=reason, **times)
        record = {key: value for key, value in _case(autopsy).items() if key in FIGURE_TIMES}
        summary = queries.autopsy_summary(session, autopsy.case_code)
    record |= {key: summary[key] for key in FIGURES}
    emit(record if as_json else _shown(record), as_json=as_json)


#: What ``times`` prints: the case's times, then the PMI figures computed from them.
FIGURE_TIMES = ("case", "status", "death_at", "refrigerated_at", "start_at", "end_at")
FIGURES = ("warm_pmi_hours", "pmi_at_start_hours", "last_specimen_pmi_hours", "median_pmi_hours", "specimens_beyond_limit")


def _step(record: dict[str, Any], as_json: bool, message: str) -> None:
    if as_json:
        emit_json(record)
    else:
        typer.echo(message)


@autopsy_app.command("start")
@handle_errors
def autopsy_start(case: CaseArgument, at: AtOption = None, as_json: JsonOption = False, user: UserOption = None) -> None:
    """The autopsy starts: the case is in progress and the live board shows it."""
    with unit_of_work() as session:
        record = _case(cases.start_autopsy(session, actor=acting_user(session, user), case_code=case,
                                           at=typed_time("start_at", at)))
    pmi = record["start_at"] - record["death_at"]
    _step(record, as_json, f"case {record['case']} started {shown_time(record['start_at'])} "
                           f"({pmi.total_seconds() / 3600:.1f} h after death): in progress")


@autopsy_app.command("end")
@handle_errors
def autopsy_end(case: CaseArgument, at: AtOption = None, as_json: JsonOption = False, user: UserOption = None) -> None:
    """The autopsy ends: the case is complete."""
    with unit_of_work() as session:
        record = _case(cases.end_autopsy(session, actor=acting_user(session, user), case_code=case,
                                         at=typed_time("end_at", at)))
    _step(record, as_json, f"case {record['case']} ended {shown_time(record['end_at'])}: complete")


@autopsy_app.command("notified")
@handle_errors
def autopsy_notified(
    case: CaseArgument, at: AtOption = None, reason: ReasonOption = None, as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """The prosector and the team were told of the case (a change of the time already recorded needs --reason)."""
    with unit_of_work() as session:
        record = _case(cases.mark_team_notified(session, actor=acting_user(session, user), case_code=case,
                                                at=typed_time("team_notified_at", at), reason=reason))
    _step(record, as_json, f"case {record['case']}: team notified {shown_time(record['team_notified_at'])}")


@autopsy_app.command("labels")
@handle_errors
def autopsy_labels(
    case: CaseArgument,
    output: Annotated[Path, typer.Option("-o", "--output", help="The .pdf or .zpl file to write.")],
    label_format: LabelFormatOption = "cryotube",
    user: UserOption = None,
) -> None:
    """Pre-print the case's labels (the planned regions of its lesions not yet collected) and record them printed."""
    zpl = _label_file(output)
    with unit_of_work() as session:
        printed = cases.print_case_labels(session, actor=acting_user(session, user), case_code=case, fmt=label_format,
                                          zpl=zpl)
        _write(output, printed.data)
    typer.echo(f"wrote {printed.count} label(s) of case {printed.case} to {output}")


@autopsy_app.command("checklist")
@handle_errors
def autopsy_checklist(case: CaseArgument, as_json: JsonOption = False) -> None:
    """The call checklist: consent in force and its scopes, the time of death, refrigeration, labels printed, team
    notified; each done or missing, with what to do."""
    items = _items(read(cases.call_checklist, case))
    if as_json:
        emit_json(items)
        return
    _print_checklist(items)


@autopsy_app.command("list")
@handle_errors
def autopsy_list(
    state: Annotated[str | None, typer.Option("--state", help="scheduled, in_progress or complete; default all.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The cases by state (scheduled, in progress, complete), the latest death first, with their PMI figures."""
    if state is not None and state not in cases.STATES:
        raise fail(f"--state {state}: choose one of {', '.join(cases.STATES)}")
    rows = [row for row in read(cases.case_rows) if state is None or row["status"] == state]
    if as_json:
        emit_json(rows)
        return
    columns = ["case", "donor", "status", "death_at", "refrigerated_at", "start_at", "end_at", "warm_pmi_hours",
               "pmi_at_start_hours", "median_pmi_hours", "specimens", "labels_printed_at", "team_notified_at"]
    emit([_shown(row) for row in rows], as_json=False, columns=columns)
