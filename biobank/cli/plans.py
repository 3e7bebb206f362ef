"""``biobank plan`` (draft, suggest, check, approve analysis plans) and ``biobank export`` (files for pipelines)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from biobank.cli.common import (
    JsonOption,
    UserOption,
    acting_user,
    emit_json,
    emit_mapping,
    emit_table,
    handle_errors,
    unit_of_work,
)
from biobank.exports import service as export_service
from biobank.services import planning
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


def _print_report(report: Report, as_json: bool) -> None:
    if as_json:
        emit_json({"summary": report.summary(), "ok": report.ok, "findings": report.to_records()})
        return
    emit_table(report.to_records(), ["severity", "rule", "donor", "specimen", "message"])
    typer.echo(report.summary())


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
    suggest: Annotated[bool, typer.Option(help="Fill the plan with the suggested specimens.")] = True,
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
        )
        session.flush()
        detail = planning.plan_detail(session, code)
    if as_json:
        emit_json(detail)
    else:
        typer.echo(
            f"plan {code} created: {detail['specimens']} specimen(s) of {detail['donors']} donor(s); {detail['report_summary']}"
        )


@plan_app.command("suggest")
@handle_errors
def plan_suggest(donor: DonorOption = None, assay: AssayOption = "wgs", as_json: JsonOption = False) -> None:
    """Suggest the germline normal and the best specimen per tumour region, with the reason for each."""
    with unit_of_work() as session:
        suggestion = planning.suggest(session, donor_codes=donor or [], assay=assay)
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
    with unit_of_work() as session:
        report = planning.check_plan(session, code)
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
        _print_report(exc.report, as_json)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
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
    role: Annotated[str, typer.Option(help="tumour, germline_normal or normal_tissue.")] = "tumour",
    reason: Annotated[str | None, typer.Option(help="Why it is included.")] = None,
    user: UserOption = None,
) -> None:
    """Add specimens to a draft (or change their role)."""
    with unit_of_work() as session:
        detail = planning.plan_detail(session, code)
        current = [
            (r["specimen_code"], r["role"], r["reason"])
            for r in detail["specimens_detail"]
            if r["specimen_code"] not in specimen
        ]
        planning.set_specimens(
            session,
            actor=acting_user(session, user),
            plan_code=code,
            selection=current + [(s, role, reason) for s in specimen],
        )
    typer.echo(f"plan {code}: {len(specimen)} specimen(s) included as {role}")


@plan_app.command("exclude")
@handle_errors
def plan_exclude(
    code: Annotated[str, typer.Argument(help="Plan code.")],
    specimen: Annotated[list[str], typer.Argument(help="Specimen code(s).")],
    user: UserOption = None,
) -> None:
    """Take specimens out of a draft (kept as excluded rows: the change is audited)."""
    with unit_of_work() as session:
        detail = planning.plan_detail(session, code)
        current = [
            (r["specimen_code"], r["role"], r["reason"])
            for r in detail["specimens_detail"]
            if r["specimen_code"] not in specimen
        ]
        planning.set_specimens(session, actor=acting_user(session, user), plan_code=code, selection=current)
    typer.echo(f"plan {code}: {len(specimen)} specimen(s) excluded")


@plan_app.command("list")
@handle_errors
def plan_list(as_json: JsonOption = False) -> None:
    """Every plan with its status and counts."""
    with unit_of_work() as session:
        rows = planning.list_plans(session)
    emit_json(rows) if as_json else emit_table(
        rows, ["code", "name", "purpose", "assay", "status", "donors", "specimens", "approved_by"]
    )


@plan_app.command("show")
@handle_errors
def plan_show(code: Annotated[str, typer.Argument(help="Plan code.")], as_json: JsonOption = False) -> None:
    """A plan: its specimens with role and reason, and its rule report."""
    with unit_of_work() as session:
        detail = planning.plan_detail(session, code)
    if as_json:
        emit_json(detail)
        return
    emit_mapping(detail)
    typer.echo("")
    emit_table(
        detail["specimens_detail"],
        ["donor_code", "role", "specimen_code", "region_code", "tumour_cellularity_pct", "reason"],
    )
    typer.echo("")
    emit_table(detail["report"], ["severity", "rule", "donor", "specimen", "message"])


def _export(
    target: str,
    output: Path,
    plan: str | None,
    donor: list[str] | None,
    specimen: list[str] | None,
    user: str | None,
    *,
    assay: str = "wgs",
    fastq_dir: Path | None = None,
    conipher: bool = False,
    identified: bool = False,
) -> None:
    try:
        with unit_of_work() as session:
            files = export_service.export_files(
                session,
                actor=acting_user(session, user),
                target=target,
                plan_code=plan,
                donor_codes=donor or [],
                specimen_codes=specimen or [],
                assay=assay,
                fastq_dir=fastq_dir,
                conipher=conipher,
                identified=identified,
            )
    except PlanRulesError as exc:
        _print_report(exc.report, False)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    paths = export_service.write_files(files, target, output)
    typer.echo(f"{target}: wrote {len(paths)} file(s) to {output}")


OutputOption = Annotated[
    Path, typer.Option("-o", "--output", help="Output file (single-file targets) or folder.")
]
PlanOption = Annotated[str | None, typer.Option("--plan", "-p", help="Export this plan's specimens.")]
SpecimenOption = Annotated[
    list[str] | None, typer.Option("--specimen", "-s", help="Specimen code (repeat for several).")
]


@export_app.command("sarek")
@handle_errors
def export_sarek(
    output: OutputOption,
    plan: PlanOption = None,
    donor: DonorOption = None,
    specimen: SpecimenOption = None,
    fastq_dir: Annotated[
        Path | None, typer.Option(help="Fill lane,fastq_1,fastq_2 from the FASTQ files here.")
    ] = None,
    assay: AssayOption = "wgs",
    user: UserOption = None,
) -> None:
    """nf-core/sarek samplesheet, validated by sarek's schema and cross-row rules."""
    _export("sarek", output, plan, donor, specimen, user, assay=assay, fastq_dir=fastq_dir)


