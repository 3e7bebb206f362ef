"""Storage and distribution commands: ``biobank storage ...`` and ``biobank distribution ...``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from biobank.cli.common import (
    JsonOption,
    UserOption,
    WhenOption,
    acting_user,
    emit,
    emit_json,
    emit_table,
    fail,
    handle_errors,
    read,
    typed_time,
    unit_of_work,
)
from biobank.domain.storage.kinds import CONTAINER_KINDS, TEMPERATURE_LABEL
from biobank.domain.vocab import FORMAT_ABBREVIATION, StorageFormat
from biobank.queries import distribution as order_reads
from biobank.queries import storage as storage_reads
from biobank.services import distribution as orders
from biobank.services import storage

storage_app = typer.Typer(help="Freezers, tanks, boxes and positions; store, move, find, check out and return.",
                          no_args_is_help=True)
distribution_app = typer.Typer(help="Distribution orders: draft, approve (PI), ship and receive (technician), returns.",
                               no_args_is_help=True)



# --- storage ------------------------------------------------------------------------------------------------------


@storage_app.command("kinds")
@handle_errors
def storage_kinds(as_json: JsonOption = False) -> None:
    """The container kinds: grid, temperature class and what each may hold."""
    rows = [
        {
            "kind": s.kind.value,
            "label": s.label,
            "grid": s.grid.describe() if s.grid else "",
            "temperature": s.temperature.value if s.temperature else "",
            "holds": ", ".join(sorted(k.value for k in s.holds)) or ("specimens" if s.holds_specimens else ""),
        }
        for s in CONTAINER_KINDS.values()
    ]
    emit(rows, as_json=as_json)


@storage_app.command("add")
@handle_errors
def storage_add(
    code: Annotated[str, typer.Argument(help="Container code, e.g. FRZ-01 or BOX-0001 (letters, digits, '.', '_', '-').")],
    kind: Annotated[str, typer.Option("--kind", help="site, room, freezer, ln2_tank, rack, box_9x9 ... (see 'storage kinds').")],
    parent: Annotated[str | None, typer.Option("--parent", help="Code of the container it goes into.")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    user: UserOption = None,
) -> None:
    """Add a container to the tree (a site at the top, everything else inside a parent that may hold it)."""
    with unit_of_work() as session:
        container = storage.add_container(session, actor=acting_user(session, user), code=code, kind=kind,
                                          parent_code=parent, name=name)
        where = storage_reads.path_of(session, container)
        temperature = storage_reads.temperature_of_container(session, container)
    typer.echo(f"container {code} added: {where}" + (f" ({temperature})" if temperature else ""))


@storage_app.command("tree")
@handle_errors
def storage_tree(as_json: JsonOption = False) -> None:
    """The container tree with temperature and how full each box is."""
    rows = read(storage_reads.tree)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        typer.echo("(no containers: start with 'biobank storage add SITE --kind site')")
    for row in rows:
        fill = f"  {row['specimens']}/{row['capacity']}" if row["capacity"] else (f"  {row['specimens']} specimens" if row["specimens"] else "")
        temperature = f"  [{row['temperature']}]" if row["temperature"] and row["kind"] in ("freezer", "freezer_minus20", "ln2_tank", "fridge", "rt_cabinet") else ""
        name = f" {row['name']}" if row["name"] else ""
        typer.echo(f"{'  ' * row['depth']}{row['code']} ({row['kind']}){name}{temperature}{fill}")


def _cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "."
    abbreviation = FORMAT_ABBREVIATION.get(StorageFormat(cell["storage_format"]), "??")
    marker = {"in_use": "*", "reserved": "r", "disposed": "x", "depleted": "0"}.get(cell["status"], "")
    return abbreviation + marker


def render_grid(view: dict[str, Any]) -> list[str]:
    """A box as text: rows by letter, columns by number; '.' is free, '*' checked out."""
    if view["rows"] is None:
        return [f"{c['code']}  {c['storage_format']}  {c['status']}" for c in view["cells"]] or ["(empty)"]
    cells = {c["position"]: c for c in view["cells"]}
    if view["scheme"] == "numbered":
        return [f"{p:>3}  {cells[p]['code']}  {cells[p]['storage_format']}  {cells[p]['status']}"
                for p in sorted(cells, key=int)] or ["(empty)"]
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    width = 4
    lines = ["   " + "".join(str(col).rjust(width) for col in range(1, view["cols"] + 1))]
    for r in range(view["rows"]):
        row = [_cell(cells.get(f"{letters[r]}{col}")).rjust(width) for col in range(1, view["cols"] + 1)]
        lines.append(f" {letters[r]} " + "".join(row))
    return lines


@storage_app.command("show")
@handle_errors
def storage_show(box: Annotated[str, typer.Argument(help="Box (or bag, drawer) code.")], as_json: JsonOption = False) -> None:
    """A box drawn as a text grid (format abbreviations: SF snap-frozen, OC OCT, FF FFPE, RL RNAlater, VC viable,
    FZ frozen; '*' checked out, '.' free), then its specimens."""
    view = read(storage_reads.box_view, box)
    if as_json:
        emit_json(view)
        return
    temperature = TEMPERATURE_LABEL.get(view["temperature"], view["temperature"] or "no temperature class")
    fill = f"{view['occupied']}/{view['capacity']}" if view["capacity"] else str(view["occupied"])
    typer.echo(f"{view['path']}  ({view['kind']}, {temperature}, {fill} occupied)")
    if not view["holds_specimens"]:
        typer.echo("(holds containers, not specimens: see 'biobank storage tree')")
        return
    for line in render_grid(view):
        typer.echo(line)
    if view["cells"] and view["rows"] is not None and view["scheme"] != "numbered":
        typer.echo("")
        emit_table(view["cells"], ["position", "code", "storage_format", "status", "donor", "quantity_remaining", "unit"])


@storage_app.command("store")
@handle_errors
def storage_store(
    codes: Annotated[list[str] | None, typer.Argument(help="Specimen codes; consecutive positions in this order.")] = None,
    box: Annotated[list[str] | None, typer.Option("--box", help="Target box; repeat with --region to offer several.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Position of the first specimen, e.g. A1; default the first free run.")] = None,
    region: Annotated[str | None, typer.Option("--region", help="CASE/SITE, e.g. RAP-2024-001/L01-A: store all its pieces.")] = None,
    when: WhenOption = None,
    as_json: JsonOption = False,
    user: UserOption = None,
) -> None:
    """Store specimens in a box, or a whole region's output across the boxes given (each piece by its format)."""
    if not box:
        raise fail("give --box")
    if bool(codes) == bool(region):
        raise fail("give specimen codes or --region CASE/SITE (one of the two)")
    with unit_of_work() as session:
        actor = acting_user(session, user)
        skipped: list[tuple[str, str]] = []
        if region:
            if "/" not in region:
                raise fail(f"--region {region!r}: write it as CASE/SITE, e.g. RAP-2024-001/L01-A")
            if at:
                raise fail("--at applies to specimen codes, not to --region")
            case_code, site_code = region.split("/", 1)
            result = storage.store_region(session, actor=actor, case_code=case_code, site_code=site_code, box_codes=box,
                                          when=typed_time("when", when))
            placements, skipped = result.placements, result.skipped
        else:
            if len(box) > 1:
                raise fail("give one --box for specimen codes")
            placements = storage.store(session, actor=actor, codes=codes or [], box_code=box[0], at=at, when=typed_time("when", when))
        rows = [{"code": p.code, "location": p.location, "warning": p.warning or None} for p in placements]
    if as_json:
        emit_json({"stored": rows, "skipped": [{"code": c, "why": w} for c, w in skipped]})
        return
    emit_table(rows, ["code", "location", "warning"])
    for code, why in skipped:
        typer.echo(f"skipped {code}: {why}")


