"""The declarative import spec: a *kind* (what a spreadsheet row becomes), the row on its way in
(:class:`Staged`), and the set-based lookups a kind resolves references with (:class:`Resolver`).

Adding a kind is adding one class to a module of :mod:`biobank.imports.kinds` and listing it in
:mod:`biobank.imports.registry` (``placements`` is built like this):

.. code-block:: python

    class Placements(Kind):
        name = "placements"
        title = "Storage placements"
        table = Placement.__table__
        order = 80                                   # after specimens in a full load
        key = ("specimen_code",)                     # natural key: file columns
        identity = frozenset({"specimen_id"})        # table columns an upsert may not change
        columns = (
            text_col("specimen_code", "Code of the specimen placed", required=True),
            text_col("container_code", "Code of the box or bag", required=True),
            text_col("position", "Grid position such as A1 (empty for containers without a grid)"),
        )

        def check(self, row):                        # row-local rules; raise biobank.domain.errors (invalid(...))
            ...

        def resolve(self, res, rows):                # set-based lookups; set row.record / row.existing or row.fail()
            ...

        def export_rows(self, session):             # the current table in template format (round trip)
            ...

The spec's columns give the template (:mod:`biobank.imports.templates`), the CLI and the dashboard page for free.
A self-referencing kind names its in-file key with :meth:`Kind.natural` (a code by default; a passage's is its model
and label).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Table, tuple_
from sqlmodel import Session

from biobank.db.bulk import key_in
from biobank.imports.columns import Column, Context
from biobank.imports.report import RowError
from biobank.models import User
from biobank.services.inputs import ServiceInput

#: Cached lookups and coerced cells kept per name or column before a cache is trimmed.
CACHE_LIMIT = 50_000


class RowFailed(Exception):
    """Raised by :meth:`Staged.fail` to abandon a row after recording its error."""


@dataclass(eq=False)
class Staged:
    """A row on its way in: coerced ``values`` by file column, then the table ``record`` the kind builds."""

    number: int
    values: dict[str, Any]
    raw: dict[str, Any]
    record: dict[str, Any] | None = None
    #: The current table row with the same natural key (upsert), or None.
    existing: dict[str, Any] | None = None
    #: Table column -> natural key of a row of the same kind earlier in this file (e.g. parent_id -> parent code).
    pending: dict[str, Any] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)

    def error(self, column: str, message: str, *, expected: str = "", value: Any = None) -> None:
        shown = self.raw.get(column) if value is None else value
        self.errors.append(RowError(self.number, column, "" if shown is None else str(shown), expected, message))

    def fail(self, column: str, message: str, *, expected: str = "", value: Any = None) -> RowFailed:
        self.error(column, message, expected=expected, value=value)
        return RowFailed()


class Kind:
    """A declarative import spec; see the module docstring. Subclasses set the class attributes."""

    name: ClassVar[str]
    noun: ClassVar[str]  # one row, in error messages ("specimen")
    title: ClassVar[str]
    help: ClassVar[str] = ""
    table: ClassVar[Table]
    order: ClassVar[int]
    columns: ClassVar[tuple[Column, ...]]
    key: ClassVar[tuple[str, ...]]
    identity: ClassVar[frozenset[str]] = frozenset()
    #: Whether rows may name another row of the same file (``pending``); such rows must come later in the file.
    self_referencing: ClassVar[bool] = False
    #: The service's input model for the same record, whose field declarations (types, lengths, finite numbers)
    #: every row's values are checked against before the kind's own rules.
    input_model: ClassVar[type[ServiceInput] | None] = None
    #: Whether :meth:`after_insert` may run for a chunk after the next chunk is looked up and inserted: what it
    #: writes is read by no lookup and no rule of the rows after it (the specimens' first custody events). The
    #: engine then has the database write it while the next chunk's rows are prepared. Still in the same savepoint.
    after_insert_later: ClassVar[bool] = False

    def check(self, row: Staged) -> None:
        """Row-local rules; raise a :class:`~biobank.domain.errors.BiobankError` (``invalid(field, value, why)``)."""

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        """Set-based lookups for a chunk of checked rows: set ``record`` and ``existing`` or record errors."""
        raise NotImplementedError

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        """The table's current rows in template format (for the export → import round trip)."""
        raise NotImplementedError

    def after_insert(self, session: Session, rows: list[tuple[int, dict[str, Any]]], actor: User | None) -> None:
        """Side effects of new rows (custody events, status changes), in the same transaction."""

    def natural(self, record: dict[str, Any]) -> Any:
        """The in-file key a self-referencing kind's rows are named by (``pending`` values): its ``code``."""
        return record["code"]

    def column(self, name: str) -> Column:
        return self._by_name()[name]

    @classmethod
    def _by_name(cls) -> dict[str, Column]:
        cache = cls.__dict__.get("_columns_by_name")
        if cache is None:
            cache = {col.name: col for col in cls.columns}
            cls._columns_by_name = cache  # type: ignore[attr-defined]  # a per-class cache set on first use
        return cache

    def key_of(self, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        key = tuple(values.get(name) for name in self.key)
        return None if any(part is None for part in key) else key


class Resolver:
    """Set-based lookups shared by the kinds during one import, with small caches of what was found."""

    def __init__(self, session: Session, ctx: Context, mode: str) -> None:
        self.session = session
        self.ctx = ctx
        self.mode = mode
        self.cache: dict[str, dict[Any, Any]] = {}
        #: Per-kind state that must outlive a chunk (e.g. specimens defined earlier in the file).
        self.state: dict[str, Any] = {}

    def lookup(
        self,
        name: str,
        keys: Iterable[Any],
        fetch: Callable[[list[Any]], Mapping[Any, Any]],
    ) -> dict[Any, Any]:
        """``{key: found}`` for ``keys`` (missing keys absent), fetching only keys not cached yet, 500 at a time."""
        cache = self.cache.setdefault(name, {})
        wanted = {k for k in keys if k is not None}
        missing = [k for k in wanted if k not in cache]
        for start in range(0, len(missing), 500):
            batch = missing[start : start + 500]
            found = fetch(batch)
            for k in batch:
                cache[k] = found.get(k)
        if len(cache) > 4 * CACHE_LIMIT:
            keep = {k: cache[k] for k in wanted if k in cache}
            cache.clear()
            cache.update(keep)
        return {k: cache[k] for k in wanted if cache.get(k) is not None}

    def rows_by(self, table: Table, columns: Sequence[str], keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], dict[str, Any]]:
        """Full rows of ``table`` whose ``columns`` equal one of ``keys`` (one query per 500 keys)."""
        out: dict[tuple[Any, ...], dict[str, Any]] = {}
        cols = [table.c[name] for name in columns]
        # A one-column key set goes as one parameter (biobank.db.bulk.key_in), thousands of keys per query; composite
        # keys as IN lists of 500.
        dialect = self.session.get_bind().dialect.name
        single = len(cols) == 1
        size = 10_000 if single else 500
        for start in range(0, len(keys), size):
            batch = keys[start : start + size]
            where = key_in(cols[0], [k[0] for k in batch], dialect) if single else tuple_(*cols).in_(batch)
            for row in self.session.execute(table.select().where(where)).mappings():
                out[tuple(row[name] for name in columns)] = dict(row)
        return out
