"""Pick lists: the specimens of a distribution order, an analysis plan or a selection, in the order a technician
walks the freezers (unit, rack, box, then position in natural order: A2 before A10), with a box to tick for each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from biobank.domain.errors import invalid
from biobank.domain.vocab import SpecimenStatus
from biobank.models.base import fetch_one
from biobank.models.plans import AnalysisPlan
from biobank.printables.document import Checkbox, build, grid_table, quantity, title_block, usable_width
from biobank.queries import distribution as order_reads
from biobank.queries.specimens import Place, place_key, places, plan_specimen_codes, specimens_by_code

#: What the note column says for a specimen that is not simply waiting in its position.
STATUS_NOTES = {
    SpecimenStatus.in_use.value: "checked out",
    SpecimenStatus.depleted.value: "depleted",
    SpecimenStatus.distributed.value: "distributed",
    SpecimenStatus.disposed.value: "disposed",
}


@dataclass(frozen=True)
class PickRow:
    """One specimen to fetch: where it is, what it is, how much to take."""

    code: str
    donor: str
    storage_format: str
    quantity: float | None
    unit: str
    status: str
    place: Place | None
    note: str = ""

    @property
    def location(self) -> str:
        return self.place.label if self.place else "not in storage"


@dataclass(frozen=True)
class PickList:
    title: str
    lines: tuple[str, ...]
    rows: tuple[PickRow, ...]
    quantity_heading: str = "Left"


def _rows(session: Session, codes: Sequence[str], *, quantities: dict[str, float] | None = None,
          notes: dict[str, str] | None = None) -> tuple[PickRow, ...]:
    found = specimens_by_code(session, codes)
    where = places(session, list(found))
    rows = []
    for code, row in found.items():
        note = "; ".join(n for n in ((notes or {}).get(code, ""), STATUS_NOTES.get(row["status"], "")) if n)
        rows.append(PickRow(
            code=code,
            donor=row["donor"],
            storage_format=row["storage_format"],
            quantity=(quantities or {}).get(code, row["quantity_remaining"]),
            unit=row["unit"],
            status=row["status"],
            place=where.get(code),
            note=note,
        ))
    return tuple(sorted(rows, key=lambda r: (place_key(r.place), r.code)))


def pick_list(
    session: Session, *, order: str | None = None, plan: str | None = None, codes: Sequence[str] | None = None
) -> PickList:
    """The pick list of a distribution order (the quantity each item takes), of an analysis plan (with each
    specimen's role) or of the given specimen codes: exactly one of the three."""
    if sum((order is not None, plan is not None, bool(codes))) != 1:
        raise invalid("source", None, "give an order, a plan or specimen codes (exactly one)")
    if order is not None:
        detail = order_reads.order_detail(session, order)
        items = detail["items"]
        return PickList(
            title=f"Pick list: order {detail['code']}",
            lines=(
                f"{detail['study']} for {detail['recipient']} · use {detail['use']} · status {detail['status']}",
                f"{len(items)} item(s); take the quantity shown from each.",
            ),
            rows=_rows(session, [i["specimen"] for i in items],
                       quantities={i["specimen"]: i["quantity"] for i in items}),
            quantity_heading="Take",
        )
    if plan is not None:
        record = fetch_one(session, select(AnalysisPlan).where(AnalysisPlan.code == plan), what="analysis plan",
                           field="plan", value=plan)
        roles = dict(plan_specimen_codes(session, plan))
        return PickList(
            title=f"Pick list: plan {record.code}",
            lines=(f"{record.name} · {record.assay} · status {record.status}", f"{len(roles)} specimen(s)."),
            rows=_rows(session, list(roles), notes={c: r.replace("_", " ") for c, r in roles.items()}),
        )
    wanted = list(dict.fromkeys(codes or []))
    return PickList(
        title="Pick list: selected specimens",
        lines=(f"{len(wanted)} specimen(s).",),
        rows=_rows(session, wanted),
    )


#: Column widths in mm: tick, #, unit, rack, box, position, specimen, donor, format, quantity, note (180 mm).
WIDTHS_MM = (7.0, 7.0, 17.0, 14.0, 20.0, 10.0, 36.0, 17.0, 19.0, 15.0, 18.0)


def render_pick_list(picks: PickList, *, printed_at: datetime | None = None, paper: str | None = None) -> bytes:
    header = ["", "#", "Freezer", "Rack", "Box", "Pos.", "Specimen", "Donor", "Format", picks.quantity_heading, "Note"]
    scale = min(1.0, usable_width(paper) / (sum(WIDTHS_MM) * 72 / 25.4))
    rows = [
        [
            Checkbox(),
            str(n),
            r.place.unit if r.place else "",
            r.place.rack if r.place else "",
            r.place.box if r.place else "not in storage",
            r.place.position if r.place else "",
            r.code,
            r.donor,
            r.storage_format.replace("_", " "),
            quantity(r.quantity, r.unit),
            r.note,
        ]
        for n, r in enumerate(picks.rows, start=1)
    ]
    story = [
        *title_block(picks.title, picks.lines),
        grid_table(header, rows, [w * scale for w in WIDTHS_MM]),
    ]
    return build(story, title=picks.title, kind=picks.title, printed_at=printed_at, paper=paper)


def pick_list_pdf(
    session: Session,
    *,
    order: str | None = None,
    plan: str | None = None,
    codes: Sequence[str] | None = None,
    printed_at: datetime | None = None,
) -> bytes:
    """The PDF of :func:`pick_list` on the lab's paper."""
    return render_pick_list(pick_list(session, order=order, plan=plan, codes=codes), printed_at=printed_at)