@storage_app.command("move")
@handle_errors
def storage_move(
    code: Annotated[str, typer.Argument(help="Specimen code, or a container code (a box moves with everything in it).")],
    to: Annotated[str, typer.Option("--to", help="Target box for a specimen; new parent for a container.")],
    at: Annotated[str | None, typer.Option("--at", help="Position in the target box (specimens only).")] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why it moves (specimens only), kept on the custody "
                                                            "record.")] = None,
    when: WhenOption = None,
    user: UserOption = None,
) -> None:
    """Move a specimen to another box or position, or a whole box (rack...) to another freezer or tank."""
    from sqlmodel import select

    from biobank.models import Container

    with unit_of_work() as session:
        actor = acting_user(session, user)
        is_container = session.exec(select(Container.id).where(Container.code == code)).first() is not None
        if is_container:
            if at or note:
                raise fail(f"{'--at' if at else '--note'} applies to specimens; a container moves into a parent")
            container = storage.move_container(session, actor=actor, code=code, parent_code=to, when=typed_time("when", when))
            message = f"container {code} moved: {storage_reads.path_of(session, container)}"
        else:
            placement = storage.move_specimen(session, actor=actor, code=code, box_code=to, at=at,
                                              when=typed_time("when", when), note=note)
            message = f"{code} moved to {placement.location}" + (f" (warning: {placement.warning})" if placement.warning else "")
    typer.echo(message)


