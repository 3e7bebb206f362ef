"""The loop back from sequencing (issue 18 item 5): runs, results with files, automatic QC from the settings, the
allowed state moves, and the replacement proposed for a sample that failed QC; on both databases, on a copy of the
one-donor demo cohort with a submitted WGS plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from biobank.config import Settings, get_settings
from biobank.db.engine import session_scope
from biobank.domain.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from biobank.models import User
from biobank.models.plans import SequencingFile, SequencingResult
from biobank.queries import sequencing as reads
from biobank.services import planning, sequencing
from tests.support.dbtools import assert_refused
from tests.support.factories import wgs_plan_of_ra0001

GERMLINE = "RA0001-GB1-FZ1-BUF1-DNA1"
TUMOUR = "RA0001-L03A-SF1"  # region L03-A of lesion L03, with other pieces left in the region
DNA = "RA0001-L04A-SF1-DNA1"
MD5 = "0123456789abcdef0123456789abcdef"
SHA = "a" * 64


def users(engine) -> dict[str, User]:
    with Session(engine, expire_on_commit=False) as session:
        return {u.username: u for u in session.exec(select(User)).all()}


def plan(engine, *, submit: bool = True, code: str = "WGS-1") -> dict[str, User]:
    """A WGS plan of RA-0001 at 60x, approved (and submitted), and one run RUN-1 recorded."""
    people = users(engine)
    wgs_plan_of_ra0001(engine, code, submit=submit)
    with session_scope(engine) as session:
        sequencing.record_run(session, actor=people["tech"], run_id="RUN-1", instrument="NovaSeq X",
                              flow_cell="10B", started_at=datetime(2026, 11, 1, 9, tzinfo=UTC),
                              completed_at=datetime(2026, 11, 2, 9, tzinfo=UTC))
    return people


def result(engine, actor: User, specimen: str, **values: Any) -> SequencingResult:
    with session_scope(engine) as session:
        return sequencing.record_result(session, actor=actor, plan_code="WGS-1", specimen_code=specimen,
                                        run_id="RUN-1", **values)


def states(engine) -> dict[str, str]:
    with Session(engine) as session:
        frame = reads.sample_states(session)
    return dict(zip(frame["specimen_code"], frame["state"], strict=True))


# ----------------------------------------------------------------------------------------------- pure QC verdict


def test_automatic_qc_follows_the_settings_thresholds():
    strict = Settings(sequencing_max_contamination_pct=1.0, sequencing_min_coverage_fraction=0.9)
    assert sequencing.judge_result(assay="wgs", target_depth=60, mean_coverage=50, contamination_pct=2,
                                   settings=get_settings()).outcome == "passed"  # defaults: 3 %, 0.8 x 60 = 48x
    failed = sequencing.judge_result(assay="wgs", target_depth=60, mean_coverage=50, contamination_pct=2,
                                     settings=strict)
    assert failed.outcome == "failed_qc"
    assert "contamination 2 % above 1 %" in failed.note and "below 54x" in failed.note
    rna = sequencing.judge_result(assay="rna_seq", target_depth=50, mean_coverage=1, contamination_pct=0.5)
    assert rna.outcome == "passed", "coverage is judged for DNA assays only"
    unjudged = sequencing.judge_result(assay="wgs", target_depth=60, mean_coverage=None, contamination_pct=1)
    assert unjudged.outcome is None and "no mean coverage" in unjudged.note


# ------------------------------------------------------------------------------------------------ on a database


@pytest.mark.demo(1)
def test_results_are_judged_states_move_once_and_regions_are_read(engine, monkeypatch):
    people = plan(engine, submit=False)
    assert set(states(engine).values()) == {"planned"}
    with session_scope(engine) as session:
        planning.submit_plan(session, actor=people["pi"], plan_code="WGS-1")
    assert set(states(engine).values()) == {"submitted"}

    passed = result(engine, people["tech"], DNA, read_count=900_000_000, mean_coverage=62.5, contamination_pct=0.4,
                    purity=0.7, ploidy=2.1, files=[("s3://core/RUN-1/a.cram", "md5", MD5.upper(), 10, "cram"),
                                                   ("s3://core/RUN-1/a.crai", "sha256", SHA, None, None)])
    assert passed.outcome == "passed" and passed.qc_note == "automatic QC passed"
    failed = result(engine, people["pi"], GERMLINE, mean_coverage=20, contamination_pct=0.2)
    assert failed.outcome == "failed_qc" and "below 48x" in (failed.qc_note or "")
    waiting = result(engine, people["tech"], TUMOUR, mean_coverage=70)  # no contamination: a person decides
    assert waiting.outcome == "sequenced" and "no contamination" in (waiting.qc_note or "")
    assert {k: v for k, v in states(engine).items() if k in (DNA, GERMLINE, TUMOUR)} == {
        DNA: "passed", GERMLINE: "failed_qc", TUMOUR: "sequenced"}
    with Session(engine) as session:
        files = session.exec(select(SequencingFile).order_by(SequencingFile.id)).all()
        assert [(f.checksum_kind, f.checksum) for f in files] == [("md5", MD5), ("sha256", SHA)], "stored lower-case"
        frame = reads.sample_states(session)
        row = frame[frame["specimen_code"] == DNA].iloc[0]
        assert (row["run_id"], row["mean_coverage"], row["purity"], row["ploidy"]) == ("RUN-1", 62.5, 0.7, 2.1)
        regions = reads.sequenced_regions(session, [int(row["donor_id"])])
        assert dict(zip(regions["region_code"], regions["state"], strict=True)) == {"L04-A": "passed",
                                                                                  "L03-A": "sequenced"}

    # a person judges the sequenced one; a judged result is final, and only passed/failed_qc are moves
    def judge(outcome: str, specimen: str = TUMOUR, note: str | None = "low complexity"):
        return lambda session: sequencing.set_outcome(session, actor=people["tech"], plan_code="WGS-1",
                                                      specimen_code=specimen, run_id="RUN-1", outcome=outcome,
                                                      note=note)

    assert_refused(engine, ValidationError, "Outcome", judge("sequenced"))
    assert_refused(engine, ValidationError, "must say why", judge("failed_qc", note=None))
    assert_refused(engine, ConflictError, "already passed", judge("failed_qc", specimen=DNA))
    assert_refused(engine, ConflictError, "already failed_qc", judge("passed", specimen=GERMLINE))
    with session_scope(engine) as session:
        judge("passed", note=None)(session)
    assert states(engine)[TUMOUR] == "passed"
    assert_refused(engine, ConflictError, "already passed", judge("failed_qc"))
    assert_refused(engine, ConflictError, "already recorded",
                   lambda s: sequencing.record_result(s, actor=people["tech"], plan_code="WGS-1",
                                                      specimen_code=DNA, run_id="RUN-1"))

    # the thresholds come from the settings: a stricter contamination limit fails what the default passes
    monkeypatch.setenv("BIOBANK_SEQUENCING_MAX_CONTAMINATION_PCT", "0.1")
    get_settings.cache_clear()
    with session_scope(engine) as session:
        sequencing.record_run(session, actor=people["tech"], run_id="RUN-2", instrument="NovaSeq X")
        again = sequencing.record_result(session, actor=people["tech"], plan_code="WGS-1", specimen_code=DNA,
                                         run_id="RUN-2", mean_coverage=62.5, contamination_pct=0.4)
        assert again.outcome == "failed_qc" and "above 0.1 %" in (again.qc_note or "")
    assert states(engine)[DNA] == "failed_qc", "the latest result is the sample's state"


@pytest.mark.demo(1)
def test_results_only_for_submitted_plans_and_their_samples(engine):
    people = plan(engine, submit=False)
    tech = people["tech"]

    def record(specimen: str = DNA, run: str = "RUN-1", code: str = "WGS-1"):
        return lambda s: sequencing.record_result(s, actor=tech, plan_code=code, specimen_code=specimen, run_id=run,
                                                  mean_coverage=60, contamination_pct=1)

    assert_refused(engine, ConflictError, "WGS-1 is approved; results are recorded only for a submitted plan",
                   record())
    with session_scope(engine) as session:
        planning.submit_plan(session, actor=people["pi"], plan_code="WGS-1")
    assert_refused(engine, ValidationError, "is not a sample of plan WGS-1", record(specimen="RA0001-L03A-SF2"))
    assert_refused(engine, NotFoundError, "record the run first", record(run="RUN-9"))
    assert_refused(engine, NotFoundError, "NOPE", record(code="NOPE"))
    for who in ("viewer", "coord"):
        assert_refused(engine, PermissionDeniedError, "admin, pi, technician",
                       lambda s, who=who: sequencing.record_result(
                           s, actor=people[who], plan_code="WGS-1", specimen_code=DNA, run_id="RUN-1"))
    assert_refused(engine, ConflictError, "already recorded",
                   lambda s: sequencing.record_run(s, actor=tech, run_id="RUN-1", instrument="MiSeq"))


BAD_RESULTS = [
    ({"files": [("s3://x/a.bam", "md5", "abc", 1, "bam")]}, "Checksum .*32 hexadecimal digits for md5"),
    ({"files": [("s3://x/a.bam", "md5", "g" * 32, 1, "bam")]}, "32 hexadecimal digits"),
    ({"files": [("s3://x/a.bam", "sha256", MD5, 1, "bam")]}, "64 hexadecimal digits for sha256"),
    ({"files": [("s3://x/a.bam", "sha1", MD5, 1, "bam")]}, "md5, sha256"),
    ({"files": [("   ", "md5", MD5, 1, "bam")]}, "must not be blank"),
    ({"files": [("s3://x/a.bam", "md5", MD5, -1, "bam")]}, "cannot be below 0"),
    ({"files": [("s3://x/a.bam", "md5", MD5), ("s3://x/a.bam", "md5", MD5)]}, "listed twice"),
    ({"mean_coverage": float("nan")}, "finite"),
    ({"mean_coverage": float("inf")}, "finite"),
    ({"contamination_pct": 101.0}, "cannot be above 100"),
    ({"purity": 1.5}, "cannot be above 1"),
    ({"ploidy": 0.0}, "must be more than 0"),
    ({"read_count": -5}, "cannot be below 0"),
    ({"read_count": 1.5}, "whole number"),
    ({"read_count": 10**40}, "cannot be above 1,000,000,000,000"),
    ({"mean_coverage": 1e6}, "cannot be above 100000"),
    ({"files": [("s3://x/a.bam", "md5", MD5, 10**16, "bam")]}, "cannot be above 1,000,000,000,000,000"),
]


@pytest.mark.demo(1)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(engine):
    people = plan(engine)
    tech = people["tech"]
    for values, match in BAD_RESULTS:
        given = {"files": [("s3://x/ok.bam", "md5", MD5)]} | values
        assert_refused(engine, ValidationError, match,
                       lambda s, given=given: sequencing.record_result(
                           s, actor=tech, plan_code="WGS-1", specimen_code=DNA, run_id="RUN-1", **given))
    future = datetime.now(UTC) + timedelta(days=2)
    for values, match in (
        ({"started_at": future}, "in the future"),
        ({"started_at": datetime(2026, 11, 2, tzinfo=UTC), "completed_at": datetime(2026, 11, 1, tzinfo=UTC)},
         "cannot be before"),
        ({"instrument": "  "}, "must not be blank"),
        ({"run_id": "RUN 2"}, "spaces"),
    ):
        arguments: dict[str, Any] = {"run_id": "RUN-2", "instrument": "NovaSeq X"} | values
        assert_refused(engine, ValidationError, match,
                       lambda s, a=arguments: sequencing.record_run(s, actor=tech, **a))
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(SequencingResult)).one() == 0


@pytest.mark.demo(1)
def test_a_run_that_started_before_the_sample_was_collected_takes_no_result_of_it(engine):
    people = plan(engine)
    with session_scope(engine) as session:
        sequencing.record_run(session, actor=people["tech"], run_id="RUN-2000", instrument="HiSeq 2000",
                              started_at=datetime(2000, 1, 1, 10, tzinfo=UTC))
    assert_refused(engine, ValidationError, f"started before {DNA} was collected",
                   lambda s: sequencing.record_result(s, actor=people["tech"], plan_code="WGS-1", specimen_code=DNA,
                                                      run_id="RUN-2000", mean_coverage=60.0))
    # a whole-genome sample's read count beyond a 32-bit integer is kept (the column is 64-bit on both databases)
    stored = result(engine, people["tech"], DNA, read_count=3_200_000_000, mean_coverage=61.0,
                    contamination_pct=0.4, files=[("s3://x/wgs.cram", "md5", MD5, 60 * 10**9, "cram")])
    with Session(engine) as session:
        assert session.get(SequencingResult, stored.id).read_count == 3_200_000_000
        assert session.exec(select(SequencingFile.size_bytes)).one() == 60 * 10**9


@pytest.mark.demo(1)
def test_a_failed_sample_gets_the_next_best_piece_of_its_region_or_lesion(engine):
    people = plan(engine)
    with Session(engine) as session:
        with pytest.raises(ConflictError, match="only for a sample that failed QC"):
            sequencing.propose_replacement(session, "WGS-1", TUMOUR)
    result(engine, people["tech"], TUMOUR, mean_coverage=10, contamination_pct=0.5)
    result(engine, people["tech"], GERMLINE, mean_coverage=60, contamination_pct=9)
    with Session(engine) as session:
        tumour = sequencing.propose_replacement(session, "WGS-1", TUMOUR)
        in_plan = set(reads.sample_states(session)["specimen_code"])
        listed = {r.failed_specimen_code: r for r in sequencing.failed_replacements(session, "WGS-1")}
    assert tumour.role == "tumour" and tumour.region_code == "L03-A" and tumour.specimen_code not in in_plan
    assert tumour.specimen_code is not None and tumour.reason.startswith("same region L03-A: ")
    assert "best of" in tumour.reason
    germline = listed[GERMLINE]
    assert germline.role == "germline_normal" and germline.specimen_code not in in_plan
    assert germline.specimen_code is not None and germline.reason
    assert set(listed) == {TUMOUR, GERMLINE} and listed[TUMOUR] == tumour
