"""``biobank plan`` (draft, suggest, check, approve analysis plans) and ``biobank export`` (files for pipelines)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlmodel import Session

from biobank.cli.common import (
    JsonOption,
    UserOption,
    acting_user,
    emit,
    emit_json,
    emit_table,
    fail,
    handle_errors,
    read,
    unit_of_work,
)
from biobank.cli.progress import Bar, QuietOption
from biobank.domain.errors import invalid
from biobank.exports import log as log_reads
from biobank.exports import service as export_service
from biobank.exports.formats import sarek
from biobank.exports.log import CANCERMODELS, MAX_LIMIT
from biobank.queries import plans as plan_reads
from biobank.services import plan_versions, planning, reservations
from biobank.services.budget import Budget
from biobank.services.plan_rules import PlanRulesError, Report

plan_app = typer.Typer(
    help="Analysis plans: which specimens of which donors go to sequencing, and why.", no_args_is_help=True
)
export_app = typer.Typer(
    help="Files for analysis pipelines and data exchange, from a plan or from donors (de-identified).",
    no_args_is_help=True,
)

DonorOption = Annotated[
    list[str] | None, typer.Option("--donor", "-d", help="Donor code (repeat for several).")
]
AssayOption = Annotated[str, typer.Option(help="Assay: wgs, wes, panel or rna_seq.")]
FlowCellOption = Annotated[
    str | None,
    typer.Option(help="Flow cell kind for the budget, e.g. 'NovaSeq X 10B' (default: the plan's, else the "
                      "plan_flow_cell setting); 'biobank plan budget' lists the known kinds in its error."),
]


def _print_report(report: Report, as_json: bool) -> None:
    if as_json:
        emit_json({"summary": report.summary(), "ok": report.ok, "findings": report.to_records()})
        return
    emit_table(report.to_records(), ["severity", "rule", "donor", "specimen", "message"])
    typer.echo(report.summary())


def _refused(exc: PlanRulesError, as_json: bool) -> typer.Exit:
    """Print the rule report that refused the action and the error; the exit (code 2) to raise."""
    _print_report(exc.report, as_json)
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


def _selection_without(
    session: Session, code: str, specimens: list[str], *, must_be_in: bool = False
) -> list[tuple[str, str, str | None]]:
    """The plan's included specimens as (code, role, reason), less ``specimens`` (codes in any letter case); with
    ``must_be_in``, each of ``specimens`` must be in the plan (excluding what is not there is a mistyped code)."""
    rows = plan_reads.plan_detail(session, code)["specimens_detail"]
    wanted = {s.strip().upper() for s in specimens}
    if must_be_in:
        included = {r["specimen_code"].upper() for r in rows}
        missing = next((s for s in specimens if s.strip().upper() not in included), None)
        if missing is not None:
            raise invalid("specimen", missing, f"is not in plan {code}")
    return [(r["specimen_code"], r["role"], r["reason"]) for r in rows if r["specimen_code"].upper() not in wanted]


@plan_app.command("create")
@handle_errors
def plan_create(
    code: Annotated[str, typer.Argument(help="Plan code, e.g. WGS-2026-01.")],
    name: Annotated[str, typer.Option(help="Descriptive, unique name.")],
    purpose: Annotated[
        str, typer.Option(help="phylogeny, migration_history or model_vs_tumour.")
    ] = "phylogeny",
    assay: AssayOption = "wgs",
    depth: Annotated[float | None, typer.Option(help="Target depth (e.g. 60 for 60x).")] = None,
    donor: DonorOption = None,
    primary_site: Annotated[str | None, typer.Option(help="Primary site code when not the donor's.")] = None,
    unknown_primary: Annotated[bool, typer.Option(help="The primary site is unknown.")] = False,
    primary_unsampled: Annotated[
        str | None,
        typer.Option(
            help="Declare the primary tumour unsampled, with the reason (migration-history plans; at most 500 "
            "characters; carried into the MACHINA and Metient notes)."
        ),
    ] = None,
    suggest: Annotated[bool, typer.Option(help="Fill the plan with the suggested specimens.")] = True,
    flow_cell: FlowCellOption = None,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a draft plan for the donors, filled with the suggestion (PI only)."""
    with unit_of_work() as session:
        actor = acting_user(session, user)
        planning.create_plan(
            session,
            actor=actor,
            code=code,
            name=name,
            purpose=purpose,
            assay=assay,
            donor_codes=donor or [],
            target_depth=depth,
            primary_site_code=primary_site,
            unknown_primary=unknown_primary,
            use_suggestion=suggest,
            primary_unsampled_reason=primary_unsampled,
            flow_cell=flow_cell,
        )
        session.flush()
        detail = plan_reads.plan_detail(session, code)
    emit(
        detail,
        as_json=as_json,
        text=f"plan {code} created: {detail['specimens']} specimen(s) of {detail['donors']} donor(s); "
        f"{detail['report_summary']}",
    )


