"""Specimens as lists: the specimen list with its filters, and where many specimens are at once.

One SELECT joins each specimen to its donor, case, sampling site and place; the containers above the places are
read once per level of the storage tree (a handful of queries whatever the number of rows), never once per
specimen. The pick lists and box maps (:mod:`biobank.printables`) and the specimen list page read through here.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from biobank.config import get_settings
from biobank.domain.errors import NotFoundError, invalid
from biobank.domain.storage.kinds import spec
from biobank.domain.vocab import SpecimenStatus, StorageFormat
from biobank.models import AnatomicalSite, Autopsy, Container, Donor, SamplingSite, Specimen, SpecimenLocation
from biobank.models.plans import AnalysisPlan, PlanSpecimen
from biobank.queries.storage import get_container

#: Rows the specimen list returns unless told otherwise: a page of a table, not an export.
DEFAULT_LIMIT = 2000

#: Columns of a :func:`specimen_list` row, in display order.
LIST_COLUMNS: tuple[str, ...] = (
    "code", "donor", "case", "site", "site_label", "sampling_site", "storage_format", "material_type",
    "quantity_remaining", "quantity", "unit", "status", "location", "box", "position", "collected_at",
)


def _table(model: type) -> Any:
    """A table model's Core table (columns under ``.c``), typed loosely so the SELECTs below read plainly."""
    return model.__table__  # type: ignore[attr-defined]  # set by SQLModel's metaclass for table models


_SPECIMEN_TABLE, _DONOR_TABLE, _AUTOPSY_TABLE = _table(Specimen), _table(Donor), _table(Autopsy)
_SAMPLING_SITE_TABLE, _ANATOMICAL_SITE_TABLE = _table(SamplingSite), _table(AnatomicalSite)
_LOCATION_TABLE, _PLAN_SPECIMEN_TABLE = _table(SpecimenLocation), _table(PlanSpecimen)
_SPECIMEN, _DONOR, _AUTOPSY = _SPECIMEN_TABLE.c, _DONOR_TABLE.c, _AUTOPSY_TABLE.c
_SAMPLING_SITE, _ANATOMICAL_SITE = _SAMPLING_SITE_TABLE.c, _ANATOMICAL_SITE_TABLE.c
_LOCATION, _PLAN_SPECIMEN = _LOCATION_TABLE.c, _PLAN_SPECIMEN_TABLE.c
_CONTAINER, _PLAN = _table(Container).c, _table(AnalysisPlan).c


# --- where things are -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shelf:
    """One container on the way to a specimen: its code and kind (``freezer``, ``rack``, ``box_9x9`` ...)."""

    code: str
    kind: str


@dataclass(frozen=True)
class Place:
    """Where a stored specimen is: the containers from the site down to the one holding it, and its position."""

    chain: tuple[Shelf, ...]
    position: str | None

    @property
    def path(self) -> str:
        return "/".join(shelf.code for shelf in self.chain)

    @property
    def label(self) -> str:
        """As :func:`biobank.queries.storage.label` writes it: ``UH/LAB1/FRZ1/R1/BOX1:A1``."""
        return f"{self.path}:{self.position}" if self.position else self.path

    @property
    def box(self) -> str:
        return self.chain[-1].code

    @property
    def unit(self) -> str | None:
        """The freezer, tank, fridge or cabinet: the nearest container that sets a temperature."""
        return next((s.code for s in reversed(self.chain) if spec(s.kind).temperature is not None), None)

    @property
    def rack(self) -> str | None:
        """The racks or shelves between the unit and the box (``R1/S2`` when nested), or None."""
        above = [i for i, s in enumerate(self.chain[:-1]) if spec(s.kind).temperature is not None or s.kind in _ABOVE_UNITS]
        start = above[-1] + 1 if above else 0
        return "/".join(s.code for s in self.chain[start:-1]) or None


#: Kinds that stand above the freezers and tanks: never a rack, even where no unit sets a temperature.
_ABOVE_UNITS = frozenset({"site", "room"})

