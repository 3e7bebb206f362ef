"""Storage: the container tree, placing and moving specimens, check-out and return, finding things.

Every store, move, check-out and return is a custody event (who, when, from, to). One position holds one
specimen: the service checks it for a clear message, and the database's UNIQUE(container_id, position) holds it
when two people race for the same slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from biobank.domain.codes import require_safe
from biobank.domain.errors import ConflictError, NotFoundError, invalid
from biobank.domain.storage import compat
from biobank.domain.storage.coords import CoordinateError, Grid
from biobank.domain.storage.kinds import CONTAINER_KINDS, ContainerKind, may_hold, spec
from biobank.domain.vocab import FROZEN_FORMATS, CustodyKind, SpecimenStatus
from biobank.models import Autopsy, Checkout, Container, SamplingSite, Specimen, SpecimenLocation, User
from biobank.models.audit import act_as, add_as
from biobank.models.base import utcnow
from biobank.queries.storage import (
    grid,
    label,
    location_of,
    open_checkout,
    path_of,
    place_label,
    temperature_of_container,
)
from biobank.services.auth import Action, require
from biobank.services.checks import check_enum, check_time
from biobank.services.custody import record_event
from biobank.services.inputs import ContainerCreate, DisposeRequest, StorageNotes
from biobank.services.lookup import by_code, stored_code, typed_code
from biobank.services.specimens import get_specimen

#: Statuses in which a specimen may be put into storage or moved.
STORABLE = frozenset({SpecimenStatus.available.value, SpecimenStatus.reserved.value})
#: Statuses in which a stored specimen may be checked out.
CHECKOUTABLE = STORABLE


# --- building the tree --------------------------------------------------------------------------------------------


def get_container(session: Session, code: str, *, for_update: bool = False) -> Container:
    """The container with this code, typed in any letter case (container codes may be mixed case)."""
    return by_code(session, Container, Container.code, code, what="container", field="container", for_update=for_update)


def add_container(
    session: Session,
    *,
    actor: User | None,
    code: str,
    kind: str,
    parent_code: str | None = None,
    name: str | None = None,
    note: str | None = None,
) -> Container:
    """Add a container under ``parent_code``; its kind decides its grid, temperature and what may go inside."""
    require(actor, Action.enter)
    ContainerCreate.build(code=code, kind=kind, parent_code=parent_code, name=name, note=note)
    code = code.strip()
    require_safe("code", code)
    check_enum("kind", kind, ContainerKind)
    kind_spec = spec(kind)
    parent: Container | None = None
    if parent_code is None:
        if not kind_spec.root:
            roots = ", ".join(k.value for k, s in CONTAINER_KINDS.items() if s.root)
            raise invalid("parent", None, f"a {kind} must go inside another container (only {roots} stand alone)")
    else:
        parent = get_container(session, parent_code)
        if kind_spec.root:
            raise invalid("kind", kind, f"a {kind} stands at the top of the tree; it cannot go inside {parent.code}")
        _check_holds(parent, kind)
    taken = session.exec(select(Container.code).where(func.upper(Container.code) == code.upper())).first()
    if taken is not None:
        raise ConflictError(f"code={code!r}: a container with this code already exists ({taken}; codes are read in "
                            "any letter case)", field="code", value=code)
    container = Container(
        code=code,
        kind=str(kind),
        name=(name or "").strip() or None,
        parent_id=parent.id if parent else None,
        temperature_class=kind_spec.temperature.value if kind_spec.temperature else None,
        grid_rows=kind_spec.grid.rows if kind_spec.grid else None,
        grid_cols=kind_spec.grid.cols if kind_spec.grid else None,
        note=note,
    )
    return add_as(session, actor, container)


def _check_holds(parent: Container, kind: str) -> None:
    if not may_hold(parent.kind, kind):
        allowed = ", ".join(sorted(k.value for k in spec(parent.kind).holds)) or "no containers"
        raise invalid("kind", kind, f"a {parent.kind} ({parent.code}) holds {allowed}, not a {kind}")


def _subtree(session: Session, root: Container) -> list[Container]:
    """``root`` and everything under it (one query per level)."""
    nodes = [root]
    frontier = [root.id]
    while frontier:
        children = list(session.exec(select(Container).where(Container.parent_id.in_(frontier))))  # type: ignore[union-attr]  # SQLModel types the column as its Python value, not a SQL expression
        nodes.extend(children)
        frontier = [c.id for c in children]
    return nodes


def move_container(
    session: Session, *, actor: User | None, code: str, parent_code: str, when: datetime | None = None
) -> Container:
    """Move a box (or a rack with its boxes) to another parent; every specimen inside gets a 'moved' event."""
    require(actor, Action.enter)
    check_time("when", when)
    container = get_container(session, code, for_update=True)
    code = container.code
    parent = get_container(session, parent_code)
    parent_code = parent.code
    if spec(container.kind).root:
        raise invalid("container", code, f"a {container.kind} stands at the top of the tree and cannot move")
    _check_holds(parent, container.kind)
    subtree = _subtree(session, container)
    if parent.id in {c.id for c in subtree}:
        raise invalid("parent", parent_code, f"cannot move {code} into itself or into a container inside it")
    if parent.id == container.parent_id:
        raise invalid("parent", parent_code, f"{code} is already in {parent_code}")
    # Temperatures after the move: a unit inside the subtree keeps its own; the rest inherit the new parent's.
    new_outer = temperature_of_container(session, parent)
    by_id = {c.id: c for c in subtree}

    def temperature_after(node: Container) -> str | None:
        while True:
            if node.temperature_class is not None:
                return node.temperature_class
            if node.id == container.id or node.parent_id not in by_id:
                return new_outer
            node = by_id[node.parent_id]

    locations = list(
        session.exec(select(SpecimenLocation).where(SpecimenLocation.container_id.in_(list(by_id))))  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
    )
    old_labels = {loc.id: label(session, by_id[loc.container_id], loc.position) for loc in locations}
    moved_specimens = []
    for location in locations:
        specimen = session.get(Specimen, location.specimen_id)
        assert specimen is not None
        check_time("when", when, after=[(f"{specimen.code}'s collection", specimen.collected_at)])
        verdict = compat.check(specimen.storage_format, specimen.material_type, temperature_after(by_id[location.container_id]))
        if not verdict.allowed:
            raise invalid("parent", parent_code, f"{specimen.code} in {code} cannot go there: {verdict.reason}")
        moved_specimens.append((specimen, location))
    act_as(session, actor)
    old_path = path_of(session, container)
    container.parent_id = parent.id
    session.flush()
    at = when or utcnow()
    for specimen, location in moved_specimens:
        node = session.get(Container, location.container_id)
        assert node is not None
        record_event(session, specimen=specimen, kind=CustodyKind.moved, actor=actor, at=at,
                     from_location=old_labels[location.id], to_location=label(session, node, location.position),
                     note=f"container {code} moved from {old_path}")
    session.flush()
    return get_container(session, code)


# --- placing specimens --------------------------------------------------------------------------------------------


@dataclass
class Placement:
    code: str
    container: str
    position: str | None
    location: str
    warning: str = ""


@dataclass
class RegionPlacement:
    placements: list[Placement] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (code, why)


def _occupied(session: Session, container: Container) -> set[str]:
    return {
        p for p in session.exec(
            select(SpecimenLocation.position).where(SpecimenLocation.container_id == container.id)
        ) if p is not None
    }


def _target(session: Session, box_code: str) -> tuple[Container, Grid | None, str | None]:
    """A container that holds specimens, locked so concurrent allocations into it queue instead of colliding."""
    box = get_container(session, box_code, for_update=True)
    if not spec(box.kind).holds_specimens:
        raise invalid("box", box_code, f"a {box.kind} holds containers, not specimens; choose a box, bag or drawer")
    return box, grid(box), temperature_of_container(session, box)


def _positions(box: Container, box_grid: Grid | None, occupied: set[str], count: int, at: str | None) -> list[str | None]:
    if box_grid is None:
        if at is not None:
            raise invalid("at", at, f"{box.code} is a {box.kind} without positions; leave the position out")
        return [None] * count
    if at is not None:
        try:
            run = box_grid.run_from(at, count)
        except CoordinateError as exc:
            raise invalid("at", at, f"{box.code}: {exc}") from None
        taken = [p for p in run if p in occupied]
        if taken:
            raise ConflictError(
                f"box {box.code} position {taken[0]}: already holds a specimen (one position, one specimen)",
                field="position", value=taken[0],
            )
        return list(run)
    run_free = box_grid.first_free_run(occupied, count)
    if run_free is None:
        free = box_grid.size - len(occupied)
        raise ConflictError(
            f"box {box.code}: no {count} consecutive free positions ({free} of {box_grid.size} free)",
            field="box", value=box.code,
        )
    return list(run_free)


def _check_storable(specimen: Specimen, temperature: str | None, box: Container) -> str:
    if specimen.status not in STORABLE:
        raise invalid("code", specimen.code, f"specimen is {specimen.status}; only available or reserved material is stored")
    verdict = compat.check(specimen.storage_format, specimen.material_type, temperature)
    if not verdict.allowed:
        raise invalid("box", box.code, f"{specimen.code}: {verdict.reason}")
    return verdict.warning


def _flush_placement(session: Session, box: Container, positions: Sequence[str | None]) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        # Another session took the slot between our check and our insert: the database's unique rule decided.
        where = ", ".join(p for p in positions if p) or "(no grid)"
        raise ConflictError(
            f"box {box.code} position {where}: already holds a specimen (placed by someone else just now)",
            field="position", value=where,
        ) from exc


def store(
    session: Session,
    *,
    actor: User | None,
    codes: Sequence[str],
    box_code: str,
    at: str | None = None,
    when: datetime | None = None,
) -> list[Placement]:
    """Put specimens into a box: at ``at`` and the positions after it, or the first free consecutive run."""
    require(actor, Action.enter)
    check_time("when", when)
    if not codes:
        raise invalid("codes", [], "name at least one specimen")
    box, box_grid, temperature = _target(session, box_code)
    specimens = [get_specimen(session, code, for_update=True) for code in codes]
    stored = [s.code for s in specimens]
    duplicates = sorted({c for c in stored if stored.count(c) > 1})
    if duplicates:
        raise invalid("codes", duplicates[0], "is named twice")
    warnings = []
    for specimen in specimens:
        check_time("when", when, after=[(f"{specimen.code}'s collection", specimen.collected_at)])
        warnings.append(_check_storable(specimen, temperature, box))
        existing = location_of(session, specimen.id)
        if existing is not None:
            holder = session.get(Container, existing.container_id)
            assert holder is not None
            raise ConflictError(
                f"specimen {specimen.code}: already stored at {label(session, holder, existing.position)}; move it instead",
                field="code", value=specimen.code,
            )
    positions = _positions(box, box_grid, _occupied(session, box), len(specimens), at)
    act_as(session, actor)
    at_time = when or utcnow()
    placements = []
    path = path_of(session, box)  # once per call: walking the tree per specimen was most of a 9-tube store's time
    for specimen, position, warning in zip(specimens, positions, warnings, strict=True):
        session.add(SpecimenLocation(specimen_id=specimen.id, container_id=box.id, position=position, placed_at=at_time))  # type: ignore[arg-type]  # the row was flushed, so its primary key is set
        where = f"{path}:{position}" if position else path  # as label() writes it
        record_event(session, specimen=specimen, kind=CustodyKind.stored, actor=actor, at=at_time, to_location=where)
        placements.append(Placement(specimen.code, box.code, position, where, warning))
    _flush_placement(session, box, positions)
    return placements


def region_specimens(session: Session, case_code: str, site_code: str) -> list[Specimen]:
    """The specimens of one sampling site of a case (primary pieces, aliquots and derivatives), by code."""
    site = session.exec(
        select(SamplingSite).join(Autopsy, Autopsy.id == SamplingSite.autopsy_id)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
        .where(Autopsy.case_code == stored_code(session, Autopsy.case_code, case_code),
               SamplingSite.code == typed_code(site_code).upper())
    ).first()
    if site is None:
        raise NotFoundError(f"sampling site {site_code!r} of case {case_code!r} not found", field="region", value=site_code)
    return list(session.exec(select(Specimen).where(Specimen.sampling_site_id == site.id).order_by(Specimen.code)))


def store_region(
    session: Session,
    *,
    actor: User | None,
    case_code: str,
    site_code: str,
    box_codes: Sequence[str],
    when: datetime | None = None,
) -> RegionPlacement:
    """Store everything a region produced in one action: each piece goes to the first given box that suits its
    format (a preferred temperature first, e.g. viable cells to LN2), consecutive within each box.

    Pieces already stored, used up or fresh are skipped and listed; a piece that fits none of the boxes refuses the
    whole call, so nothing is half-stored.
    """
    require(actor, Action.enter)
    if not box_codes:
        raise invalid("box", [], "name at least one box")
    boxes = [(code, temperature_of_container(session, get_container(session, code))) for code in box_codes]
    result = RegionPlacement()
    plan: dict[str, list[str]] = {}
    for specimen in region_specimens(session, case_code, site_code):
        if location_of(session, specimen.id) is not None:
            result.skipped.append((specimen.code, "already stored"))
            continue
        if specimen.status not in STORABLE:
            result.skipped.append((specimen.code, specimen.status))
            continue
        if specimen.storage_format == "fresh":
            result.skipped.append((specimen.code, "fresh: goes to culture, not storage"))
            continue
        fitting = [(code, t) for code, t in boxes if compat.suitable(specimen.storage_format, specimen.material_type, t)]
        if not fitting:
            raise invalid("box", ", ".join(box_codes), f"{specimen.code} ({specimen.storage_format}) fits none of these boxes")
        preferred = compat.PREFERRED.get(specimen.storage_format)  # type: ignore[call-overload]  # SQLModel types the column as its Python value, not a SQL expression
        best = next((code for code, t in fitting if preferred is not None and t == preferred), fitting[0][0])
        plan.setdefault(best, []).append(specimen.code)
    for box_code, codes in plan.items():
        result.placements.extend(store(session, actor=actor, codes=codes, box_code=box_code, when=when))
    return result


def move_specimen(
    session: Session,
    *,
    actor: User | None,
    code: str,
    box_code: str,
    at: str | None = None,
    when: datetime | None = None,
    note: str | None = None,
) -> Placement:
    """Move one stored specimen to another box or position; ``note`` (why: a freezer failure, a consolidation) is kept
    on the custody event."""
    require(actor, Action.enter)
    check_time("when", when)
    note = (note or "").strip() or None
    StorageNotes.check_fields({"note": note})
    box, box_grid, temperature = _target(session, box_code)
    specimen = get_specimen(session, code, for_update=True)
    code = specimen.code
    check_time("when", when, after=[(f"{code}'s collection", specimen.collected_at)])
    location = location_of(session, specimen.id)
    if location is None:
        raise invalid("code", code, "specimen is not stored anywhere; store it first")
    if open_checkout(session, specimen.id) is not None:
        raise invalid("code", code, "specimen is checked out; return it before moving it")
    warning = _check_storable(specimen, temperature, box)
    occupied = _occupied(session, box)
    if location.container_id == box.id and location.position is not None:
        occupied.discard(location.position)
    (position,) = _positions(box, box_grid, occupied, 1, at)
    old = session.get(Container, location.container_id)
    assert old is not None
    if old.id == box.id and location.position == position:
        raise invalid("at", at, f"{code} is already at {label(session, box, position)}")
    from_label = label(session, old, location.position)
    act_as(session, actor)
    location.container_id = box.id  # type: ignore[assignment]  # the box is stored, so its primary key is set
    location.position = position
    location.placed_at = when or utcnow()
    where = label(session, box, position)
    record_event(session, specimen=specimen, kind=CustodyKind.moved, actor=actor, at=location.placed_at,
                 from_location=from_label, to_location=where, note=note)
    _flush_placement(session, box, [position])
    return Placement(specimen.code, box.code, position, where, warning)


def release_location(session: Session, specimen: Specimen) -> str | None:
    """Free the specimen's position when it leaves the biobank (distribution); returns where it was."""
    location = location_of(session, specimen.id)
    if location is None:
        return None
    where = place_label(session, location)
    session.delete(location)
    return where


