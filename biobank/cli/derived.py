"""``biobank models``: derived models (organoids, PDX, cell lines), their passages, QC, status, metrics and the
CancerModels.org export."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

from biobank.cli.common import (
    JsonOption,
    UserOption,
    acting_user,
    emit,
    emit_json,
    emit_table,
    handle_errors,
    read,
    unit_of_work,
)
from biobank.queries import derived as models_metrics
from biobank.services import derived
from biobank.services.inputs import ModelCreate, ModelQCCreate, PassageCreate

models_app = typer.Typer(
    help="Derived models: organoids, PDX and cell lines with passages, QC and lineage.", no_args_is_help=True
)

DateOption = Annotated[
    datetime | None, typer.Option("--on", formats=["%Y-%m-%d"], help="Date (YYYY-MM-DD); today when omitted.")
]


def _day(value: datetime | None) -> date:
    return value.date() if value is not None else date.today()


@models_app.command("add")
@handle_errors
def add(
    source: Annotated[str, typer.Argument(help="Code of the fresh or viable_cryo source specimen.")],
    kind: Annotated[str, typer.Option(help="organoid, pdx or cell_line.")],
    on: DateOption = None,
    quantity_used: Annotated[
        float | None, typer.Option(help="Amount taken from the source, in its unit.")
    ] = None,
    host_strain: Annotated[str | None, typer.Option(help="PDX host strain name, e.g. NSG.")] = None,
    host_nomenclature: Annotated[str | None, typer.Option(help="Full strain nomenclature.")] = None,
    engraftment_site: Annotated[str | None, typer.Option(help="PDX engraftment site.")] = None,
    engraftment_type: Annotated[str | None, typer.Option(help="orthotopic or heterotopic.")] = None,
    preparation: Annotated[str | None, typer.Option(help="fragment or cell_suspension.")] = None,
    humanised: Annotated[bool, typer.Option(help="The PDX host is humanised.")] = False,
    humanisation: Annotated[str | None, typer.Option(help="How the host was humanised.")] = None,
    medium: Annotated[str | None, typer.Option(help="Culture medium.")] = None,
    matrix: Annotated[str | None, typer.Option(help="matrigel_bme, collagen or none.")] = None,
    growth: Annotated[
        str | None, typer.Option(help="embedded_3d, adherent, adherent_and_suspension, suspension.")
    ] = None,
    notes: Annotated[str | None, typer.Option(help="Free-text notes.")] = None,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a model from a source specimen (needs the donor's consent to model derivation)."""
    with unit_of_work() as session:
        model = derived.create_model(
            session,
            actor=acting_user(session, user),
            data=ModelCreate.build(source_code=source, kind=kind, initiated_on=_day(on), quantity_used=quantity_used, host_strain_name=host_strain, host_strain_nomenclature=host_nomenclature, engraftment_site=engraftment_site, engraftment_type=engraftment_type, tumour_preparation=preparation, humanised=humanised, humanisation_type=humanisation, medium=medium, matrix=matrix, growth_properties=growth, notes=notes),
        )
        data = {
            "code": model.code,
            "kind": model.kind,
            "status": model.status,
            "initiated_on": model.initiated_on,
        }
    emit(data, as_json=as_json, text=f"model {data['code']} ({data['kind']}) initiated")