@plan_app.command("suggest")
@handle_errors
def plan_suggest(
    donor: DonorOption = None,
    assay: AssayOption = "wgs",
    purpose: Annotated[
        str, typer.Option(help="phylogeny, migration_history or model_vs_tumour (models with their source region).")
    ] = "phylogeny",
    depth: Annotated[float | None, typer.Option(help="Target depth (e.g. 90): deeper plans need more DNA.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Suggest the germline normal and the best specimen per tumour region, with the reason for each; a withdrawn
    donor is refused."""
    suggestion = read(planning.suggest, donor_codes=donor or [], assay=assay, purpose=purpose, depth=depth)
    if as_json:
        emit_json({"choices": suggestion.to_records(), "skipped": suggestion.skipped})
        return
    emit_table(suggestion.to_records(), ["donor_code", "role", "specimen_code", "reason"])
    for line in suggestion.skipped:
        typer.echo(f"skipped: {line}")


@plan_app.command("check")
@handle_errors
def plan_check(code: Annotated[str, typer.Argument(help="Plan code.")], as_json: JsonOption = False) -> None:
    """Run every planning rule; exit code 2 when any rule reports an error."""
    report = read(planning.check_plan, code)
    _print_report(report, as_json)
    if not report.ok:
        raise typer.Exit(2)


@plan_app.command("approve")
@handle_errors
def plan_approve(
    code: Annotated[str, typer.Argument(help="Plan code.")],
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a draft (PI only); refused with the rule report while errors remain."""
    try:
        with unit_of_work() as session:
            report = planning.approve_plan(session, actor=acting_user(session, user), plan_code=code)
    except PlanRulesError as exc:
        raise _refused(exc, as_json) from None
    typer.echo(f"plan {code} approved ({report.summary()})")


@plan_app.command("submit")
@handle_errors
def plan_submit(code: Annotated[str, typer.Argument(help="Plan code.")], user: UserOption = None) -> None:
    """Mark an approved plan as submitted to sequencing (rules and consent checked again)."""
    with unit_of_work() as session:
        planning.submit_plan(session, actor=acting_user(session, user), plan_code=code)
    typer.echo(f"plan {code} submitted")


@plan_app.command("include")
@handle_errors
def plan_include(
    code: Annotated[str, typer.Argument(help="Plan code.")],
    specimen: Annotated[list[str], typer.Argument(help="Specimen code(s).")],
    role: Annotated[
        str,
        typer.Option(
            help="tumour, germline_normal, normal_tissue or model (material grown in a PDX, organoid or cell line)."
        ),
    ] = "tumour",
    reason: Annotated[str | None, typer.Option(help="Why it is included.")] = None,
    assay: Annotated[
        str | None,
        typer.Option(help="This sample's assay when not the plan's (wgs, wes, panel, rna_seq; 'plan' for the plan's)."),
    ] = None,
    depth: Annotated[
        float | None,
        typer.Option(help="This sample's depth: x of coverage, million read pairs for RNA-seq (0: the default)."),
    ] = None,
    library: Annotated[str | None, typer.Option(help="Library kit ('' for none).")] = None,
    user: UserOption = None,
) -> None:
    """Add specimens to a draft (or change their role, assay, depth or library kit)."""
    own_assay: str | None = planning.KEEP if assay is None else None if assay.strip().lower() == "plan" else assay
    own_depth: float | None = planning.KEEP if depth is None else None if depth == 0 else depth
    own_library: str | None = planning.KEEP if library is None else library
    with unit_of_work() as session:
        current = _selection_without(session, code, specimen)
        planning.set_specimens(
            session,
            actor=acting_user(session, user),
            plan_code=code,
            selection=[*current, *(planning.SampleChoice(s, role, reason, own_assay, own_depth, own_library)
                                   for s in specimen)],
        )
    extra = ", ".join(f"{name} {value}" for name, value in (("assay", assay), ("depth", depth), ("library", library))
                      if value is not None)
    typer.echo(f"plan {code}: {len(specimen)} specimen(s) included as {role}" + (f" ({extra})" if extra else ""))


@plan_app.command("primary-unsampled")
@handle_errors
def plan_primary_unsampled(
    code: Annotated[str, typer.Argument(help="Plan code (a draft).")],
    reason: Annotated[
        str | None, typer.Argument(help="Why the primary tumour is not sampled (at most 500 characters).")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Withdraw the declaration.")] = False,
    user: UserOption = None,
) -> None:
    """Declare a draft's primary tumour unsampled with the reason, or withdraw the declaration (--clear)."""
    if clear == (reason is not None):
        raise fail("give the reason, or --clear to withdraw the declaration (not both)")
    with unit_of_work() as session:
        planning.set_primary_unsampled(
            session, actor=acting_user(session, user), plan_code=code, reason=None if clear else reason
        )
    if clear:
        typer.echo(f"plan {code}: the primary-unsampled declaration is withdrawn")
    else:
        typer.echo(f"plan {code}: primary declared unsampled ({planning.unsampled_reason(reason)})")


@plan_app.command("exclude")
@handle_errors
def plan_exclude(
    code: Annotated[str, typer.Argument(help="Plan code.")],
    specimen: Annotated[list[str], typer.Argument(help="Specimen code(s).")],
    user: UserOption = None,
) -> None:
    """Take specimens out of a draft (kept as excluded rows: the change is audited)."""
    with unit_of_work() as session:
        current = _selection_without(session, code, specimen, must_be_in=True)
        planning.set_specimens(session, actor=acting_user(session, user), plan_code=code, selection=current)
    typer.echo(f"plan {code}: {len(specimen)} specimen(s) excluded")


@plan_app.command("list")
@handle_errors
def plan_list(as_json: JsonOption = False) -> None:
    """Every plan with its status and counts."""
    columns = ["code", "name", "purpose", "assay", "version", "status", "supersedes", "donors", "specimens",
               "approved_by"]
    emit(read(plan_reads.list_plans), as_json=as_json, columns=columns)


@plan_app.command("show")
@handle_errors
def plan_show(code: Annotated[str, typer.Argument(help="Plan code.")], as_json: JsonOption = False) -> None:
    """A plan: its specimens with role and reason, each sample's assay, depth and library with its Gb, its budget
    line and its rule report."""
    with unit_of_work() as session:
        detail = plan_reads.plan_detail(session, code)
        cost = planning.plan_budget(session, code)
    specimens = ["donor_code", "role", "specimen_code", "region_code", "tumour_cellularity_pct", "reason"]
    report = ["severity", "rule", "donor", "specimen", "message"]
    emit(detail | {"budget": cost.to_dict() if as_json else cost.line()}, as_json=as_json,
         tables=[(detail["specimens_detail"], specimens), (_budget_rows(cost), BUDGET_COLUMNS),
                 (detail["report"], report)])


def _budget_rows(cost: Budget) -> list[dict[str, Any]]:
    """The budget's samples as table rows (Gb to one decimal)."""
    return [r | {"gb": round(r["gb"], 1)} for r in cost.sample_records()]


BUDGET_COLUMNS = ["specimen_code", "role", "assay", "depth", "depth_unit", "library", "gb", "library_cost",
                  "paired_dna"]


@plan_app.command("budget")
@handle_errors
def plan_budget(
    code: Annotated[str, typer.Argument(help="Plan code.")],
    flow_cell: FlowCellOption = None,
    as_json: JsonOption = False,
) -> None:
    """The plan's sequencing budget: each sample's assay, depth, Gb and library cost (RNA-seq with its paired DNA
    sample of the same region), then the total Gb, lanes and flow cells of the kind, and the cost."""
    cost = read(planning.plan_budget, code, flow_cell=flow_cell)
    if as_json:
        emit_json(cost.to_dict())
        return
    emit_table(_budget_rows(cost), BUDGET_COLUMNS)
    typer.echo(f"budget: {cost.line()}")


@plan_app.command("flow-cell")
@handle_errors
def plan_flow_cell(
    code: Annotated[str, typer.Argument(help="Plan code (a draft).")],
    kind: Annotated[str | None, typer.Argument(help="Flow cell kind, e.g. 'NovaSeq X 25B'.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Use the plan_flow_cell setting's kind again.")] = False,
    user: UserOption = None,
) -> None:
    """Name the flow cell kind a draft's budget is computed for (or --clear for the default kind)."""
    if clear == (kind is not None):
        raise fail("give the flow cell kind, or --clear for the default (not both)")
    with unit_of_work() as session:
        plan = planning.set_flow_cell(session, actor=acting_user(session, user), plan_code=code,
                                      flow_cell=None if clear else kind)
        chosen = plan.flow_cell
    typer.echo(f"plan {code}: budget on {chosen}" if chosen else f"plan {code}: budget on the default flow cell kind")


def _export(
    target: str,
    output: Path,
    plan: str | None,
    donor: list[str] | None,
    specimen: list[str] | None,
    user: str | None,
    quiet: bool = False,
    **options: Any,
) -> None:
    """One ``biobank export TARGET``: ``options`` are the target's own (:data:`TARGET_OPTIONS`, --assay,
    --include-models), named as :class:`~biobank.exports.service.ExportRequest` names them. A progress bar (on a
    terminal, without --quiet) shows the export being built, then the bytes written."""
    given: dict[str, Any] = {name: str(value) if isinstance(value, Path) else value for name, value in options.items()}
    request = export_service.ExportRequest(
        target=target, plan_code=plan, donor_codes=tuple(donor or ()), specimen_codes=tuple(specimen or ()), **given
    )
    bar = Bar(quiet=quiet)
    try:
        with bar, unit_of_work() as session:
            building = bar.task(f"{target}: building", total=None, unit="files")
            files = export_service.export(session, actor=acting_user(session, user), request=request)
            building(len(files))
            bar.finish(f"{target}: building")
    except PlanRulesError as exc:
        raise _refused(exc, False) from None
    except export_service.ExportError as exc:
        if exc.field != export_service.MISSING_INPUT_FILES:
            raise
        raise fail(
            f"{exc} (--fastq-dir DIR for FASTQ pairs, --bam-dir DIR for BAM/CRAM files, or --template for a sheet "
            "sarek cannot run until it is filled in)"
        ) from None
    with Bar(quiet=quiet) as writing:
        paths = export_service.write_files(files, target, output, progress=writing.bytes_of(f"{target}: writing"))
    typer.echo(f"{target}: wrote {len(paths)} file(s) to {output}")
    if target == "sarek":
        typer.echo(sarek.describe_sheet(next(iter(files.values())).decode()))
    notes = files.get(export_service.NOTES_FILE)
    for line in notes.decode().splitlines() if notes else []:
        typer.echo(f"note: {line}")


OutputOption = Annotated[
    Path, typer.Option("-o", "--output", help="Output file (single-file targets) or folder.")
]
PlanOption = Annotated[str | None, typer.Option("--plan", "-p", help="Export this plan's specimens.")]
SpecimenOption = Annotated[
    list[str] | None, typer.Option("--specimen", "-s", help="Specimen code (repeat for several).")
]

FastqDirOption = Annotated[
    Path | None, typer.Option(help="Fill lane,fastq_1,fastq_2 from the FASTQ files here.")
]
BamDirOption = Annotated[
    Path | None, typer.Option(help="Fill bam,bai (or cram,crai) from the aligned files here, one per sample.")
]
TemplateOption = Annotated[
    bool,
    typer.Option(help="Write a template sheet without input files (sarek cannot run it until they are filled in)."),
]
FhirVersionOption = Annotated[
    int, typer.Option(min=4, max=5, help="FHIR release: 4 (R4 with the MIABIS-on-FHIR profiles) or 5.")
]
IncludeModelsOption = Annotated[
    bool, typer.Option(help="Also export material grown in models (PDX, organoids), marked as such.")
]
ConipherOption = Annotated[bool, typer.Option(help="CONIPHER's columns (CASE_ID, SAMPLE, ACF) instead.")]
IdentifiedOption = Annotated[bool, typer.Option(help="Keep absolute times (not de-identified).")]

#: Options only some targets take, as (parameter, annotation, default). They come after --specimen, then
#: --assay for a sequencing target, then --user; a target not named here takes only those common options.
TARGET_OPTIONS: dict[str, tuple[tuple[str, Any, Any], ...]] = {
    "sarek": (
        ("fastq_dir", FastqDirOption, None),
        ("bam_dir", BamDirOption, None),
        ("template", TemplateOption, False),
    ),
    "clonal": (("conipher", ConipherOption, False),),
    "fhir": (("fhir_version", FhirVersionOption, 4),),
    "tables": (("identified", IdentifiedOption, False),),
}


def export_command(target: str) -> Callable[..., None]:
    """The ``biobank export TARGET`` command: its help is the target's description in the export registry, its
    options --output, --plan, --donor, --specimen, the target's own (:data:`TARGET_OPTIONS`), --assay for a
    sequencing target, and --user."""
    options: list[tuple[str, Any, Any]] = [
        ("output", OutputOption, inspect.Parameter.empty),
        ("plan", PlanOption, None),
        ("donor", DonorOption, None),
        ("specimen", SpecimenOption, None),
        *TARGET_OPTIONS.get(target, ()),
    ]
    if target in export_service.PATIENT_TISSUE_TARGETS:
        options.append(("include_models", IncludeModelsOption, False))
    if target in export_service.SEQUENCING_TARGETS:
        options.append(("assay", AssayOption, "wgs"))
    options.append(("quiet", QuietOption, False))
    options.append(("user", UserOption, None))

    def command(
        output: Path,
        plan: str | None = None,
        donor: list[str] | None = None,
        specimen: list[str] | None = None,
        user: str | None = None,
        quiet: bool = False,
        **extra: Any,
    ) -> None:
        _export(target, output, plan, donor, specimen, user, quiet, **extra)

    # Typer reads the options from the signature and the help from the docstring.
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [inspect.Parameter(name, kind, default=d, annotation=a) for name, a, d in options]
    command.__signature__ = inspect.Signature(parameters, return_annotation=None)  # type: ignore[attr-defined]  # Typer reads __signature__ to build the options
    command.__annotations__ = {name: annotation for name, annotation, _ in options} | {"return": None}
    command.__name__ = command.__qualname__ = f"export_{target}"
    command.__doc__ = export_service.DESCRIPTIONS[target]
    return handle_errors(command)


for _target in export_service.TARGETS:
    export_app.command(_target)(export_command(_target))


def _files_text(files: list[dict[str, Any]]) -> str:
    """Each file as ``name (bytes, sha256 first 12)``, for a table cell."""
    return "; ".join(f"{f['name']} ({f['bytes']:,} B, sha256 {f['sha256'][:12]})" for f in files)


def _selection_text(selection: dict[str, Any]) -> str:
    return "; ".join(
        f"{key}={','.join(map(str, value)) if isinstance(value, list) else value}" for key, value in selection.items()
    )


def export_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recorded exports as table rows (the JSON output keeps every file's full SHA-256)."""
    return [
        {
            "id": r["id"], "exported_at": r["exported_at"], "user": r["user"], "target": r["target"],
            "donors": r["donor_count"], "specimens": r["specimen_count"], "selection": _selection_text(r["selection"]),
            "files": _files_text(r["files"]),
        }
        for r in records
    ]


EXPORT_LOG_COLUMNS = ["id", "exported_at", "user", "target", "donors", "specimens", "selection", "files"]


@export_app.command("log")
@handle_errors
def export_log(
    target: Annotated[
        str | None, typer.Option(help=f"Only this target: {', '.join((*export_service.TARGETS, CANCERMODELS))}.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIMIT, help="At most this many, newest first.")] = 50,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every recorded export, newest first: when, who, the target, the selection, the donors and specimens carried
    and each file with its SHA-256 (administrators and PIs)."""
    known = (*export_service.TARGETS, CANCERMODELS)
    if target is not None and target.strip() and target.strip().lower() not in known:
        raise invalid("target", target, f"expected one of {', '.join(known)}")
    with unit_of_work() as session:
        records = log_reads.export_log(session, actor=acting_user(session, user), limit=limit, target=target)
    if as_json:
        emit_json(records)
        return
    emit_table(export_rows(records), EXPORT_LOG_COLUMNS)


# ------------------------------------------------------------------------- versions and reservations (issue 18)


ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept with the plan and in the audit log).")]


@plan_app.command("amend")
@handle_errors
def plan_amend(
    code: Annotated[str, typer.Argument(help="Code of an approved or submitted plan.")],
    reason: ReasonOption,
    user: UserOption = None,
) -> None:
    """Copy an approved or submitted plan into a new draft (version + 1); approving the draft supersedes the plan
    and releases what it reserved."""
    with unit_of_work() as session:
        new = plan_versions.amend_plan(session, actor=acting_user(session, user), plan_code=code, reason=reason)
        new_code, version = new.code, new.version
    typer.echo(f"plan {new_code} (version {version}) drafted from {code}: edit it, then approve it to supersede {code}")


@plan_app.command("cancel")
@handle_errors
def plan_cancel(
    code: Annotated[str, typer.Argument(help="Plan code (draft, approved or submitted).")],
    reason: ReasonOption,
    user: UserOption = None,
) -> None:
    """Cancel a plan: what it reserved is released (an approved or submitted plan: PI only)."""
    with unit_of_work() as session:
        plan = plan_versions.cancel_plan(session, actor=acting_user(session, user), plan_code=code, reason=reason)
        cancelled = plan.code
    typer.echo(f"plan {cancelled} cancelled; its reservations are released")


RESERVATION_COLUMNS = ["specimen_code", "role", "unit", "reserved", "remaining", "promised_elsewhere", "available",
                       "held_by"]


@plan_app.command("reservations")
@handle_errors
def plan_reservations(code: Annotated[str, typer.Argument(help="Plan code.")], as_json: JsonOption = False) -> None:
    """What the plan reserved of each specimen at approval, what remains and what others hold of it."""
    data = read(reservations.reservations_of, code)
    if as_json:
        emit_json(data)
        return
    typer.echo(f"plan {data['plan']} version {data['version']}: {data['status']}"
               + (" (holds its reservations)" if data["holding"] else " (holds nothing)"))
    emit_table(data["samples"], RESERVATION_COLUMNS)