_NUMBER_RUNS = re.compile(r"(\d+)")


def natural_key(text: str | None) -> tuple[tuple[int, int | str], ...]:
    """Sort key that reads numbers as numbers: ``A2`` before ``A10``, ``BOX-9`` before ``BOX-10``."""
    parts = _NUMBER_RUNS.split(text or "")
    return tuple((0, int(p)) if p.isdigit() else (1, p.upper()) for p in parts if p)


def place_key(place: Place | None) -> tuple[Any, ...]:
    """Walking order through the freezers: by each container down the tree, then by position (natural order);
    specimens that are stored nowhere come last."""
    if place is None:
        return (1,)
    return (0, tuple(natural_key(shelf.code) for shelf in place.chain), natural_key(place.position))


def container_chains(session: Session, container_ids: Iterable[int]) -> dict[int, tuple[Shelf, ...]]:
    """For each container id, the containers from its root down to it: one query per level of the tree."""
    known: dict[int, tuple[str, str, int | None]] = {}
    frontier = {int(i) for i in container_ids}
    while frontier:
        rows = session.execute(
            select(_CONTAINER.id, _CONTAINER.code, _CONTAINER.kind, _CONTAINER.parent_id).where(
                _CONTAINER.id.in_(sorted(frontier))
            )
        ).all()
        for container_id, code, kind, parent_id in rows:
            known[container_id] = (code, kind, parent_id)
        frontier = {parent for _, _, _, parent in rows if parent is not None and parent not in known}

    def chain(container_id: int) -> tuple[Shelf, ...]:
        out: list[Shelf] = []
        seen: set[int] = set()
        current: int | None = container_id
        while current is not None and current in known and current not in seen:
            seen.add(current)
            code, kind, parent = known[current]
            out.append(Shelf(code, kind))
            current = parent
        return tuple(reversed(out))

    return {container_id: chain(container_id) for container_id in known}


def places(session: Session, codes: Collection[str]) -> dict[str, Place]:
    """Where each of these specimens is stored; specimens stored nowhere are left out."""
    if not codes:
        return {}
    rows = session.execute(
        select(_SPECIMEN.code, _LOCATION.container_id, _LOCATION.position)
        .join(_LOCATION_TABLE, _LOCATION.specimen_id == _SPECIMEN.id)
        .where(_SPECIMEN.code.in_(sorted(set(codes))))
    ).all()
    chains = container_chains(session, {container_id for _, container_id, _ in rows})
    return {code: Place(chains[container_id], position) for code, container_id, position in rows}


def subtree_ids(session: Session, container: Container) -> list[int]:
    """The container and every container inside it, at any depth (one query per level)."""
    found = [int(container.id)]  # type: ignore[arg-type]  # a container read from the database has an id
    frontier = list(found)
    while frontier:
        frontier = [int(i) for i in session.execute(
            select(_CONTAINER.id).where(_CONTAINER.parent_id.in_(frontier))
        ).scalars()]
        found.extend(frontier)
    return found


# --- the specimen list ----------------------------------------------------------------------------------------


def _values(field: str, value: str | Sequence[str] | None, vocabulary: type | None = None) -> list[str]:
    """A filter's values: one, several or none (None or empty means "any")."""
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    values = [v.strip() for v in values if v and v.strip()]
    if vocabulary is not None:
        known = {member.value for member in vocabulary}  # type: ignore[attr-defined]  # a StrEnum class
        for v in values:
            if v not in known:
                raise invalid(field, v, f"choose one of {', '.join(sorted(known))}")
    return values