@models_app.command("passage")
@handle_errors
def passage(
    model: Annotated[str, typer.Argument(help="Model code.")],
    parent: Annotated[str | None, typer.Option(help="Parent passage label (omit for P0).")] = None,
    on: DateOption = None,
    label: Annotated[
        str | None, typer.Option(help="Label; generated (P2, or P2-B for a split) when omitted.")
    ] = None,
    vessel: Annotated[str | None, typer.Option(help="Mouse or vessel ID.")] = None,
    latency_days: Annotated[int | None, typer.Option(help="PDX: days from engraftment to harvest.")] = None,
    doubling_hours: Annotated[float | None, typer.Option(help="Culture: doubling time in hours.")] = None,
    distributed_to: Annotated[
        str | None, typer.Option(help="Record the passage as distributed to this recipient.")
    ] = None,
    notes: Annotated[str | None, typer.Option(help="Free-text notes.")] = None,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a passage (P0 = first engraftment or plating); optionally as distributed (consent is checked)."""
    with unit_of_work() as session:
        actor = acting_user(session, user)
        made = derived.record_passage(
            session,
            actor=actor,
            data=PassageCreate.build(model_code=model, passaged_on=_day(on), parent_label=parent, label=label, mouse_or_vessel_id=vessel, latency_days=latency_days, doubling_time_hours=doubling_hours, notes=notes),
        )
        if distributed_to:
            derived.distribute_passage(
                session,
                actor=actor,
                model_code=model,
                label=made.label,
                distributed_to=distributed_to,
                distributed_on=made.passaged_on,
            )
        data = {"model": model, "label": made.label, "number": made.number, "passaged_on": made.passaged_on}
    emit(data, as_json=as_json, text=f"model {model}: passage {data['label']} recorded")


@models_app.command("distribute")
@handle_errors
def distribute(
    model: Annotated[str, typer.Argument(help="Model code.")],
    passage_label: Annotated[str, typer.Argument(metavar="PASSAGE", help="Passage label, e.g. P2.")],
    to: Annotated[str, typer.Option("--to", help="Recipient.")],
    on: DateOption = None,
    user: UserOption = None,
) -> None:
    """Record a passage as distributed (refused after a consent withdrawal)."""
    with unit_of_work() as session:
        derived.distribute_passage(
            session,
            actor=acting_user(session, user),
            model_code=model,
            label=passage_label,
            distributed_to=to,
            distributed_on=_day(on),
        )
    typer.echo(f"model {model}: passage {passage_label} distributed to {to}")


def _tri(value: str | None, field: str) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("yes", "true", "y"):
        return True
    if value.lower() in ("no", "false", "n"):
        return False
    from biobank.domain.errors import invalid

    raise invalid(field, value, "answer yes or no")


@models_app.command("qc")
@handle_errors
def qc(
    model: Annotated[str, typer.Argument(help="Model code.")],
    passage_label: Annotated[str, typer.Argument(metavar="PASSAGE", help="Tested passage label, e.g. P2.")],
    on: DateOption = None,
    method: Annotated[str | None, typer.Option(help="Identity test: STR or SNP.")] = None,
    identity: Annotated[float | None, typer.Option(help="Identity match to the donor's germline, %.")] = None,
    mycoplasma: Annotated[str, typer.Option(help="negative, positive or not_tested.")] = "not_tested",
    mouse: Annotated[float | None, typer.Option(help="Mouse cell or read content, %.")] = None,
    histology: Annotated[
        str | None, typer.Option(help="Histology concordant with the source tumour: yes/no.")
    ] = None,
    origin: Annotated[str | None, typer.Option(help="Confirmed not of mouse or EBV origin: yes/no.")] = None,
    notes: Annotated[str | None, typer.Option(help="Free-text notes.")] = None,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record QC of a passage; whether it passed follows the thresholds in the settings."""
    with unit_of_work() as session:
        row = derived.record_model_qc(
            session,
            actor=acting_user(session, user),
            data=ModelQCCreate.build(model_code=model, passage_label=passage_label, tested_on=_day(on), identity_method=method, identity_match_pct=identity, mycoplasma=mycoplasma, mouse_content_pct=mouse, histology_concordant=_tri(histology, "histology"), not_mouse_or_ebv_origin=_tri(origin, "origin"), notes=notes),
        )
        data = {"model": model, "passage": passage_label, "passed": row.passed, "notes": row.notes}
    emit(
        data,
        as_json=as_json,
        text=f"model {model} {passage_label}: QC {'passed' if data['passed'] else 'failed'}"
        + (f" ({data['notes']})" if not data["passed"] and data["notes"] else ""),
    )


@models_app.command("status")
@handle_errors
def status(
    model: Annotated[str, typer.Argument(help="Model code.")],
    new_status: Annotated[
        str,
        typer.Argument(metavar="STATUS", help="growing, established, failed, cryobanked or discontinued."),
    ],
    on: DateOption = None,
    note: Annotated[str | None, typer.Option(help="Why (kept in the model's notes).")] = None,
    user: UserOption = None,
) -> None:
    """Move a model to its next status (establishing needs the QC the settings require)."""
    with unit_of_work() as session:
        changed = derived.set_status(
            session,
            actor=acting_user(session, user),
            model_code=model,
            status=new_status,
            on=_day(on),
            note=note,
        )
        value = changed.status
    typer.echo(f"model {model}: {value}")


@models_app.command("specimens")
@handle_errors
def specimens(
    model: Annotated[str, typer.Argument(help="Model code.")],
    passage_label: Annotated[str, typer.Argument(metavar="PASSAGE", help="Passage label, e.g. P2.")],
    material: Annotated[str, typer.Option(help="cells, tissue, dna or rna.")],
    storage_format: Annotated[str, typer.Option("--format", help="e.g. viable_cryo, snap_frozen, frozen.")],
    quantity: Annotated[float, typer.Option(help="Quantity of each specimen.")],
    unit: Annotated[str, typer.Option(help="mg, ul, cells, ng...")],
    count: Annotated[int, typer.Option(help="How many specimens.")] = 1,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register specimens a passage produced (frozen vials, xenograft tissue, DNA) as ordinary specimens."""
    with unit_of_work() as session:
        made = derived.passage_specimens(
            session,
            actor=acting_user(session, user),
            model_code=model,
            passage_label=passage_label,
            material_type=material,
            storage_format=storage_format,
            quantity=quantity,
            unit=unit,
            count=count,
        )
        codes = [s.code for s in made]
    emit(codes, as_json=as_json, text="\n".join(codes))


@models_app.command("list")
@handle_errors
def list_models(
    donor: Annotated[str | None, typer.Option(help="Only this donor's models.")] = None,
    status_filter: Annotated[
        str | None, typer.Option("--status", help="Only models with this status.")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="Only organoid, pdx or cell_line.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Models with their site, newest passage and QC."""
    rows = read(models_metrics.model_rows, donor_code=donor, status=status_filter, kind=kind)
    columns = ["code", "kind", "status", "donor", "region", "site", "source", "passage", "qc"]
    emit(rows, as_json=as_json, columns=columns)


@models_app.command("show")
@handle_errors
def show(model: Annotated[str, typer.Argument(help="Model code.")], as_json: JsonOption = False) -> None:
    """A model and its lineage: donor → lesion → region → source specimen → model → passage tree."""
    detail = read(models_metrics.model_detail, model)
    emit(detail, as_json=as_json, skip=("passage_tree", "qc_requirements"))
    if as_json:
        return
    typer.echo(
        "qc_requirements  "
        + (
            ", ".join(f"{k}: {'met' if v else 'missing'}" for k, v in detail["qc_requirements"].items())
            or "none"
        )
    )
    typer.echo("")
    for line in models_metrics.lineage_lines(detail):
        typer.echo(line)


@models_app.command("metrics")
@handle_errors
def metrics(
    by: Annotated[str, typer.Option(help="site, lesion_kind, storage_format, pmi_band or kind.")] = "site",
    as_json: JsonOption = False,
) -> None:
    """Take rate (established / initiated) by a dimension, time to establishment, passages per model."""
    from biobank.domain.errors import invalid

    if by not in models_metrics.DIMENSIONS:
        raise invalid("by", by, f"one of {', '.join(models_metrics.DIMENSIONS)}")
    with unit_of_work() as session:
        rates = models_metrics.take_rates(session, by=by)
        times = models_metrics.time_to_establishment(session)
        passages = models_metrics.passage_summary(session)
    if as_json:
        emit_json({"take_rate": rates, "time_to_establishment": times, "passages": passages})
        return
    emit_table(rates, ["value", "kind", "attempted", "established", "failed", "in_progress", "take_rate"])
    typer.echo("")
    emit_table(times)
    typer.echo("")
    emit_table(passages)


@models_app.command("export")
@handle_errors
def export(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Directory for the CSV files and the workbook.")
    ],
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Only these models (repeatable).")
    ] = None,
    all_statuses: Annotated[
        bool, typer.Option("--all-statuses", help="Include models never established.")
    ] = False,
    contact_name: Annotated[
        str, typer.Option("--contact-name", help="Contact person for requests about the models (sharing sheet).")
    ] = "Not provided",
    contact_email: Annotated[
        str, typer.Option("--contact-email", help="Contact email(s), comma-separated (sharing sheet).")
    ] = "Not provided",
    accessibility: Annotated[
        str, typer.Option(help="Who may obtain the models: academia, industry, or academia and industry.")
    ] = "academia",
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """CancerModels.org submission sheets of the dictionary in BIOBANK_CANCERMODELS_DICTIONARY_VERSION (2.1: patient,
    patient_sample, sharing, pdx_model, model_validation, cell_model).
    Recorded in the export log (biobank export log) with who made it and each file's SHA-256."""
    from biobank.exports import cancermodels
    from biobank.exports import log as export_log

    with unit_of_work() as session:
        result, paths = export_log.export_models_recorded(
            session, actor=acting_user(session, user), directory=output, model_codes=model or None,
            include_unestablished=all_statuses,
            submitter=cancermodels.Submitter(name=contact_name, email=contact_email, accessibility=accessibility),
        )
    data = {
        "models": result.models,
        "files": [str(p) for p in paths],
        "excluded": [{"model": m, "reason": r} for m, r in result.excluded],
    }
    lines = [f"{len(result.models)} model(s) written to {output}"]
    lines += [f"left out {code}: {reason}" for code, reason in result.excluded]
    emit(data, as_json=as_json, text="\n".join(lines))