@storage_app.command("find")
@handle_errors
def storage_find(code: str, as_json: JsonOption = False) -> None:
    """Where a specimen is (box and position, temperature, whether it is checked out)."""
    emit(read(storage_reads.find, code), as_json=as_json)


@storage_app.command("checkout")
@handle_errors
def storage_checkout(
    code: str,
    purpose: Annotated[str | None, typer.Option(help="What it is taken out for.")] = None,
    when: WhenOption = None,
    user: UserOption = None,
) -> None:
    """Check a specimen out of storage (its position stays reserved until it comes back)."""
    with unit_of_work() as session:
        checkout = storage.check_out(session, actor=acting_user(session, user), code=code, purpose=purpose, when=typed_time("when", when))
        origin = checkout.from_location
    typer.echo(f"{code} checked out from {origin}")


@storage_app.command("return")
@handle_errors
def storage_return(
    code: str,
    kept_frozen: Annotated[bool, typer.Option("--kept-frozen", help="It stayed frozen (dry ice): no freeze-thaw cycle.")] = False,
    note: Annotated[str | None, typer.Option(help="Note for the custody record.")] = None,
    when: WhenOption = None,
    user: UserOption = None,
) -> None:
    """Return a checked-out specimen to its position (frozen material counts a freeze-thaw cycle)."""
    with unit_of_work() as session:
        storage.return_specimen(session, actor=acting_user(session, user), code=code, kept_frozen=kept_frozen,
                                when=typed_time("when", when), note=note)
        data = storage_reads.find(session, code)
        count = storage.get_specimen(session, code).freeze_thaw_count
    typer.echo(f"{code} returned to {data.get('location')} (freeze-thaw count {count})")


@storage_app.command("checkouts")
@handle_errors
def storage_checkouts(as_json: JsonOption = False) -> None:
    """Everything checked out now, oldest first, with hours out."""
    columns = ["code", "checked_out_by", "checked_out_at", "hours_out", "overdue", "from"]
    emit(read(storage_reads.checkouts), as_json=as_json, columns=columns)


@storage_app.command("overdue")
@handle_errors
def storage_overdue(as_json: JsonOption = False) -> None:
    """Check-outs not returned within BIOBANK_CHECKOUT_OVERDUE_HOURS (24 by default)."""
    columns = ["code", "checked_out_by", "checked_out_at", "hours_out", "from", "purpose"]
    emit(read(storage_reads.overdue), as_json=as_json, columns=columns)


# --- distribution -------------------------------------------------------------------------------------------------


def _advance(order: str, user: str | None, step: Callable[..., Any], done: str, **details: Any) -> None:
    """Move an order one step with the service function ``step`` (a ``when`` among ``details`` must carry a time
    zone) and say so: ``order CODE <done>``."""
    with unit_of_work() as session:
        actor = acting_user(session, user)
        if "when" in details:
            details["when"] = typed_time("when", details["when"])
        step(session, actor=actor, order_code=order, **details)
    typer.echo(f"order {order} {done}")