def dispose(session: Session, *, actor: User | None, code: str, reason: str, at: datetime | None = None) -> Specimen:
    """Disposal is a status and an event: a specimen is never deleted."""
    require(actor, Action.enter)
    check_time("at", at)
    specimen = get_specimen(session, code, for_update=True)
    code = specimen.code
    check_time("at", at, after=[(f"{code}'s collection", specimen.collected_at)])
    if specimen.status == SpecimenStatus.disposed:
        raise ConflictError(f"specimen {code}: already disposed", field="status", value=specimen.status)
    if specimen.status == SpecimenStatus.distributed:
        raise invalid("code", code, "specimen was distributed; it is no longer here to dispose of")
    if not reason or not reason.strip():
        raise invalid("reason", reason, "say why the specimen is disposed of")
    DisposeRequest.check_fields({"reason": reason.strip()})  # it goes into the custody record's note
    act_as(session, actor)
    mark_disposed(session, specimen, actor=actor, at=at, note=reason.strip())
    session.flush()
    return specimen


def mark_disposed(session: Session, specimen: Specimen, *, actor: User | None, at: datetime | None, note: str) -> None:
    """What a disposal does to a specimen, once the caller has checked who may and why: its position is freed, its
    status becomes disposed and a custody event records where it was and the note. Used by :func:`dispose` and by a
    withdrawal of consent that asks for the material to be destroyed."""
    where = release_location(session, specimen)
    specimen.status = SpecimenStatus.disposed.value
    specimen.version += 1
    record_event(session, specimen=specimen, kind=CustodyKind.disposed, actor=actor, at=at, from_location=where,
                 note=note)


