"""Storage: the container tree (sites, rooms, freezers, racks, boxes, bags) and the placements of specimens in it.
Placements come last in a full load, so every specimen exists before it is placed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from biobank.db.bulk import insert_rows
from biobank.domain.codes import require_safe
from biobank.domain.errors import invalid
from biobank.domain.storage import compat
from biobank.domain.storage.coords import CoordinateError
from biobank.domain.storage.kinds import CONTAINER_KINDS, ContainerKind, grid_of, may_hold
from biobank.domain.storage.kinds import spec as storage_kind
from biobank.domain.vocab import CustodyKind, SpecimenStatus
from biobank.imports.columns import datetime_col, text_col, vocab_col
from biobank.imports.kinds._shared import (
    custody_audited,
    each,
    existing_by,
    known,
    link_pending,
    template_rows,
)
from biobank.imports.spec import Kind, Resolver, Staged
from biobank.models import Container, CustodyEvent, Specimen, SpecimenLocation, User
from biobank.models.base import table_of, utcnow
from biobank.services.checks import check_time
from biobank.services.inputs import ContainerCreate
from biobank.services.storage import STORABLE

# ------------------------------------------------------------------------------------------------------ containers


class ContainerInfo(NamedTuple):
    id: int | None  # None while the container is only in this file
    code: str
    kind: str
    parent_code: str | None
    temperature_class: str | None
    grid_rows: int | None
    grid_cols: int | None


def containers(res: Resolver) -> dict[str, ContainerInfo]:
    """Every container by code (the storage tree is small: one query per import), plus those of this file."""
    cached = res.state.get("containers")
    if cached is None:
        parent = aliased(Container)
        rows = res.session.execute(
            select(Container.id, Container.code, Container.kind, parent.code, Container.temperature_class,  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
                   Container.grid_rows, Container.grid_cols)
            .outerjoin(parent, parent.id == Container.parent_id)
        )
        cached = {r[1]: ContainerInfo(*r) for r in rows}
        res.state["containers"] = cached
    return cached


def temperature_in(tree: dict[str, ContainerInfo], code: str) -> str | None:
    """The MIABIS class a container sits at: its own or the nearest ancestor's (as ``storage.temperature_of_container``)."""
    seen: set[str] = set()
    node: ContainerInfo | None = tree.get(code)
    while node is not None and node.code not in seen:
        if node.temperature_class is not None:
            return node.temperature_class
        seen.add(node.code)
        node = tree.get(node.parent_code) if node.parent_code else None
    return None


def path_in(tree: dict[str, ContainerInfo], code: str) -> str:
    """``UH/PATH-B12/FRZ-01/R1/BOX-001`` (as ``storage.path_of``)."""
    parts: list[str] = []
    node: ContainerInfo | None = tree.get(code)
    while node is not None and node.code not in parts:
        parts.insert(0, node.code)
        node = tree.get(node.parent_code) if node.parent_code else None
    return "/".join(parts)