def _moment(field: str, value: date | datetime | None, *, end: bool) -> datetime | None:
    """A datetime bound of the collection range: a date is a whole day in the lab's time zone (as the ``end``
    bound, the first moment after it); a datetime must carry its zone and is taken as it is."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise invalid(field, value.isoformat(), "give a time zone (or a date)")
        return value
    day = value + timedelta(days=1) if end else value
    return datetime.combine(day, time(0), tzinfo=get_settings().zone)


def _list_statement() -> Any:
    """The one SELECT behind the specimen list: a specimen with its donor, case, sites and place."""
    return (
        select(
            _SPECIMEN.code.label("code"),
            _DONOR.code.label("donor"),
            _AUTOPSY.case_code.label("case"),
            _SAMPLING_SITE.site_code.label("site"),
            _ANATOMICAL_SITE["label"].label("site_label"),
            _SAMPLING_SITE.code.label("sampling_site"),
            _SPECIMEN.storage_format,
            _SPECIMEN.material_type,
            _SPECIMEN.quantity_remaining,
            _SPECIMEN.quantity,
            _SPECIMEN.unit,
            _SPECIMEN.status,
            _LOCATION.container_id,
            _LOCATION.position,
            _SPECIMEN.collected_at,
        )
        .select_from(_SPECIMEN_TABLE)
        .join(_DONOR_TABLE, _DONOR.id == _SPECIMEN.donor_id)
        .join(_SAMPLING_SITE_TABLE, _SAMPLING_SITE.id == _SPECIMEN.sampling_site_id)
        .join(_ANATOMICAL_SITE_TABLE, _ANATOMICAL_SITE.code == _SAMPLING_SITE.site_code, isouter=True)
        .join(_AUTOPSY_TABLE, _AUTOPSY.donor_id == _SPECIMEN.donor_id, isouter=True)
        .join(_LOCATION_TABLE, _LOCATION.specimen_id == _SPECIMEN.id, isouter=True)
        .order_by(_SPECIMEN.code)
    )


def _finish(session: Session, statement: Any) -> list[dict[str, Any]]:
    """Run the list statement; each row gets its location label and box (the tree read once per level)."""
    rows = [dict(row) for row in session.execute(statement).mappings()]
    chains = container_chains(session, {r["container_id"] for r in rows if r["container_id"] is not None})
    for row in rows:
        container_id = row.pop("container_id")
        place = Place(chains[container_id], row["position"]) if container_id is not None else None
        row["location"] = place.label if place else None
        row["box"] = place.box if place else None
    return [{column: row[column] for column in LIST_COLUMNS} for row in rows]


def specimen_list(
    session: Session,
    *,
    donor: str | Sequence[str] | None = None,
    case: str | Sequence[str] | None = None,
    site: str | Sequence[str] | None = None,
    storage_format: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
    box: str | None = None,
    plan: str | None = None,
    collected_from: date | datetime | None = None,
    collected_to: date | datetime | None = None,
    limit: int | None = DEFAULT_LIMIT,
    after: str | None = None,
    exclude_donors: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Specimens matching every filter given, by code, at most ``limit`` (None: all) rows of :data:`LIST_COLUMNS`.

    ``donor``, ``case``, ``site`` (anatomical site code), ``storage_format`` and ``status`` take one value or
    several (any of them matches). ``box`` is any container: what sits in it or anywhere below it (a freezer
    gives everything in its racks and boxes). ``plan`` keeps the specimens included in that analysis plan. The
    collection range is inclusive; a date means that whole day in the lab's time zone. An unknown box or plan
    is an error naming it (it is picked from a list, so a miss is a mistake), an unknown donor simply matches
    nothing. ``after`` starts the list after that code (a keyset page: the REST API's cursor, read through the
    code's unique index, however deep the page); ``exclude_donors`` leaves those donors' specimens out (the donors
    a user is never shown, :func:`biobank.queries.core.hidden_donors`).
    """
    if limit is not None and limit < 1:
        raise invalid("limit", limit, "must be at least 1")
    statement = _list_statement()
    for column, values in (
        (_DONOR.code, _values("donor", donor)),
        (_AUTOPSY.case_code, _values("case", case)),
        (_SAMPLING_SITE.site_code, _values("site", site)),
        (_SPECIMEN.storage_format, _values("storage_format", storage_format, StorageFormat)),
        (_SPECIMEN.status, _values("status", status, SpecimenStatus)),
    ):
        if values:
            statement = statement.where(column.in_(values))
    if box:
        statement = statement.where(_LOCATION.container_id.in_(subtree_ids(session, get_container(session, box))))
    if plan:
        plan_id = session.execute(select(_PLAN.id).where(_PLAN.code == plan)).scalar()
        if plan_id is None:
            raise NotFoundError(f"analysis plan {plan!r} not found", field="plan", value=plan)
        statement = statement.where(
            _SPECIMEN.id.in_(
                select(_PLAN_SPECIMEN.specimen_id).where(
                    _PLAN_SPECIMEN.plan_id == plan_id, _PLAN_SPECIMEN.included.is_(True)
                )
            )
        )
    start = _moment("collected_from", collected_from, end=False)
    stop = _moment("collected_to", collected_to, end=True)
    exclusive = not isinstance(collected_to, datetime)  # a date ends where the next day starts
    if start is not None and stop is not None and (stop <= start if exclusive else stop < start):
        raise invalid("collected_to", collected_to, "is before the start of the range")
    if start is not None:
        statement = statement.where(_SPECIMEN.collected_at >= start)
    if stop is not None:
        statement = statement.where(_SPECIMEN.collected_at < stop if exclusive else _SPECIMEN.collected_at <= stop)
    if after is not None:
        statement = statement.where(_SPECIMEN.code > after)
    if exclude_donors:
        statement = statement.where(_DONOR.code.not_in(sorted(exclude_donors)))
    if limit is not None:
        statement = statement.limit(limit)
    return _finish(session, statement)


