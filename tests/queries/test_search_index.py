"""Specimen search through indexes (issue 21, item 4; migration 0018): the indexes exist, a miss is read through them
(no pass over specimen), the SQLite FTS5 table follows every write, and the suggestions are what they were."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from alembic import command
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from benchmarks.synthetic import build
from biobank.db.engine import session_scope
from biobank.models import Donor, Specimen
from biobank.queries.cohort import resolve_specimen_code as resolve_from_cohort
from biobank.queries.search import FTS_TABLE, resolve_specimen_code, similar_codes
from biobank.services.lookup import by_code, stored_code
from tests.support.dbtools import alembic_config
from tests.support.factories import donor_with_material

UPPER = {"ix_specimen_code_upper", "ix_donor_code_upper", "ix_autopsy_case_code_upper", "ix_lesion_code_upper",
         "ix_container_code_upper", "ix_distribution_order_code_upper", "ix_derived_model_code_upper",
         "ix_model_passage_label_upper", "ix_analysis_plan_code_upper", "ix_analysis_result_code_upper"}
MISS = "ZZ9999-Q99Q-QQ9"


@pytest.fixture
def codes(engine: Engine, tech: Any, death: Any) -> list[str]:
    with session_scope(engine) as session:
        made = donor_with_material(session, tech, death=death, code="RA-0001")
        donor_with_material(session, tech, death=death, code="RA-0002")
        return sorted(s.code for s in made.values())


def _index_names(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'")).scalars())
        return set(conn.execute(text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")).scalars())


def _fts_rows(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return {int(r[0]): str(r[1]) for r in conn.execute(text(f"SELECT rowid, bare FROM {FTS_TABLE}"))}


def _bare_of_specimens(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, code FROM specimen")).all()
    return {int(i): c.upper().replace("-", "").replace("_", "").replace(".", "") for i, c in rows}


def test_the_code_indexes_exist_after_migration(engine: Engine) -> None:
    names = _index_names(engine)
    assert UPPER | {"ix_specimen_code_bare"} <= names
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            assert FTS_TABLE not in names  # a virtual table, not an index
            sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": FTS_TABLE}).scalar_one()
            assert "fts5" in sql and "trigram" in sql
            triggers = set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                             "AND tbl_name = 'specimen' AND name LIKE 'specimen_code_fts%'")).scalars())
            assert triggers == {f"{FTS_TABLE}_ins", f"{FTS_TABLE}_upd", f"{FTS_TABLE}_del"}
        else:
            assert "ix_specimen_code_trgm" in names
            definition = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_specimen_code_trgm'")).scalar_one()
            assert "USING gin" in definition and "gin_trgm_ops" in definition
            assert conn.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")).scalar_one() == 1


@contextmanager
def _statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _plan(engine: Engine, statement: str, parameters: Any) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            return [str(r[-1]) for r in rows]
        conn.exec_driver_sql("SET enable_seqscan = off")  # a test database is tiny: ask whether an index *can* serve
        return [str(r[0]) for r in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).all()]


def _full_scans(engine: Engine, plan: list[str]) -> list[str]:
    """The plan's nodes that walk specimen (or one of its indexes) instead of probing an index."""
    if engine.dialect.name == "sqlite":
        # "SCAN specimen", "SCAN s", "SCAN specimen USING COVERING INDEX ..." walk the table; the FTS table is probed
        return [line for line in plan if line.startswith("SCAN") and "VIRTUAL TABLE" not in line]
    found = []
    for at, line in enumerate(plan):
        if " on specimen" not in line or "Bitmap Heap Scan" in line:
            continue
        details = []
        for following in plan[at + 1:]:
            if "->" in following:
                break
            details.append(following)
        if "Seq Scan" in line or not any("Index Cond" in d for d in details):
            found.append(line)
    return found


@pytest.mark.parametrize("typed", [MISS, "zz9999q99qqq9", "QQ9"], ids=["miss", "bare-miss", "short"])
def test_a_miss_is_read_through_the_indexes_not_by_a_pass_over_specimen(engine: Engine, codes: list[str],
                                                                         typed: str) -> None:
    if engine.dialect.name == "postgresql":  # enough rows that PostgreSQL's plan is the one it makes at scale
        build(engine, 5_000)
    with engine.connect() as conn:  # statistics, as the migrations and the loader leave them
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    with _statements(engine) as seen, session_scope(engine) as session:
        assert resolve_specimen_code(session, typed) is None
        assert similar_codes(session, typed) == []
    reads = [(s, p) for s, p in seen if "specimen" in s.lower() and s.lstrip().upper().startswith("SELECT")]
    assert len(reads) >= 4
    used: set[str] = set()
    for statement, parameters in reads:
        plan = _plan(engine, statement, parameters)
        assert _full_scans(engine, plan) == [], (statement, plan)
        used |= {name for name in (*UPPER, "ix_specimen_code_bare", "ix_specimen_code_trgm", "uq_specimen_code",
                                   "uq_specimen_barcode", FTS_TABLE, "VIRTUAL TABLE") if name in " ".join(plan)}
    assert {"ix_specimen_code_upper", "ix_specimen_code_bare"} <= used
    assert ("VIRTUAL TABLE" if engine.dialect.name == "sqlite" else "ix_specimen_code_trgm") in used