# --- check-out and return -----------------------------------------------------------------------------------------


def check_out(
    session: Session, *, actor: User | None, code: str, purpose: str | None = None, when: datetime | None = None
) -> Checkout:
    """Take a stored specimen out to work on it; its position stays reserved until it is returned."""
    user = require(actor, Action.enter)
    check_time("when", when)
    StorageNotes.check_fields({"purpose": (purpose or "").strip() or None})
    specimen = get_specimen(session, code, for_update=True)
    code = specimen.code
    check_time("when", when, after=[(f"{code}'s collection", specimen.collected_at)])
    location = location_of(session, specimen.id)
    if location is None:
        raise invalid("code", code, "specimen is not stored; only stored material is checked out")
    if open_checkout(session, specimen.id) is not None:
        raise ConflictError(f"specimen {code}: already checked out", field="code", value=code)
    if specimen.status not in CHECKOUTABLE:
        raise invalid("code", code, f"specimen is {specimen.status}; it cannot be checked out")
    where = place_label(session, location)
    at = when or utcnow()
    act_as(session, actor)
    checkout = Checkout(
        specimen_id=specimen.id,  # type: ignore[arg-type]  # the row was flushed, so its primary key is set
        checked_out_at=at,
        checked_out_by_id=user.id,  # type: ignore[arg-type]  # the row was flushed, so its primary key is set
        purpose=(purpose or "").strip() or None,
        from_location=where,
    )
    session.add(checkout)
    specimen.status = SpecimenStatus.in_use.value
    specimen.version += 1
    record_event(session, specimen=specimen, kind=CustodyKind.checked_out, actor=actor, at=at,
                 from_location=where, to_location=f"bench: {user.username}", note=checkout.purpose)
    session.flush()
    return checkout


