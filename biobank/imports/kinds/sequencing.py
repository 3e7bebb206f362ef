"""The ``sequencing`` import kind: what a sequencing core reports back for a submitted plan, one row per sample per
data file (a sample's measures repeat on each of its files' rows; a row with no file records the measures alone).

Unlike the table kinds, its rows become three tables (the run, once; the sample's result, once; each file), and
the rules of recording them are the service's (:mod:`biobank.services.sequencing`): so the whole file is checked here
as every kind is (each row's cells, then set-based lookups of plans, samples, runs and results already recorded,
with every error naming its row, column and value), and the write pass records each new run and each result with
its files through the service, in file order, inside the import's one transaction (``write_spilled``): all or nothing.
The automatic QC verdict is set as when a result is recorded by hand.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlmodel import Session

from biobank.domain.errors import BiobankError, invalid
from biobank.imports import coerce as c
from biobank.imports.columns import Column, Context, int_col, text_col
from biobank.imports.kinds._shared import each
from biobank.imports.spec import Kind, Resolver, Staged
from biobank.models import AnalysisPlan, PlanSpecimen, Specimen, User
from biobank.models.base import table_of
from biobank.models.plans import PlanStatus, SequencingFile, SequencingResult, SequencingRun
from biobank.services import sequencing as service

MEASURES = ("read_count", "mean_coverage", "contamination_pct", "purity", "ploidy")
FILE_COLUMNS = ("file_uri", "checksum_kind", "checksum", "size_bytes", "file_kind")


def _number_col(name: str, help: str, *, minimum: float, maximum: float | None = None) -> Column:
    def run(raw: Any, _ctx: Context) -> c.Coerced[float]:
        return c.decimal(raw, minimum=minimum, maximum=maximum)

    return Column(name, run, help, type="number")


class SequencingResults(Kind):
    name = "sequencing"
    noun = "sequencing result"
    title = "Sequencing results"
    help = ("What a sequencing core reports for a submitted plan: one row per sample per data file (FASTQ, BAM, "
            "CRAM...), with the run, its instrument and flow cell, and the sample's reads, mean coverage, "
            "contamination, purity and ploidy (repeated on each of the sample's rows). A run not recorded yet is "
            "recorded from its first row. QC is judged from the settings' thresholds as for a result entered by hand.")
    table = table_of(SequencingFile)
    order = 200
    key = ("plan", "specimen", "run_id", "file_uri")
    columns = (
        text_col("plan", "Code of the submitted plan", required=True, max_length=32),
        text_col("specimen", "Code of the plan's sample", required=True, max_length=64),
        text_col("run_id", "The core's run id (no spaces)", required=True, max_length=120),
        text_col("instrument", "Instrument of the run (needed when the run is new)", max_length=80),
        text_col("flow_cell", "Flow cell kind of the run", max_length=40),
        int_col("read_count", "Reads of the sample", minimum=0),
        _number_col("mean_coverage", "Mean coverage of the sample (x)", minimum=0),
        _number_col("contamination_pct", "Contamination of the sample, %", minimum=0, maximum=100),
        _number_col("purity", "Tumour purity, 0-1", minimum=0, maximum=1),
        _number_col("ploidy", "Ploidy (above 0, at most 10)", minimum=0, maximum=10),
        text_col("file_uri", "Where the file lives (URI or path; empty: a row of measures only)", max_length=1000),
        text_col("checksum_kind", "md5 or sha256", max_length=8),
        text_col("checksum", "The file's checksum in hexadecimal (32 digits for md5, 64 for sha256)",
                 max_length=128),
        int_col("size_bytes", "Size of the file in bytes", minimum=0),
        text_col("file_kind", "Kind of file, e.g. fastq, bam, cram, vcf", max_length=20),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        v["run_id"] = service.check_run_id(v.get("run_id"))
        service.check_measures(**{name: v.get(name) for name in MEASURES})
        if any(v.get(name) is not None for name in FILE_COLUMNS):
            if v.get("file_uri") is None:
                raise invalid("file_uri", None, "must not be blank when the row names a file")
            checked = service.check_file(service.FileInput(
                v["file_uri"], v.get("checksum_kind") or "", v.get("checksum") or "", v.get("size_bytes"),
                v.get("file_kind"),
            ))
            v["file_uri"], v["checksum_kind"], v["checksum"] = checked.uri, checked.checksum_kind, checked.checksum

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        session = res.session
        state = res.state.setdefault("sequencing", {"results": {}, "runs": {}})

        def fetch_plans(batch: list[Any]) -> dict[Any, Any]:
            found = session.execute(select(AnalysisPlan.code, AnalysisPlan.id, AnalysisPlan.status)  # type: ignore[call-overload]  # SQLModel types the columns as values
                                    .where(func.upper(AnalysisPlan.code).in_(batch)))
            return {r[0].upper(): (r[0], r[1], r[2]) for r in found}

        plans = res.lookup("sequencing_plan", {str(r.values["plan"]).upper() for r in rows}, fetch_plans)

        def fetch_samples(batch: list[Any]) -> dict[Any, Any]:
            found = session.execute(
                select(PlanSpecimen.plan_id, Specimen.code, PlanSpecimen.id)  # type: ignore[call-overload]  # SQLModel types the columns as values
                .join(Specimen, Specimen.id == PlanSpecimen.specimen_id)
                .where(PlanSpecimen.included.is_(True),  # type: ignore[attr-defined]  # a column at class level
                       tuple_(PlanSpecimen.plan_id, func.upper(Specimen.code)).in_(batch))
            )
            return {(r[0], r[1].upper()): (r[1], r[2]) for r in found}

        wanted = {(plans[str(r.values["plan"]).upper()][1], str(r.values["specimen"]).upper())
                  for r in rows if str(r.values["plan"]).upper() in plans}
        samples = res.lookup("sequencing_sample", wanted, fetch_samples)

        def fetch_runs(batch: list[Any]) -> dict[Any, Any]:
            found = session.execute(select(SequencingRun.run_id, SequencingRun.id, SequencingRun.instrument)  # type: ignore[call-overload]  # SQLModel types the columns as values
                                    .where(SequencingRun.run_id.in_(batch)))  # type: ignore[attr-defined]  # a column at class level
            return {r[0]: (r[1], r[2]) for r in found}

        runs = res.lookup("sequencing_run", {r.values["run_id"] for r in rows}, fetch_runs)

        def fetch_results(batch: list[Any]) -> dict[Any, Any]:
            found = session.execute(select(SequencingResult.plan_specimen_id, SequencingResult.run_id)  # type: ignore[call-overload]  # SQLModel types the columns as values
                                    .where(tuple_(SequencingResult.plan_specimen_id, SequencingResult.run_id)
                                           .in_(batch)))
            return {(r[0], r[1]): True for r in found}

        pairs = set()
        for r in rows:
            plan = plans.get(str(r.values["plan"]).upper())
            sample = samples.get((plan[1], str(r.values["specimen"]).upper())) if plan else None
            run = runs.get(r.values["run_id"])
            if sample is not None and run is not None:
                pairs.add((sample[1], run[0]))
        recorded = res.lookup("sequencing_result", pairs, fetch_results)

        def build(row: Staged) -> None:
            v = row.values
            plan = plans.get(str(v["plan"]).upper())
            if plan is None:
                raise row.fail("plan", f"analysis plan {v['plan']!r} not found", expected="a plan's code")
            code, plan_id, status = plan
            if status != PlanStatus.submitted:
                raise row.fail("plan", f"plan {code} is {status}; results are recorded only for a submitted plan",
                               expected="a submitted plan")
            sample = samples.get((plan_id, str(v["specimen"]).upper()))
            if sample is None:
                raise row.fail("specimen", f"{v['specimen']} is not a sample of plan {code}",
                               expected=f"a specimen of plan {code}")
            specimen_code, plan_specimen_id = sample
            run = runs.get(v["run_id"])
            instrument = v.get("instrument")
            if run is None:
                first = state["runs"].get(v["run_id"])
                if first is None:
                    if instrument is None:
                        raise row.fail("instrument", f"run {v['run_id']} is new: give its instrument",
                                       expected="the run's instrument")
                    state["runs"][v["run_id"]] = (row.number, instrument, v.get("flow_cell"))
                elif (instrument, v.get("flow_cell")) not in ((first[1], first[2]), (None, None)):
                    raise row.fail("instrument", f"run {v['run_id']} is given as {first[1]} "
                                   f"(flow cell {first[2] or 'none'}) in row {first[0]}",
                                   expected="the same run details on every row")
            elif (plan_specimen_id, run[0]) in recorded:
                raise row.fail("run_id", f"a result of run {v['run_id']} for {specimen_code} in plan {code} is "
                               "already recorded", expected="a result not recorded yet")
            measures = tuple(v.get(name) for name in MEASURES)
            key = (plan_specimen_id, v["run_id"])
            earlier = state["results"].get(key)
            if earlier is None:
                state["results"][key] = (row.number, measures, v.get("file_uri") is None)
            elif earlier[1] != measures:
                raise row.fail("read_count", f"{specimen_code} in run {v['run_id']} has other measures in row "
                               f"{earlier[0]}", expected="the same measures on each row of a sample")
            elif earlier[2] or v.get("file_uri") is None:
                raise row.fail("file_uri", f"{specimen_code} in run {v['run_id']} is given again without a file "
                               f"(row {earlier[0]})", expected="one row per file")
            row.record = {
                "plan_code": code,
                "specimen_code": specimen_code,
                "plan_specimen_id": plan_specimen_id,
                "run_id": v["run_id"],
                "new_run": run is None,
                "instrument": instrument,
                "flow_cell": v.get("flow_cell"),
                **{name: v.get(name) for name in MEASURES},
                "file": None if v.get("file_uri") is None else tuple(v.get(name) for name in FILE_COLUMNS),
            }

        each(rows, build)

    def write_spilled(self, session: Session, spill: Any, actor: User | None) -> None:
        """Record the validated rows through the service, in file order: each new run once, then each sample's
        result with its files. A refusal names the row and is raised (the engine rolls the import back)."""
        ordered: dict[tuple[int, str], list[tuple[int, dict[str, Any]]]] = {}
        while True:
            try:
                writes = pickle.load(spill)
            except EOFError:
                break
            for op, number, record, _old, _refs in writes:
                if op == "insert":
                    ordered.setdefault((record["plan_specimen_id"], record["run_id"]), []).append((number, record))
        made: set[str] = set()
        for rows in ordered.values():
            number, first = rows[0]
            try:
                if first["new_run"] and first["run_id"] not in made:
                    service.record_run(session, actor=actor, run_id=first["run_id"], instrument=first["instrument"],
                                       flow_cell=first["flow_cell"])
                    made.add(first["run_id"])
                service.record_result(
                    session, actor=actor, plan_code=first["plan_code"], specimen_code=first["specimen_code"],
                    run_id=first["run_id"], **{name: first[name] for name in MEASURES},
                    files=[service.FileInput(*r["file"]) for _n, r in rows if r["file"] is not None],
                )
            except BiobankError as exc:
                raise BiobankError(f"row {number}: {exc}", field=exc.field, value=exc.value, row=number) from exc

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = (
            select(AnalysisPlan.code, Specimen.code, SequencingRun.run_id, SequencingRun.instrument,  # type: ignore[call-overload, misc]  # SQLModel types the columns as values
                   SequencingRun.flow_cell, SequencingResult.read_count, SequencingResult.mean_coverage,
                   SequencingResult.contamination_pct, SequencingResult.purity, SequencingResult.ploidy,
                   SequencingFile.uri, SequencingFile.checksum_kind, SequencingFile.checksum,
                   SequencingFile.size_bytes, SequencingFile.file_kind)
            .select_from(SequencingResult)
            .join(SequencingRun, SequencingRun.id == SequencingResult.run_id)
            .join(PlanSpecimen, PlanSpecimen.id == SequencingResult.plan_specimen_id)
            .join(AnalysisPlan, AnalysisPlan.id == PlanSpecimen.plan_id)
            .join(Specimen, Specimen.id == PlanSpecimen.specimen_id)
            .outerjoin(SequencingFile, SequencingFile.result_id == SequencingResult.id)
            .order_by(SequencingResult.id, SequencingFile.id)
        )
        names = [col.name for col in self.columns]
        for r in session.execute(statement):
            yield dict(zip(names, r, strict=True))


__all__ = ["SequencingResults"]