@export_app.command("clonal")
@handle_errors
def export_clonal(
    output: OutputOption,
    plan: PlanOption = None,
    donor: DonorOption = None,
    specimen: SpecimenOption = None,
    conipher: Annotated[
        bool, typer.Option(help="CONIPHER's columns (CASE_ID, SAMPLE, ACF) instead.")
    ] = False,
    assay: AssayOption = "wgs",
    user: UserOption = None,
) -> None:
    """Sample table for clonal deconvolution (PyClone-VI tumour_content, site, site category)."""
    _export("clonal", output, plan, donor, specimen, user, assay=assay, conipher=conipher)


@export_app.command("machina")
@handle_errors
def export_machina(
    output: OutputOption,
    plan: PlanOption = None,
    donor: DonorOption = None,
    specimen: SpecimenOption = None,
    assay: AssayOption = "wgs",
    user: UserOption = None,
) -> None:
    """MACHINA leaf labelling per donor (and the -p primary) into a folder."""
    _export("machina", output, plan, donor, specimen, user, assay=assay)


@export_app.command("metient")
@handle_errors
def export_metient(
    output: OutputOption,
    plan: PlanOption = None,
    donor: DonorOption = None,
    specimen: SpecimenOption = None,
    assay: AssayOption = "wgs",
    user: UserOption = None,
) -> None:
    """Metient sample/site table (anatomical_site_label, site_category)."""
    _export("metient", output, plan, donor, specimen, user, assay=assay)


@export_app.command("cbioportal")
@handle_errors
def export_cbioportal(
    output: OutputOption,
    plan: PlanOption = None,
    donor: DonorOption = None,
    specimen: SpecimenOption = None,
    user: UserOption = None,
) -> None:
    """cBioPortal study folder (meta files, clinical patient and sample files)."""
    _export("cbioportal", output, plan, donor, specimen, user)


@export_app.command("phenopackets")
@handle_errors
def export_phenopackets(
    output: OutputOption,
    plan: PlanOption = None,
    donor: DonorOption = None,
    specimen: SpecimenOption = None,
    user: UserOption = None,
) -> None:
    """GA4GH Phenopacket v2 JSON per donor into a folder."""
    _export("phenopackets", output, plan, donor, specimen, user)


@export_app.command("fhir")
@handle_errors
def export_fhir(
    output: OutputOption,
    plan: PlanOption = None,
    donor: DonorOption = None,
    specimen: SpecimenOption = None,
    user: UserOption = None,
) -> None:
    """HL7 FHIR Bundle of Patient and Specimen resources (MIABIS-on-FHIR codes)."""
    _export("fhir", output, plan, donor, specimen, user)


@export_app.command("tables")
@handle_errors
def export_tables(
    output: OutputOption,
    plan: PlanOption = None,
    donor: DonorOption = None,
    specimen: SpecimenOption = None,
    identified: Annotated[bool, typer.Option(help="Keep absolute times (not de-identified).")] = False,
    user: UserOption = None,
) -> None:
    """Every entity as CSV, Parquet and Excel with a data dictionary (the whole cohort when nothing is chosen)."""
    _export("tables", output, plan, donor, specimen, user, identified=identified)
