"""The ``sequencing`` import kind: a core's report for a submitted plan, one row per sample per file; a dry run writes
nothing, malformed rows are all listed by row, column and value, and a refused file writes nothing (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from biobank.cli import app
from biobank.db.engine import session_scope
from biobank.domain.errors import PermissionDeniedError, ValidationError
from biobank.imports.engine import ImportReport, run_import
from biobank.imports.registry import import_kind_names, kind_names
from biobank.imports.roundtrip import export_kind
from biobank.imports.templates import template_csv
from biobank.models import User
from biobank.models.plans import SequencingFile, SequencingResult, SequencingRun
from biobank.queries import sequencing as reads
from biobank.services import planning, sequencing
from tests.support.dbtools import snapshot

DNA = "RA0001-L04A-SF1-DNA1"
TUMOUR = "RA0001-L03A-SF1"
GERMLINE = "RA0001-GB1-FZ1-BUF1-DNA1"
MD5 = "0123456789abcdef0123456789abcdef"
HEADER = ("plan,specimen,run_id,instrument,flow_cell,read_count,mean_coverage,contamination_pct,purity,ploidy,"
          "file_uri,checksum_kind,checksum,size_bytes,file_kind\n")
GOOD = HEADER + (
    f"WGS-1,{DNA},RUN-1,NovaSeq X,10B,900000000,62,0.4,0.7,2.1,s3://core/RUN-1/{DNA}.cram,md5,{MD5},1024,cram\n"
    f"WGS-1,{DNA},RUN-1,NovaSeq X,10B,900000000,62,0.4,0.7,2.1,s3://core/RUN-1/{DNA}.crai,sha256,{'c' * 64},,crai\n"
    f"wgs-1,{TUMOUR.lower()},RUN-1,,,,20,0.4,,,,,,,\n"
    f"WGS-1,{GERMLINE},RUN-0,,,,35,0.1,,,s3://core/RUN-0/{GERMLINE}.cram,MD5,{MD5.upper()},,cram\n"
)


def people(engine: Engine) -> dict[str, User]:
    with Session(engine, expire_on_commit=False) as session:
        return {u.username: u for u in session.exec(select(User)).all()}


def submitted_plan(engine: Engine, *, submit: bool = True) -> dict[str, User]:
    """WGS-1 of RA-0001 at 60x, submitted (or only approved); run RUN-0 already recorded."""
    users = people(engine)
    with session_scope(engine) as session:
        planning.create_plan(session, actor=users["pi"], code="WGS-1", name="WGS of RA-0001", purpose="phylogeny",
                             assay="wgs", donor_codes=["RA-0001"], target_depth=60)
        planning.approve_plan(session, actor=users["pi"], plan_code="WGS-1")
        if submit:
            planning.submit_plan(session, actor=users["pi"], plan_code="WGS-1")
        sequencing.record_run(session, actor=users["tech"], run_id="RUN-0", instrument="NovaSeq 6000",
                              started_at=datetime(2026, 10, 1, tzinfo=UTC))
    return users


def do_import(engine: Engine, actor: User, content: str, **options: Any) -> ImportReport:
    with session_scope(engine) as session:
        return run_import(session, actor=actor, kind="sequencing", source=content.encode("utf-8"),
                          filename="sequencing.csv", **options)


def test_the_kind_is_listed_with_a_template_but_not_in_a_full_load():
    assert "sequencing" in import_kind_names() and "sequencing" not in kind_names()
    lines = template_csv("sequencing").splitlines()
    header = next(line for line in lines if not line.startswith("#"))
    assert header + "\n" == HEADER
    assert any(line.startswith("# checksum:") for line in lines)


@pytest.mark.demo(1)
def test_a_good_file_records_runs_results_and_files_after_a_dry_run_wrote_nothing(engine):
    users = submitted_plan(engine)
    before = snapshot(engine)
    dry = do_import(engine, users["tech"], GOOD, dry_run=True)
    assert dry.ok and dry.rows == 4 and dry.inserted == 4, dry.errors
    assert snapshot(engine) == before

    report = do_import(engine, users["tech"], GOOD)
    assert report.ok and report.written, report.errors
    with Session(engine) as session:
        runs = {r.run_id: r for r in session.exec(select(SequencingRun)).all()}
        assert set(runs) == {"RUN-0", "RUN-1"} and (runs["RUN-1"].instrument, runs["RUN-1"].flow_cell) == (
            "NovaSeq X", "10B")
        assert len(session.exec(select(SequencingResult)).all()) == 3
        files = session.exec(select(SequencingFile).order_by(SequencingFile.id)).all()
        assert [(f.uri.rsplit("/", 1)[1], f.checksum_kind, f.checksum) for f in files] == [
            (f"{DNA}.cram", "md5", MD5), (f"{DNA}.crai", "sha256", "c" * 64), (f"{GERMLINE}.cram", "md5", MD5)]
        states = reads.sample_states(session)
        by_code = dict(zip(states["specimen_code"], states["state"], strict=True))
        assert (by_code[DNA], by_code[TUMOUR], by_code[GERMLINE]) == ("passed", "failed_qc", "failed_qc")
        exported = export_kind(session, "sequencing")
    assert exported.splitlines()[0] + "\n" == HEADER and len(exported.splitlines()) == 5

    again = do_import(engine, users["tech"], GOOD)
    assert not again.ok
    assert {(e.row, e.column) for e in again.errors} == {(2, "run_id"), (3, "run_id"), (4, "run_id"), (5, "run_id")}


BAD = HEADER + (
    f"WGS-1,{DNA},RUN-1,NovaSeq X,10B,,62,0.4,,,s3://x/a.cram,md5,abc,,cram\n"          # 2 checksum too short
    f"WGS-1,{DNA},RUN-1,NovaSeq X,10B,,62,0.4,,,   ,md5,{MD5},,cram\n"                   # 3 blank URI with a file
    f"WGS-1,{TUMOUR},RUN-1,NovaSeq X,10B,,inf,0.4,,,,,,,\n"                              # 4 coverage not finite
    f"WGS-1,{TUMOUR},RUN-2,,,,60,101,,,,,,,\n"                                           # 5 contamination > 100
    f"NOPE-1,{DNA},RUN-1,NovaSeq X,10B,,62,0.4,,,,,,,\n"                                 # 6 unknown plan
    f"WGS-1,RA0001-L03A-SF2,RUN-1,NovaSeq X,10B,,62,0.4,,,,,,,\n"                        # 7 not a sample of the plan
    f"WGS-1,{GERMLINE},RUN 3,X,,,62,0.4,,,,,,,\n"                                        # 8 run id with a space
    f"WGS-1,RA0001-L06A-SF1-DNA1,RUN-1,NovaSeq X,10B,,62,0.4,,,,,,,\n"                  # 9 good
    f"WGS-1,{GERMLINE},RUN-1,MiSeq,,,62,0.4,,,,,,,\n"                                    # 10 run details disagree
    f"WGS-1,RA0001-L05A-SF1-DNA1,RUN-1,NovaSeq X,10B,,62,0.4,,0,s3://x/b.cram,sha256,{MD5},,\n"  # 11 ploidy 0, sha
    f"WGS-1,RA0001-L06A-SF1-DNA1,RUN-1,NovaSeq X,10B,,61,0.4,,,s3://x/c.cram,md5,{MD5},,\n"  # 12 other measures
)


@pytest.mark.demo(1)
def test_malformed_rows_are_all_listed_and_nothing_is_written(engine):
    users = submitted_plan(engine, submit=False)
    # an approved (not yet submitted) plan is refused
    before = snapshot(engine)
    refused = do_import(engine, users["tech"], HEADER + f"WGS-1,{DNA},RUN-0,,,,62,0.4,,,,,,,\n")
    assert [(e.row, e.column) for e in refused.errors] == [(2, "plan")]
    assert "WGS-1 is approved; results are recorded only for a submitted plan" in refused.errors[0].message
    assert snapshot(engine) == before
    with session_scope(engine) as session:
        planning.submit_plan(session, actor=users["pi"], plan_code="WGS-1")

    before = snapshot(engine)
    report = do_import(engine, users["tech"], BAD)
    assert not report.ok and not report.written
    found = {(e.row, e.column) for e in report.errors}
    assert {(2, "checksum"), (3, "file_uri"), (4, "mean_coverage"), (5, "contamination_pct"), (6, "plan"),
            (7, "specimen"), (8, "run_id"), (10, "instrument"), (11, "ploidy"), (12, "read_count")} == found, (
        report.errors)
    assert all(e.message for e in report.errors)
    by_row = {e.row: e for e in report.errors}
    assert "32 hexadecimal digits" in by_row[2].message and by_row[2].value == "abc"
    assert "not found" in by_row[6].message and "not a sample of plan WGS-1" in by_row[7].message
    assert snapshot(engine) == before

    # viewers cannot import
    with pytest.raises(PermissionDeniedError, match="enter"):
        do_import(engine, users["viewer"], GOOD)


@pytest.mark.demo(1)
def test_a_refusal_while_writing_rolls_the_whole_file_back_naming_the_row(engine, monkeypatch):
    users = submitted_plan(engine)
    original = sequencing.record_result
    calls: list[str] = []

    def second_refused(session: Session, **values: Any) -> Any:
        calls.append(values["specimen_code"])
        if len(calls) == 2:
            raise ValidationError("refused by the service", field="specimen", value=values["specimen_code"])
        return original(session, **values)

    monkeypatch.setattr(sequencing, "record_result", second_refused)
    before = snapshot(engine)
    report = do_import(engine, users["tech"], GOOD)
    assert not report.ok and not report.written and len(calls) == 2
    assert "row 4: refused by the service" in report.errors[0].message
    assert snapshot(engine) == before, "the run and the first result are rolled back too"


@pytest.mark.demo(1)
def test_cli_import_and_template(engine, db_url, tmp_path, monkeypatch):
    from tests.support.cli_auth import isolate_cli_config, sign_in_cli

    submitted_plan(engine)
    sign_in_cli(db_url, "tech", isolate_cli_config(tmp_path, monkeypatch))
    runner = CliRunner()
    assert "sequencing" in runner.invoke(app, ["import", "--help"]).stdout
    template = runner.invoke(app, ["template", "sequencing"])
    assert template.exit_code == 0 and "# file_uri:" in template.stdout
    path = tmp_path / "sequencing.csv"
    path.write_text(GOOD)
    dry = runner.invoke(app, ["import", "sequencing", str(path), "--dry-run", "--user", "tech"])
    assert dry.exit_code == 0, dry.output
    done = runner.invoke(app, ["import", "sequencing", str(path), "--user", "tech"])
    assert done.exit_code == 0, done.output
    with Session(engine) as session:
        assert len(session.exec(select(SequencingResult)).all()) == 3
