"""Shipment manifests: what goes in the box for a distribution order, under which consent, signed by whoever packs,
checks and receives it. The recipient keeps one copy, the biobank the other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reportlab.platypus import Flowable, KeepTogether, Spacer, Table, TableStyle
from sqlmodel import Session

from biobank.domain.storage.kinds import TEMPERATURE_LABEL, TemperatureClass
from biobank.domain.storage.orders import OrderStatus
from biobank.printables.document import (
    BODY,
    CELL,
    CELL_BOLD,
    HEADING,
    PT_PER_MM,
    Checkbox,
    build,
    facts,
    grid_table,
    local_time,
    para,
    quantity,
    title_block,
    usable_width,
)
from biobank.queries import distribution as order_reads

#: Who signs a manifest, in the order the box travels.
SIGNATURES = ("Packed by (biobank)", "Checked by (biobank)", "Received by (recipient)")


def consent_note(detail: dict[str, Any]) -> str:
    """What the consent checks guarantee for this order's use (DOMAIN.md §2, §5)."""
    scopes = ", ".join(s.replace("_", " ") for s in detail["consent_needed"])
    return (
        f"This use needs each donor's consent to: {scopes}. The biobank checks it for every item when the item "
        "is added to the order, when the order is approved and again at shipping; material of a donor who "
        "withdraws consent is not shipped. Donor codes are pseudonyms: the recipient receives no identifying "
        "information and must not try to re-identify donors. Use the material only for the purpose stated above."
    )


def _temperature(value: str | None) -> str:
    if not value:
        return ""
    try:
        return f"{value} ({TEMPERATURE_LABEL[TemperatureClass(value)]})"
    except ValueError:
        return value


def _signature_block(width: float) -> Table:
    line = "_" * 28
    data = [[para("", CELL_BOLD), para("Name", CELL_BOLD), para("Signature", CELL_BOLD), para("Date", CELL_BOLD)]]
    data += [[para(who, CELL_BOLD), para(line), para(line), para("_" * 14)] for who in SIGNATURES]
    first = 40 * PT_PER_MM
    rest = (width - first) / 3
    table = Table(data, colWidths=[first, rest, rest, rest * 0.8], hAlign="LEFT")
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
        ("TOPPADDING", (0, 1), (-1, -1), 9 * PT_PER_MM / 2),
        ("LEFTPADDING", (0, 0), (-1, -1), 0),
    ]))
    return table


def render_manifest(detail: dict[str, Any], *, printed_at: datetime | None = None, paper: str | None = None) -> bytes:
    """The manifest PDF of an :func:`~biobank.queries.distribution.order_detail`."""
    width = usable_width(paper)
    title = f"Shipment manifest: order {detail['code']}"
    lines = []
    if detail["status"] in (OrderStatus.draft, OrderStatus.cancelled):
        lines.append(f"{detail['status'].upper()}: this order is not approved for shipment.")
    items = detail["items"]
    story: list[Flowable] = [
        *title_block(title, lines),
        facts(
            [
                ("Order", detail["code"]),
                ("Study", detail["study"]),
                ("Recipient", detail["recipient"]),
                ("Purpose", detail["purpose"] or "(not stated)"),
                ("Use", detail["use"].replace("_", " ")),
                ("Status", detail["status"]),
                ("Approved", " by ".join(p for p in (local_time(detail["approved_at"]), detail["approved_by"]) if p)),
                ("Shipped", " by ".join(p for p in (local_time(detail["shipped_at"]), detail["shipped_by"]) if p)),
                ("Temperature", _temperature(detail["shipping_temperature"])),
                ("Tracking", detail["tracking_ref"]),
            ],
            width,
        ),
        para(f"Items ({len(items)})", HEADING),
        grid_table(
            ["#", "Specimen", "Donor", "Format", "Quantity", "Packed", "Received"],
            [
                [str(n), item["specimen"], item["donor"], item["storage_format"].replace("_", " "),
                 quantity(item["quantity"], item["unit"]), Checkbox(), Checkbox()]
                for n, item in enumerate(items, start=1)
            ],
            [9, 56, 26, 30, 27, 16, 16],
        ),
        para(f"{len(items)} item(s) in total.", CELL),
        para("Consent", HEADING),
        para(consent_note(detail), BODY),
        Spacer(1, 4 * PT_PER_MM),
        KeepTogether([para("Signatures", HEADING), _signature_block(width)]),
    ]
    return build(story, title=title, kind=title, printed_at=printed_at, paper=paper)


def manifest_pdf(session: Session, order_code: str, *, printed_at: datetime | None = None) -> bytes:
    """The shipment manifest of a distribution order on the lab's paper."""
    return render_manifest(order_reads.order_detail(session, order_code), printed_at=printed_at)
