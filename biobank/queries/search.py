# SQLModel declares columns with their Python types, so mypy cannot see SQL expressions in select/where.
# mypy: disable-error-code="arg-type, call-overload, union-attr, attr-defined, operator"
"""Specimen search: what a person typed or scanned, resolved to a code, and the codes meant by a near miss.

Every read goes through an index, so a code that does not exist costs milliseconds at a million specimens
(issue 21, item 4; migration 0018):

- the code as typed, the barcode, the code in another letter case (``ix_specimen_code_upper`` on ``upper(code)``)
  and the code typed without its hyphens (``ix_specimen_code_bare`` on the *bare* code: upper case, without
  ``-``, ``_`` and ``.``) are B-tree lookups;
- suggestions read the bare codes through a trigram index: on PostgreSQL the GIN index ``ix_specimen_code_trgm``
  (``pg_trgm``), which serves ``LIKE '%x%'``, ``LIKE 'x%'`` and ``LIKE '%x'``; on SQLite the FTS5 table
  ``specimen_code_fts`` (trigram tokenizer, one row per specimen, rowid = specimen id, kept in step by triggers),
  whose ``LIKE`` reads the trigram index.

The SQL text of the bare code must be the indexed expression exactly, with its characters as literals (not bound
parameters, which neither planner matches against an index expression): :func:`bare_code_sql`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein
from sqlalchemy import func, literal_column, or_, text
from sqlmodel import Session, select

from biobank.models import Specimen

#: The SQLite FTS5 table of bare specimen codes (migration 0018; named in the statements below).
FTS_TABLE = "specimen_code_fts"
#: At most this many codes sharing a typed code's first or last six characters are ranked by edit distance.
NEAR_CANDIDATES = 50_000


def _bare(value: str) -> str:
    """A code as letters and digits only, upper case: ``ra0001-l01a-sf1`` and ``RA0001L01ASF1`` read the same."""
    return "".join(c for c in value.upper() if c.isalnum())


def _stripped(value: str) -> str:
    """What :func:`bare_code_sql` makes of ``value``: upper case, without ``-``, ``_`` and ``.``."""
    return value.upper().replace("-", "").replace("_", "").replace(".", "")


def bare_code_sql(column: Any) -> Any:
    """``replace(replace(replace(upper(column), '-', ''), '_', ''), '.', '')``: the expression of the indexes
    ``ix_specimen_code_bare`` and ``ix_specimen_code_trgm``, with literal characters so the planners match it."""
    empty: Any = literal_column("''")
    expression = func.upper(column)
    for character in ("'-'", "'_'", "'.'"):
        expression = func.replace(expression, literal_column(character), empty)
    return expression


#: The trigger that indexes each new specimen's code in :data:`FTS_TABLE`, one row at a time (migration 0018).
FTS_INSERT_TRIGGER = f"{FTS_TABLE}_ins"


@contextmanager
def code_index_deferred(connection: Any) -> Iterator[None]:
    """Index the codes of the specimens inserted inside the block in one statement at its end, instead of one row
    at a time by the trigger: for bulk loads on SQLite, where the trigger costs a bulk insert more than half its
    speed and more the larger the index grows. Runs in the caller's transaction, which holds SQLite's write lock
    throughout (no other writer's rows can come between), so the index is exact when the block ends; the trigger
    is back whatever happens (and a rolled-back transaction takes back its removal anyway). Nothing on PostgreSQL,
    whose trigram index is an ordinary index."""
    if connection.dialect.name != "sqlite":
        yield
        return
    found = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (FTS_INSERT_TRIGGER,)).scalar()
    if found is None:  # a database before migration 0018: nothing indexes codes
        yield
        return
    before = connection.exec_driver_sql("SELECT coalesce(max(id), 0) FROM specimen").scalar_one()
    connection.exec_driver_sql(f"DROP TRIGGER {FTS_INSERT_TRIGGER}")

    def catch_up() -> None:
        if connection.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                                      (FTS_INSERT_TRIGGER,)).first() is not None:
            return  # a savepoint rolled back inside the block took the removal (and the rows) back
        bare = bare_code_sql(literal_column("code")).compile(compile_kwargs={"literal_binds": True})
        connection.exec_driver_sql(
            f"INSERT INTO {FTS_TABLE} (rowid, bare) SELECT id, {bare} FROM specimen WHERE id > ? ORDER BY id", (before,))
        connection.exec_driver_sql(found)

    try:
        yield
    except BaseException:
        with suppress(Exception):
            catch_up()
        raise
    catch_up()


# Kept under its former name (biobank.queries.cohort re-exports it).
_bare_sql = bare_code_sql


def _like_escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def resolve_specimen_code(session: Session, typed: str) -> str | None:
    """The specimen code for what was typed or scanned: its code, its barcode, its code in another case, or its code
    typed without the hyphens (when exactly one specimen reads so)."""
    value = (typed or "").strip()
    if not value:
        return None
    for condition in (Specimen.code == value, Specimen.barcode == value, func.upper(Specimen.code) == value.upper()):
        found = session.exec(select(Specimen.code).where(condition).limit(1)).first()
        if found is not None:
            return found
    bare = _bare(value)
    if len(bare) >= 3:
        rows = session.exec(select(Specimen.code).where(bare_code_sql(Specimen.code) == bare).limit(2)).all()
        if len(rows) == 1:
            return rows[0]
    return None


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


# ``CROSS JOIN`` keeps the FTS table the outer loop: SQLite probes its trigram index, then reads each specimen by
# rowid, and never walks specimen in code order instead.
_FTS_CONTAINING = text(
    "SELECT s.code FROM specimen_code_fts AS f CROSS JOIN specimen AS s ON s.id = f.rowid "
    "WHERE f.bare LIKE :core AND upper(s.code) LIKE :pattern ESCAPE '\\' ORDER BY s.code LIMIT :limit"
)


def _fts_codes(session: Session, statement: Any, **params: Any) -> list[str]:
    return [str(row[0]) for row in session.connection().execute(statement, params)]


def _containing(session: Session, value: str, limit: int) -> list[str]:
    """Codes containing ``value`` (letter case ignored), in code order: the bare codes containing its bare form are
    read from the trigram index, then the codes themselves are checked."""
    pattern = value.replace("%", "")
    like_code = func.upper(Specimen.code).like(f"%{_like_escaped(pattern)}%", escape="\\")
    core = _stripped(pattern)
    if len(core) < 3:  # too short for a trigram: the plain (scanning) comparison
        return list(session.exec(select(Specimen.code).where(like_code).order_by(Specimen.code).limit(limit)).all())
    if _sqlite(session):
        # FTS5's LIKE takes no ESCAPE: the bare form has no ``_`` and no ``%``, so it needs none
        return _fts_codes(session, _FTS_CONTAINING, core=f"%{core}%", pattern=f"%{_like_escaped(pattern)}%", limit=limit)
    # OFFSET 0 keeps the matches a subquery of their own (PostgreSQL does not pull it up), so they are read through
    # the trigram index and then sorted, never by walking specimen's code index in order until enough match
    hits = (select(Specimen.code.label("code"))
            .where(bare_code_sql(Specimen.code).like(f"%{_like_escaped(core)}%", escape="\\"), like_code)
            .offset(0).subquery("hits"))
    return list(session.exec(select(hits.c.code).order_by(hits.c.code).limit(limit)).all())


_FTS_NEAR = text(
    "SELECT s.code, f.bare FROM specimen_code_fts AS f CROSS JOIN specimen AS s ON s.id = f.rowid "
    "WHERE f.bare LIKE :like LIMIT :limit"
)


def _near_candidates(session: Session, head: str, tail: str) -> dict[str, str]:
    """Codes (with their bare form) whose bare form starts with ``head`` or ends with ``tail``, through the trigram
    index."""
    if _sqlite(session):
        connection = session.connection()
        rows = [*connection.execute(_FTS_NEAR, {"like": f"{head}%", "limit": NEAR_CANDIDATES}),
                *connection.execute(_FTS_NEAR, {"like": f"%{tail}", "limit": NEAR_CANDIDATES})]
    else:
        bare = bare_code_sql(Specimen.code)
        rows = list(session.exec(select(Specimen.code, bare).where(
            or_(bare.like(f"{head}%"), bare.like(f"%{tail}"))).limit(NEAR_CANDIDATES)).all())
    return {str(code): str(stripped) for code, stripped in rows}


def similar_codes(session: Session, typed: str, *, limit: int = 10) -> list[str]:
    """Codes close to what was typed, nearest first: those containing it, then those one or two keystrokes away
    (a wrong, missing or extra character; hyphens and case ignored).

    The near ones are looked for among codes sharing the typed text's first or last part, the two parts together
    one character shorter than it (a single typo leaves one of them intact), read through the trigram index, so a
    miss costs an index probe, not a pass over the table. Parts as long as that keep the candidates few: the first
    six characters of a code are shared by a hundred donors' specimens at a million.
    """
    value = (typed or "").strip().upper()
    bare = _bare(value)
    if len(bare) < 3:
        return []
    containing = _containing(session, value, limit)
    head = max(3, (len(bare) - 1) // 2)
    tail = max(3, len(bare) - 1 - head)
    candidates = _near_candidates(session, bare[:head], bare[-tail:])
    # every candidate within two keystrokes, then nearest first and in code order among equals (not the first
    # ``2 * limit`` in whatever order the rows came: that depended on the plan)
    near = process.extract(bare, candidates, scorer=Levenshtein.distance, score_cutoff=2, limit=None)
    ranked = [code for _, _, code in sorted(near, key=lambda hit: (hit[1], hit[2]))]
    return list(dict.fromkeys([*containing, *ranked]))[:limit]