class Containers(Kind):
    name = "containers"
    noun = "container"
    title = "Storage containers (the freezer layout)"
    help = ("One row per container: site, room, freezer or tank, rack or shelf, box, bag. A container names its "
            "parent (which may be an earlier row of the same file); its kind decides its grid, its temperature and "
            "what it may hold, as adding a container does. A container already stored is moved, not imported again.")
    table = table_of(Container)
    order = 80
    key = ("code",)
    identity = frozenset({"kind", "parent_id"})
    self_referencing = True
    columns = (
        text_col("code", "Unique container code, e.g. FRZ-01 or BOX80-001", required=True, model=ContainerCreate),
        vocab_col("kind", ContainerKind, "Kind of container", required=True),
        text_col("parent_code", "Code of the container it stands in (empty only for a site)", model=ContainerCreate,
                 targets=()),
        text_col("name", "Name shown in listings, e.g. '-80 °C upright 1'", model=ContainerCreate),
        text_col("note", "Note", model=ContainerCreate),
    )

    def check(self, row: Staged) -> None:
        v = row.values
        require_safe("code", v["code"])
        kind_spec = storage_kind(v["kind"])
        parent = v.get("parent_code")
        if parent is None and not kind_spec.root:
            roots = ", ".join(k.value for k, s in CONTAINER_KINDS.items() if s.root)
            raise invalid("parent_code", None, f"a {v['kind']} goes inside another container (only {roots} stand alone)")
        if parent is not None and kind_spec.root:
            raise invalid("kind", v["kind"], f"a {v['kind']} stands at the top of the tree; it cannot go inside {parent}")
        if parent == v["code"]:
            raise invalid("parent_code", parent, "a container cannot stand inside itself")

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        tree = containers(res)

        def build(row: Staged) -> None:
            v = row.values
            kind_spec = storage_kind(v["kind"])
            parent_code = v.get("parent_code")
            pending: dict[str, Any] = {}
            parent: ContainerInfo | None = None
            if parent_code is not None:
                parent = tree.get(parent_code)
                if parent is None:
                    raise row.fail("parent_code", f"container {parent_code!r} not found in the database or in an "
                                   "earlier row of this file", expected="an existing container code")
                if not may_hold(parent.kind, v["kind"]):
                    allowed = ", ".join(sorted(k.value for k in storage_kind(parent.kind).holds)) or "no containers"
                    raise row.fail("kind", f"a {parent.kind} ({parent.code}) holds {allowed}, not a {v['kind']}",
                                   expected=allowed)
                if parent.id is None:
                    pending["parent_id"] = parent_code
            row.record = {
                "code": v["code"],
                "kind": v["kind"],
                "name": v.get("name"),
                "parent_id": parent.id if parent is not None else None,
                "temperature_class": kind_spec.temperature.value if kind_spec.temperature else None,
                "grid_rows": kind_spec.grid.rows if kind_spec.grid else None,
                "grid_cols": kind_spec.grid.cols if kind_spec.grid else None,
                "note": v.get("note"),
            }
            row.pending = pending
            known = tree.get(v["code"])
            tree[v["code"]] = ContainerInfo(
                known.id if known is not None else None, v["code"], v["kind"], parent_code,
                row.record["temperature_class"], row.record["grid_rows"], row.record["grid_cols"],
            ) if known is None else known

        each(rows, build)
        existing_by(res, self, rows, ("code",))
        link_pending(rows, "parent_id", tree, lambda r: r.values["parent_code"])

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        parent = aliased(Container)
        statement = select(Container, parent.code).outerjoin(parent, parent.id == Container.parent_id)  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
        yield from template_rows(self, session, statement, "parent_code")


# ------------------------------------------------------------------------------------------------------ placements


class StoredInfo(NamedTuple):
    id: int
    code: str
    status: str
    storage_format: str
    material_type: str


#: Statuses a placed specimen may have: storable ones, and in use (a checked-out specimen keeps its position).
PLACEABLE = frozenset(STORABLE | {SpecimenStatus.in_use.value})