def test_the_case_insensitive_lookups_use_the_upper_indexes(engine: Engine, codes: list[str]) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    with _statements(engine) as seen, session_scope(engine) as session:
        assert by_code(session, Donor, Donor.code, " ra-0002 ", what="donor", field="donor").code == "RA-0002"
        assert stored_code(session, Specimen.code, f" {codes[0].lower()}") == codes[0]
        assert stored_code(session, Specimen.code, MISS.lower()) == MISS.lower()
    upper_reads = [(s, p) for s, p in seen if "upper(" in s.lower()]
    assert upper_reads
    for statement, parameters in upper_reads:
        plan = " ".join(_plan(engine, statement, parameters))
        assert "ix_specimen_code_upper" in plan or "ix_donor_code_upper" in plan, (statement, plan)


def test_the_trigram_index_follows_inserts_and_code_updates(engine: Engine, codes: list[str], tech: Any,
                                                             death: Any) -> None:
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        assert _fts_rows(engine) == _bare_of_specimens(engine)
    with session_scope(engine) as session:
        donor_with_material(session, tech, death=death, code="RA-0003")
    with engine.begin() as conn:
        conn.execute(text("UPDATE specimen SET code = 'RA0003-L09Z-SF7' WHERE code = "
                          "(SELECT min(code) FROM specimen WHERE code LIKE 'RA0003%')"))
    if sqlite:
        assert _fts_rows(engine) == _bare_of_specimens(engine)
    with session_scope(engine) as session:
        assert similar_codes(session, "ra0003-l09z-sf7")[0] == "RA0003-L09Z-SF7"
        assert "RA0003-L09Z-SF7" in similar_codes(session, "RA0003-L09Z-SF8")  # one keystroke away
        assert "L09Z" in similar_codes(session, "L09Z")[0]
        assert resolve_specimen_code(session, "ra0003l09zsf7") == "RA0003-L09Z-SF7"


def test_suggestions_are_unchanged_and_a_typo_is_still_found(engine: Engine, codes: list[str]) -> None:
    code = codes[0]
    with session_scope(engine) as session:
        # containing matches first, in code order, then the near ones by distance
        containing = similar_codes(session, code[:6])
        assert containing == sorted(containing) and all(code[:6] in c for c in containing) and len(containing) == 6
        typo = code[:4] + ("9" if code[4] != "9" else "8") + code[5:]
        assert resolve_specimen_code(session, typo) is None
        assert similar_codes(session, typo)[0] == code
        assert similar_codes(session, code[:8] + code[9:])[0] == code  # a character missing
        assert similar_codes(session, "a%b_c") == []  # wildcards are characters, not patterns
        assert resolve_from_cohort is resolve_specimen_code  # still importable from biobank.queries.cohort


def test_the_migration_fills_the_search_table_from_the_specimens_present(engine: Engine, codes: list[str],
                                                                         db_url: str) -> None:
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    command.downgrade(config, "0017")
    assert not {"ix_specimen_code_upper", "ix_specimen_code_bare", "ix_specimen_code_trgm"} & _index_names(engine)
    command.upgrade(config, "head")
    assert {"ix_specimen_code_upper", "ix_specimen_code_bare"} <= _index_names(engine)
    if engine.dialect.name == "sqlite":
        assert _fts_rows(engine) == _bare_of_specimens(engine) and len(codes) == 6
    with session_scope(engine) as session:
        assert codes[0] in similar_codes(session, codes[0][:-1] + "9")


def test_every_column_looked_up_in_any_letter_case_has_an_upper_index() -> None:
    """``by_code(session, Model, Model.column, ...)`` and ``stored_code(session, Model.column, ...)`` anywhere in
    biobank: the column's ``upper(...)`` index is declared (biobank.models.indexes) and so created by 0018."""
    import re
    from pathlib import Path

    import biobank.models as models
    from biobank.models.indexes import CODE_UPPER_INDEXES

    root = Path(models.__file__).resolve().parents[1]
    pattern = re.compile(r"(?:by_code\(session, \w+, |stored_code\(session, )(\w+)\.(\w+)")
    looked_up = {match.groups() for path in root.rglob("*.py") for match in pattern.finditer(path.read_text())}
    assert ("Specimen", "code") in looked_up and ("Donor", "code") in looked_up
    indexed = {(index.table.name, next(iter(index.expressions)).clauses.clauses[0].name)  # type: ignore[attr-defined]
               for index in CODE_UPPER_INDEXES}
    tables = {(getattr(models, model).__table__.name, column) for model, column in looked_up}
    assert sorted(tables - indexed) == []
