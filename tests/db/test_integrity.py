"""A database refusal reads as a sentence in the lab's words, and every rule of the schema has one."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import CheckConstraint, UniqueConstraint, text, update
from sqlmodel import SQLModel

import biobank.models  # noqa: F401  # every table, so the metadata is complete
from biobank.db.engine import session_scope
from biobank.db.integrity import SENTENCES
from biobank.domain.errors import BiobankError, ValidationError
from biobank.models import Autopsy, Specimen
from tests.conftest import DEATH
from tests.support.factories import H, collect, make_case


def _rules(kind: type) -> set[str]:
    return {
        str(constraint.name)
        for table in SQLModel.metadata.sorted_tables
        for constraint in table.constraints
        if isinstance(constraint, kind)
    }


def test_every_check_constraint_of_the_models_has_a_sentence():
    checks = _rules(CheckConstraint)
    assert len(checks) > 100
    assert sorted(checks - set(SENTENCES)) == []


def test_every_unique_rule_of_the_models_has_a_sentence():
    unique = _rules(UniqueConstraint) | {
        str(index.name) for table in SQLModel.metadata.sorted_tables for index in table.indexes if index.unique
    }
    assert sorted(unique - set(SENTENCES)) == []


def _triggers(engine) -> set[str]:
    """The rule names of the migrated database's triggers (a SQLite trigger per event carries a suffix)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            # as on PostgreSQL, only triggers that raise need a sentence (not the search table's, migration 0018)
            rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                                     "AND sql LIKE '%RAISE(%'")).all()
            named = {re.sub(r"_(ins|upd)$", "", name) for name, _sql in rows}
            raised = {m for _name, sql in rows for m in re.findall(r"RAISE\(ABORT, '(tg_\w+):", sql)}
            assert raised <= named
            return named
        # the audit triggers (migration 0010) and the audit log's clock raise nothing: only triggers whose function
        # raises need a sentence
        rows = conn.execute(text("SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
                                 "WHERE NOT t.tgisinternal AND p.prosrc LIKE '%RAISE EXCEPTION%'")).all()
        return {name for (name,) in rows}


def test_every_trigger_that_raises_has_a_sentence(engine):
    triggers = _triggers(engine)
    assert "tg_specimen_collected_after_death" in triggers
    assert sorted(triggers - set(SENTENCES)) == []


def test_a_broken_check_reads_as_a_sentence_naming_the_rule_on_the_error(engine, tech):
    """Reported: "database rule ck_specimen_decalcification_hours_with_agent refused the change (CHECK constraint
    failed...)"."""
    with session_scope(engine) as session:
        make_case(session, tech)
        code = collect(session, tech)[0]
    with pytest.raises(ValidationError) as refused, session_scope(engine) as session:
        session.execute(update(Specimen).where(Specimen.code == code).values(decalcification_hours=12))
    assert str(refused.value).startswith("Decalcification hours need a decalcification agent")
    assert "ck_" not in str(refused.value) and "CHECK" not in str(refused.value)
    assert refused.value.field == "ck_specimen_decalcification_hours_with_agent"


def test_a_trigger_refusal_reads_without_the_triggers_name(engine, tech):
    """Reported: a pre-death time showed the trigger's name."""
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech)
    with pytest.raises(BiobankError) as refused, session_scope(engine) as session:
        session.execute(update(Specimen).values(collected_at=DEATH - H))
    assert str(refused.value) == "A specimen cannot be collected before the donor's death (only a pre-mortem blood draw can)"
    assert refused.value.field == "tg_specimen_collected_after_death"


def test_a_vocabulary_check_names_the_field_by_its_label(engine, tech):
    with session_scope(engine) as session:
        make_case(session, tech)
    with pytest.raises(ValidationError) as refused, session_scope(engine) as session:
        session.execute(update(Autopsy).values(status="paused"))
    assert str(refused.value) == "Status must be one of the values on its list"
    assert refused.value.field == "ck_autopsy_status"
