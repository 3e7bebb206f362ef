"""The search, board and cohort-under-writes benchmarks measure what they say: their misses are misses one keystroke
from a real code (or noise), the board's case is a whole synthetic case, and the concurrent writer records audited
QC without adding a specimen or moving the cohort generation (so the cached cohort figures stay valid)."""

from __future__ import annotations

from rapidfuzz.distance import OSA
from sqlalchemy import text
from sqlmodel import Session, func, select

from benchmarks import board_speed, overview_speed, search_speed, synthetic
from biobank.models import Specimen
from biobank.queries.cohort import generation
from biobank.queries.search import resolve_specimen_code


def test_search_benchmark_times_only_misses_one_keystroke_from_a_real_code_or_noise(engine, db_url):
    synthetic.build(engine, 500)
    codes, misses = search_speed.sample(db_url, 10, seed=3)
    assert len(codes) == 10 and len(misses) >= 40
    with Session(engine) as session:
        real = set(session.exec(select(Specimen.code)).all())
        assert set(codes) <= real
        for kind, typed in misses:
            assert resolve_specimen_code(session, typed) is None
            if kind == "typo":
                assert min(OSA.distance(typed, code) for code in codes) == 1  # a swap of neighbours counts one
    outcome = search_speed.main(["--url", db_url, "--specimens", "500", "--codes", "4"])
    names = [f["figure"] for f in outcome["figures"]]
    assert any(name.startswith("Search box miss") for name in names)
    assert all(f["value"] > 0 and f["met"] is None for f in outcome["figures"])  # no target below 1,000,000


def test_board_benchmark_reads_a_whole_case(engine, db_url):
    synthetic.build(engine, 500)
    case, count = board_speed.pick_case(db_url)
    assert count == synthetic.SPECIMENS_PER_DONOR
    outcome = board_speed.main(["--url", db_url, "--specimens", "500", "--runs", "1", "--no-render"])
    assert f"case of {count} specimens" in outcome["figures"][0]["figure"] and case in outcome["figures"][0]["note"]


def test_the_concurrent_writer_records_audited_qc_and_leaves_count_and_generation_alone(engine, db_url):
    synthetic.build(engine, 500)
    codes = overview_speed.writer_codes(db_url)
    assert codes
    with Session(engine) as session:
        before = (session.exec(select(func.count()).select_from(Specimen)).one(), generation(session))
        audited = session.connection().execute(text("SELECT count(*) FROM audit_log")).scalar_one()
    wrote = overview_speed.Writer(db_url, codes, synthetic.BENCH_USER).finish()
    assert wrote["writes"] >= 1
    with Session(engine) as session:
        assert (session.exec(select(func.count()).select_from(Specimen)).one(), generation(session)) == before
        reviewed = session.exec(select(func.count()).select_from(Specimen)
                                .where(Specimen.pathology_reviewer == "benchmark writer")).one()
        assert reviewed == min(wrote["writes"], len(codes))
        assert session.connection().execute(text("SELECT count(*) FROM audit_log")).scalar_one() > audited