def return_specimen(
    session: Session,
    *,
    actor: User | None,
    code: str,
    kept_frozen: bool = False,
    when: datetime | None = None,
    note: str | None = None,
) -> Checkout:
    """Put a checked-out specimen back in its position; frozen material counts one more freeze–thaw cycle
    unless it was kept frozen (e.g. on dry ice) the whole time."""
    user = require(actor, Action.enter)
    check_time("when", when)
    note = (note or "").strip() or None
    StorageNotes.check_fields({"note": note})
    specimen = get_specimen(session, code, for_update=True)
    code = specimen.code
    checkout = open_checkout(session, specimen.id)
    if checkout is None:
        raise invalid("code", code, "specimen is not checked out")
    at = when or utcnow()
    check_time("when", at, after=[("the check-out", checkout.checked_out_at)])
    location = location_of(session, specimen.id)
    assert location is not None
    where = place_label(session, location)
    act_as(session, actor)
    checkout.returned_at = at
    checkout.returned_by_id = user.id
    checkout.kept_frozen = kept_frozen
    thawed = specimen.storage_format in FROZEN_FORMATS and not kept_frozen
    if thawed:
        specimen.freeze_thaw_count += 1
    if specimen.status == SpecimenStatus.in_use:
        specimen.status = SpecimenStatus.available.value
    specimen.version += 1
    parts = [p for p in (note, f"freeze-thaw cycle {specimen.freeze_thaw_count}" if thawed else None) if p]
    record_event(session, specimen=specimen, kind=CustodyKind.returned, actor=actor, at=at,
                 from_location=f"bench: {user.username}", to_location=where, note="; ".join(parts) or None)
    session.flush()
    return checkout




