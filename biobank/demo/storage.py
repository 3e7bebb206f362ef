"""The demo cohort's storage: a pathology lab with two -80 °C freezers, a vapour-phase LN2 tank and a room-temperature
cabinet for FFPE blocks and slides; every demo specimen placed by its format, boxes partly full, a few tubes out on
the bench (one of them overdue) and one past distribution, shipped and received. Built through the services."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, select

from biobank.domain.vocab import MaterialType, StorageFormat
from biobank.models import Specimen, User
from biobank.services import distribution, storage

#: Positions filled per box before the next box is opened (the last row stays free for returns).
FILL_PER_BOX = {"box_9x9": 72, "box_10x10": 90, "cassette_drawer": 60, "slide_box": 100}


class _Shelves:
    """Opens boxes on demand under a set of parents, round-robin, and hands out how much room is left."""

    def __init__(self, session: Session, tech: User, prefix: str, kind: str, parents: list[str]) -> None:
        self.session, self.tech, self.prefix, self.kind, self.parents = session, tech, prefix, kind, parents
        self.boxes: list[str] = []
        self.left = 0

    def room(self) -> tuple[str, int]:
        if self.left == 0:
            code = f"{self.prefix}-{len(self.boxes) + 1:03d}"
            parent = self.parents[len(self.boxes) % len(self.parents)]
            storage.add_container(self.session, actor=self.tech, code=code, kind=self.kind, parent_code=parent)
            self.boxes.append(code)
            self.left = FILL_PER_BOX[self.kind]
        return self.boxes[-1], self.left

    def store(self, codes: list[str], when: datetime) -> None:
        while codes:
            box, left = self.room()
            chunk, codes = codes[:left], codes[left:]
            storage.store(self.session, actor=self.tech, codes=chunk, box_code=box, when=when)
            self.left -= len(chunk)


def _build_lab(session: Session, tech: User) -> None:
    add = storage.add_container
    add(session, actor=tech, code="UH", kind="site", name="University Hospital")
    add(session, actor=tech, code="PATH-B12", kind="room", parent_code="UH", name="Pathology biobank, room B12")
    for freezer in ("FRZ-01", "FRZ-02"):
        add(session, actor=tech, code=freezer, kind="freezer", parent_code="PATH-B12", name=f"-80 °C upright {freezer[-1]}")
        for rack in (1, 2):
            add(session, actor=tech, code=f"{freezer}-R{rack}", kind="rack", parent_code=freezer)
    add(session, actor=tech, code="LN2-01", kind="ln2_tank", parent_code="PATH-B12", name="Vapour-phase LN2 tank")
    add(session, actor=tech, code="LN2-01-C1", kind="rack", parent_code="LN2-01", name="canister 1")
    add(session, actor=tech, code="CAB-01", kind="rt_cabinet", parent_code="PATH-B12", name="FFPE block and slide cabinet")


def _destination(specimen: Specimen) -> str:
    if specimen.storage_format == StorageFormat.ffpe:
        return "slides" if specimen.material_type == MaterialType.section else "blocks"
    if specimen.storage_format == StorageFormat.viable_cryo:
        return "ln2"
    return "minus80"


def place_demo_specimens(session: Session, accounts: dict[str, User], *, now: datetime) -> dict[str, int]:
    """Store every storable demo specimen, check three out, ship one order; returns counts."""
    tech, pi = accounts["tech"], accounts["pi"]
    _build_lab(session, tech)
    shelves = {
        "minus80": _Shelves(session, tech, "BOX80", "box_9x9", ["FRZ-01-R1", "FRZ-02-R1", "FRZ-01-R2", "FRZ-02-R2"]),
        "ln2": _Shelves(session, tech, "LNBOX", "box_10x10", ["LN2-01-C1"]),
        "blocks": _Shelves(session, tech, "DRW", "cassette_drawer", ["CAB-01"]),
        "slides": _Shelves(session, tech, "SLB", "slide_box", ["CAB-01"]),
    }
    specimens = session.exec(
        select(Specimen)
        .where(Specimen.status.in_(list(storage.STORABLE)), Specimen.storage_format != StorageFormat.fresh)  # type: ignore[attr-defined]  # SQLModel types the column as its Python value, not a SQL expression
        .order_by(Specimen.donor_id, Specimen.code)  # type: ignore[arg-type]  # SQLModel types the column as its Python value, not a SQL expression
    ).all()
    batches: dict[tuple[int, str], list[Specimen]] = {}
    for specimen in specimens:
        batches.setdefault((specimen.donor_id, _destination(specimen)), []).append(specimen)
    stored = 0
    for (_donor, destination), batch in batches.items():
        latest = max((s.stabilised_at or s.collected_at) for s in batch)
        when = min(latest + timedelta(hours=3), now)
        shelves[destination].store([s.code for s in batch], when)
        stored += len(batch)

    frozen = [s for s in specimens if s.storage_format == StorageFormat.snap_frozen and s.lineage == "primary"]
    out = [frozen[1], frozen[5], frozen[9]] if len(frozen) > 9 else frozen[:3]
    for specimen, hours_ago, purpose in zip(out, (40, 3, 1), ("cryosectioning for IHC", "DNA extraction", "RNA extraction"),
                                             strict=False):
        storage.check_out(session, actor=tech, code=specimen.code, purpose=purpose, when=now - timedelta(hours=hours_ago))

    shipped = 0
    candidates = [s for s in frozen if s not in out and s.donor_id == frozen[0].donor_id][:3] if frozen else []
    if candidates:
        order = distribution.create_order(
            session, actor=pi, study="PHYLO-BONE", recipient="Dr R. Lee, Genomics Core, Institute of Cancer Research",
            use="sequencing", purpose="Multiregion WGS for phylogenetic reconstruction", code="DO-DEMO-001",
        )
        for specimen in candidates:
            distribution.add_item(session, actor=pi, order_code=order.code, specimen_code=specimen.code,
                                  quantity=min(20.0, specimen.quantity_remaining))
        distribution.approve(session, actor=pi, order_code=order.code, when=now - timedelta(days=21))
        distribution.ship(session, actor=tech, order_code=order.code, shipping_temperature="-60to-85",
                          tracking_ref="World Courier dry ice, AWB 176-2231", when=now - timedelta(days=20))
        distribution.receive(session, actor=tech, order_code=order.code, when=now - timedelta(days=19))
        shipped = len(candidates)
    session.flush()
    return {"stored": stored, "checked_out": len(out), "distributed_items": shipped}