@distribution_app.command("create")
@handle_errors
def distribution_create(
    study: Annotated[str, typer.Option(help="Requesting study.")],
    recipient: Annotated[str, typer.Option(help="Recipient: person and institution.")],
    use: Annotated[str, typer.Option(help="sequencing, model_derivation, external_sharing or research (decides the consent needed).")],
    purpose: Annotated[str | None, typer.Option(help="What the material is for.")] = None,
    code: Annotated[str | None, typer.Option(help="Order code; default DO-<year>-<n>.")] = None,
    user: UserOption = None,
) -> None:
    """Draft a distribution order."""
    with unit_of_work() as session:
        order = orders.create_order(session, actor=acting_user(session, user), study=study, recipient=recipient, use=use,
                                    purpose=purpose, code=code)
        order_code = order.code
    typer.echo(f"order {order_code} drafted")


@distribution_app.command("add")
@handle_errors
def distribution_add(
    order: str,
    specimens: Annotated[list[str], typer.Argument(help="Specimen codes.")],
    quantity: Annotated[float | None, typer.Option(help="Quantity of each (in the specimen's unit); default all that remains.")] = None,
    user: UserOption = None,
) -> None:
    """Add specimens to a draft order (consent and remaining quantity are checked)."""
    with unit_of_work() as session:
        actor = acting_user(session, user)
        for code in specimens:
            orders.add_item(session, actor=actor, order_code=order, specimen_code=code, quantity=quantity)
    typer.echo(f"{len(specimens)} item(s) added to {order}")


@distribution_app.command("approve")
@handle_errors
def distribution_approve(order: str, when: WhenOption = None, user: UserOption = None) -> None:
    """Approve a draft order (PI only)."""
    _advance(order, user, orders.approve, "approved", when=when)


@distribution_app.command("ship")
@handle_errors
def distribution_ship(
    order: str,
    temperature: Annotated[str, typer.Option("--temperature", help="Shipping temperature: RT, 2to10, -18to-35, -60to-85 (dry ice) or LN (dry shipper).")],
    tracking: Annotated[str | None, typer.Option(help="Courier and tracking number.")] = None,
    when: WhenOption = None,
    user: UserOption = None,
) -> None:
    """Ship an approved order (technician): consent is checked again for every item, quantities are taken."""
    _advance(order, user, orders.ship, "shipped", shipping_temperature=temperature, tracking_ref=tracking, when=when)


@distribution_app.command("receive")
@handle_errors
def distribution_receive(order: str, when: WhenOption = None, user: UserOption = None) -> None:
    """Record that the recipient received a shipped order."""
    _advance(order, user, orders.receive, "received", when=when)


@distribution_app.command("return")
@handle_errors
def distribution_return(
    order: str,
    specimen: str,
    quantity: Annotated[float, typer.Option(help="Quantity that came back.")],
    note: Annotated[str | None, typer.Option(help="Note for the custody record.")] = None,
    when: WhenOption = None,
    user: UserOption = None,
) -> None:
    """Record material returned from an order (it is available again; store it with 'storage store')."""
    with unit_of_work() as session:
        orders.return_items(session, actor=acting_user(session, user), order_code=order, specimen_code=specimen,
                            quantity=quantity, note=note, when=typed_time("when", when))
    typer.echo(f"{quantity:g} of {specimen} returned on {order}")


@distribution_app.command("close")
@handle_errors
def distribution_close(order: str, user: UserOption = None) -> None:
    """Close a received order."""
    _advance(order, user, orders.close, "closed")


@distribution_app.command("cancel")
@handle_errors
def distribution_cancel(order: str, user: UserOption = None) -> None:
    """Cancel a draft or approved order (nothing has left yet)."""
    _advance(order, user, orders.cancel, "cancelled")


@distribution_app.command("list")
@handle_errors
def distribution_list(as_json: JsonOption = False) -> None:
    """Every order with its state."""
    columns = ["code", "study", "recipient", "use", "status", "items", "approved_by", "shipped_at"]
    emit(read(order_reads.order_rows), as_json=as_json, columns=columns)


@distribution_app.command("show")
@handle_errors
def distribution_show(order: str, as_json: JsonOption = False) -> None:
    """One order with its items."""
    data = read(order_reads.order_detail, order)
    emit(data, as_json=as_json, tables=[(data["items"], None)])
