"""``biobank sequencing``: the loop back from sequencing: runs, per-sample results with their files, QC outcomes,
and each sample's state with a replacement proposed for the ones that failed QC."""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer

from biobank.cli.common import (
    JsonOption,
    UserOption,
    acting_user,
    emit_json,
    emit_table,
    handle_errors,
    typed_time,
    unit_of_work,
)
from biobank.queries import sequencing as seq_reads
from biobank.services import sequencing
from biobank.services.planning import get_plan

sequencing_app = typer.Typer(
    help="Sequencing results coming back for submitted plans: runs, per-sample results and files, QC outcomes.",
    no_args_is_help=True,
)

#: The columns ``sequencing status`` prints.
STATUS_COLUMNS = ["donor_code", "specimen_code", "region_code", "role", "assay", "state", "run_id", "mean_coverage",
                  "contamination_pct", "purity", "ploidy", "qc_note"]
FILE_HELP = f"A data file: {sequencing.FILE_FORMAT} (repeat for several)."


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@sequencing_app.command("run")
@handle_errors
def run_record(
    run_id: Annotated[str, typer.Argument(help="The core's run id, e.g. 20261201_LH00123_0042_A22ABCDLT3.")],
    instrument: Annotated[str, typer.Option(help="Instrument, e.g. 'NovaSeq X Plus'.")],
    flow_cell: Annotated[str | None, typer.Option(help="Flow cell kind, e.g. '10B'.")] = None,
    flow_cell_id: Annotated[str | None, typer.Option(help="The flow cell's own id.")] = None,
    centre: Annotated[str | None, typer.Option(help="Sequencing centre or core.")] = None,
    started: Annotated[str | None, typer.Option(help="When the run started (YYYY-MM-DD HH:MM, lab time).")] = None,
    completed: Annotated[str | None, typer.Option(help="When the run completed.")] = None,
    user: UserOption = None,
) -> None:
    """Record a sequencing run (technician, PI or admin)."""
    with unit_of_work() as session:
        run = sequencing.record_run(
            session, actor=acting_user(session, user), run_id=run_id, instrument=instrument, flow_cell=flow_cell,
            flow_cell_id=flow_cell_id, centre=centre, started_at=typed_time("started_at", started),
            completed_at=typed_time("completed_at", completed),
        )
        shown = run.run_id
    typer.echo(f"run {shown} recorded")


@sequencing_app.command("result")
@handle_errors
def result_record(
    plan: Annotated[str, typer.Argument(help="Plan code (a submitted plan).")],
    specimen: Annotated[str, typer.Argument(help="Specimen code of the plan's sample.")],
    run: Annotated[str, typer.Option("--run", help="Run id (recorded with 'sequencing run').")],
    reads: Annotated[int | None, typer.Option("--reads", help="Read count.")] = None,
    coverage: Annotated[float | None, typer.Option("--coverage", help="Mean coverage (x).")] = None,
    contamination: Annotated[float | None, typer.Option("--contamination", help="Contamination, %.")] = None,
    purity: Annotated[float | None, typer.Option("--purity", help="Tumour purity, 0-1.")] = None,
    ploidy: Annotated[float | None, typer.Option("--ploidy", help="Ploidy.")] = None,
    file: Annotated[list[str] | None, typer.Option("--file", help=FILE_HELP)] = None,
    auto_qc: Annotated[bool, typer.Option(help="Judge QC from the settings' thresholds at once.")] = True,
    user: UserOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record what a run gave for a sample of a submitted plan, with its files; QC is judged automatically when
    contamination (and, for DNA, coverage) are given."""
    files = [sequencing.parse_file(f) for f in file or []]
    with unit_of_work() as session:
        result = sequencing.record_result(
            session, actor=acting_user(session, user), plan_code=plan, specimen_code=specimen, run_id=run,
            read_count=reads, mean_coverage=coverage, contamination_pct=contamination, purity=purity, ploidy=ploidy,
            files=files, auto_qc=auto_qc,
        )
        outcome, note = result.outcome, result.qc_note
    if as_json:
        emit_json({"plan": plan, "specimen": specimen, "run_id": run, "outcome": outcome, "qc_note": note,
                   "files": len(files)})
        return
    typer.echo(f"{specimen} in run {run}: {outcome}" + (f" ({note})" if note else ""))


@sequencing_app.command("outcome")
@handle_errors
def outcome_set(
    plan: Annotated[str, typer.Argument(help="Plan code.")],
    specimen: Annotated[str, typer.Argument(help="Specimen code of the plan's sample.")],
    run: Annotated[str, typer.Option("--run", help="Run id of the result.")],
    outcome: Annotated[str, typer.Option("--outcome", help="passed or failed_qc.")],
    note: Annotated[str | None, typer.Option("--note", help="Why (needed for failed_qc).")] = None,
    user: UserOption = None,
) -> None:
    """Judge a result that is still 'sequenced': passed or failed_qc (a judged result is final)."""
    with unit_of_work() as session:
        sequencing.set_outcome(session, actor=acting_user(session, user), plan_code=plan, specimen_code=specimen,
                               run_id=run, outcome=outcome, note=note)
    typer.echo(f"{specimen} in run {run}: {outcome}")


@sequencing_app.command("status")
@handle_errors
def status(plan: Annotated[str, typer.Argument(help="Plan code.")], as_json: JsonOption = False) -> None:
    """Each sample's state (planned, submitted, sequenced, passed, failed_qc), and for each one that failed QC the
    next best candidate to swap in by amending the plan."""
    with unit_of_work() as session:
        found = get_plan(session, plan)
        assert found.id is not None
        frame = seq_reads.sample_states(session, plan_ids=[found.id])
        replacements = [r.to_record() for r in sequencing.failed_replacements(session, found.code)]
        code = found.code
    rows = [{str(k): _clean(v) for k, v in r.items()} for r in frame[STATUS_COLUMNS].to_dict(orient="records")]
    if as_json:
        emit_json({"plan": code, "samples": rows, "replacements": replacements})
        return
    if not rows:
        typer.echo(f"plan {code}: no sample has a sequencing state yet (approve and submit it first)")
        return
    emit_table(rows, STATUS_COLUMNS[:9])
    counts = frame["state"].value_counts().to_dict()
    typer.echo(", ".join(f"{state}: {int(counts[state])}" for state in seq_reads.SAMPLE_STATES if state in counts))
    for r in replacements:
        if r["specimen_code"]:
            typer.echo(f"replace {r['failed_specimen_code']} with {r['specimen_code']} ({r['reason']}): amend the plan "
                       "to swap it in")
        else:
            typer.echo(f"no replacement for {r['failed_specimen_code']}: {r['reason']}")