def specimens_by_code(session: Session, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The specimen list's rows of these specimens, in the order given (duplicates once); an unknown code is an
    error naming it."""
    wanted = list(dict.fromkeys(codes))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 5000):  # bound the IN list
        chunk = wanted[start : start + 5000]
        for row in _finish(session, _list_statement().where(_SPECIMEN.code.in_(chunk))):
            found[row["code"]] = row
    missing = [code for code in wanted if code not in found]
    if missing:
        raise NotFoundError(f"specimen {missing[0]!r} not found", field="code", value=missing[0])
    return {code: found[code] for code in wanted}


def plan_specimen_codes(session: Session, plan_code: str) -> list[tuple[str, str]]:
    """The specimens included in an analysis plan as (code, role), by code."""
    plan_id = session.execute(select(_PLAN.id).where(_PLAN.code == plan_code)).scalar()
    if plan_id is None:
        raise NotFoundError(f"analysis plan {plan_code!r} not found", field="plan", value=plan_code)
    rows = session.execute(
        select(_SPECIMEN.code, _PLAN_SPECIMEN.role)
        .join(_PLAN_SPECIMEN_TABLE, _PLAN_SPECIMEN.specimen_id == _SPECIMEN.id)
        .where(_PLAN_SPECIMEN.plan_id == plan_id, _PLAN_SPECIMEN.included.is_(True))
        .order_by(_SPECIMEN.code)
    ).all()
    return [(code, role) for code, role in rows]


def filter_choices(session: Session) -> dict[str, list[str]]:
    """What the specimen list's filters offer: donors, cases, anatomical sites in use, containers that hold
    specimens or containers, and plans (one small query each)."""

    def distinct(column: Any) -> list[str]:
        return sorted({v for v in session.execute(select(column).distinct()).scalars() if v}, key=natural_key)

    return {
        "donor": distinct(_DONOR.code),
        "case": distinct(_AUTOPSY.case_code),
        "site": sorted({v for v in session.execute(
            select(_SAMPLING_SITE.site_code)
            .join(_SPECIMEN_TABLE, _SPECIMEN.sampling_site_id == _SAMPLING_SITE.id)
            .distinct()
        ).scalars() if v}),
        "box": distinct(_CONTAINER.code),
        "plan": distinct(_PLAN.code),
    }