class Placements(Kind):
    name = "placements"
    noun = "placement of specimen"
    title = "Storage placements"
    help = ("One row per stored specimen: its code, the box, bag or drawer, and the position (empty for containers "
            "without a grid). The same rules as storing a specimen: one position holds one specimen, only a box, "
            "bag, bin or drawer holds specimens, and the format must suit the temperature. Each placement is a "
            "'stored' custody event. Import containers first; a stored specimen is moved, not imported again.")
    table = table_of(SpecimenLocation)
    order = 99  # after every kind that makes specimens (passage_specimens: 97)
    key = ("specimen_code",)
    identity = frozenset({"specimen_id", "container_id", "position"})
    columns = (
        # the specimen code and position are the lengths of their columns (no input model takes them)
        text_col("specimen_code", "Code of the specimen", required=True, max_length=64, targets=()),
        text_col("container_code", "Code of the box, bag, bin or drawer", required=True, model=ContainerCreate,
                 field="code", targets=()),
        text_col("position", "Position such as A1 or 17 (empty for a bag or bin)", max_length=8, targets=()),
        datetime_col("placed_at", "When it was put there (empty: now)"),
    )

    def check(self, row: Staged) -> None:
        check_time("placed_at", row.values.get("placed_at"))  # as storing does: not in the future

    def resolve(self, res: Resolver, rows: list[Staged]) -> None:
        session = res.session
        tree = containers(res)
        taken: dict[tuple[int, str], str] = res.state.setdefault("placements_taken", {})
        now = res.state.setdefault("placements_now", utcnow())

        def fetch(batch: list[Any]) -> dict[str, StoredInfo]:
            statement = select(Specimen.id, Specimen.code, Specimen.status, Specimen.storage_format,  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
                               Specimen.material_type).where(Specimen.code.in_(batch))  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
            return {r[1]: StoredInfo(*r) for r in session.execute(statement)}

        found = res.lookup("specimen_stored", {r.values["specimen_code"] for r in rows}, fetch)
        box_ids = {tree[r.values["container_code"]].id for r in rows if r.values["container_code"] in tree}
        box_ids.discard(None)
        if box_ids:
            location = table_of(SpecimenLocation)
            specimen = table_of(Specimen)
            statement = (
                select(location.c.container_id, location.c.position, specimen.c.code)
                .join(specimen, specimen.c.id == location.c.specimen_id)
                .where(location.c.container_id.in_(box_ids), location.c.position.is_not(None))
            )
            for container_id, position, code in session.execute(statement):
                taken.setdefault((container_id, position), code)

        def build(row: Staged) -> None:
            v = row.values
            stored = known(row, found, "specimen_code", "specimen")
            box = tree.get(v["container_code"])
            if box is None or box.id is None:
                raise row.fail("container_code", f"container {v['container_code']!r} not found (import containers "
                               "first)", expected="an existing box, bag, bin or drawer")
            if not storage_kind(box.kind).holds_specimens:
                raise row.fail("container_code", f"a {box.kind} holds containers, not specimens",
                               expected="a box, bag, bin or drawer")
            if stored.status not in PLACEABLE:
                raise row.fail("specimen_code", f"specimen is {stored.status}; only available, reserved or in-use "
                               "material has a place in storage", expected="a specimen in the biobank")
            verdict = compat.check(stored.storage_format, stored.material_type, temperature_in(tree, box.code))
            if not verdict.allowed:
                raise row.fail("container_code", f"{stored.code}: {verdict.reason}",
                               expected="a container at a suitable temperature")
            position = v.get("position")
            box_grid = grid_of(box.kind, box.grid_rows, box.grid_cols)
            if box_grid is None:
                if position is not None:
                    raise row.fail("position", f"{box.code} is a {box.kind} without positions",
                                   expected="empty for a container without a grid")
            else:
                if position is None:
                    raise row.fail("position", f"{box.code} is a {box.kind}: give the position",
                                   expected=f"a position of the {box_grid.describe()} grid")
                try:
                    position = box_grid.normalise(position)
                except CoordinateError as exc:
                    raise row.fail("position", f"{box.code}: {exc}",
                                   expected=f"a position of the {box_grid.describe()} grid") from None
                holder = taken.get((box.id, position))
                if holder is not None and holder != stored.code:
                    raise row.fail("position", f"box {box.code} position {position}: already holds {holder} "
                                   "(one position, one specimen)", expected="a free position")
                taken[(box.id, position)] = stored.code
            row.record = {
                "specimen_id": stored.id,
                "container_id": box.id,
                "position": position,
                "placed_at": v.get("placed_at") or now,
            }

        each(rows, build)
        existing_by(res, self, rows, ("specimen_id",))
        for row in rows:
            if row.existing is not None and row.record is not None and row.values.get("placed_at") is None:
                row.record["placed_at"] = row.existing["placed_at"]  # an empty cell does not restamp a placement

    def after_insert(self, session: Session, rows: list[tuple[int, dict[str, Any]]], actor: User | None) -> None:
        """As storing does: a 'stored' custody event per placement, to the container's path and position."""
        parent = aliased(Container)
        tree: dict[str, ContainerInfo] = {}
        codes: dict[int, str] = {}
        for r in session.execute(
            select(Container.id, Container.code, Container.kind, parent.code, Container.temperature_class,  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
                   Container.grid_rows, Container.grid_cols)
            .outerjoin(parent, parent.id == Container.parent_id)
        ):
            tree[r[1]] = ContainerInfo(*r)
            codes[r[0]] = r[1]
        paths: dict[int, str] = {}
        events = []
        for _id, rec in rows:
            box_id = rec["container_id"]
            if box_id not in paths:
                paths[box_id] = path_in(tree, codes[box_id])
            where = f"{paths[box_id]}:{rec['position']}" if rec["position"] else paths[box_id]
            events.append({
                "specimen_id": rec["specimen_id"], "kind": CustodyKind.stored.value, "occurred_at": rec["placed_at"],
                "user_id": actor.id if actor is not None else None, "from_location": None, "to_location": where,
                "note": "imported",
            })
        with custody_audited(session):
            insert_rows(session, table_of(CustodyEvent), events)

    def export_rows(self, session: Session) -> Iterator[dict[str, Any]]:
        statement = (
            select(SpecimenLocation, Specimen.code, Container.code)  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
            .join(Specimen, Specimen.id == SpecimenLocation.specimen_id)
            .join(Container, Container.id == SpecimenLocation.container_id)
        )
        yield from template_rows(self, session, statement, "specimen_code", "container_code")
