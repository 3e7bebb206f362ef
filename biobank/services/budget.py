"""Per-sample sequencing defaults and the plan's budget (issue 18 item 3): pure functions of a selection + settings.

Each sample of a plan has an assay, a depth and a library kit. Given none, it takes the plan's assay, the plan's
target depth when the plan names one for that assay, else the default depth of its role below. The budget then adds
up the raw sequence the samples need, fits it onto lanes of a flow cell kind and prices it.

Every number here is a *default a lab overrides* (``BIOBANK_PLAN_*`` settings, :mod:`biobank.config`); they are
public list figures of late 2024, rounded, and meant as a planning estimate, not a quote:

- :data:`DEFAULT_DEPTH` (``plan_default_depth``): common practice for multiregion cancer studies (TRACERx, PCAWG): a
  WGS tumour region 90x against a 30x germline normal (tumour reads are split between clones and diluted by normal
  cells, so subclones need depth); exome 200x tumour / 100x normal; targeted panels 1,000x / 300x (deep, for
  low-frequency variants); RNA-seq in *million read pairs* (50 M per sample, the ENCODE long-RNA standard is >= 30 M).
- :data:`GB_PER_DEPTH` (``plan_gb_per_depth``): raw Gb one sample needs per 1x (per million read pairs for
  RNA-seq). WGS: a 3.1 Gb human genome, plus about 5-10 % lost to duplicates, adapters and unmapped reads: 3.3 Gb per
  1x. Exome: about 35-60 Mb targeted, with off-target reads and duplicates about 2.5x that: 0.12 Gb per 1x mean
  target coverage (200x = 24 Gb, i.e. 80 M read pairs, as vendors quote). Panel: a 1-2 Mb pan-cancer panel with
  the same overhead, deeper duplicate loss: 0.005 Gb per 1x (1,000x = 5 Gb). RNA-seq: one read pair of 2 x 150
  bases is 300 bases, so a million pairs are 0.3 Gb.
- :data:`FLOW_CELLS` (``plan_flow_cells``): Illumina's output specifications for 2 x 150 runs, the low end of each
  quoted range (what a core can promise): NovaSeq X 10B 3,000 Gb on 8 lanes; NovaSeq X 25B 8,000 Gb on 8 lanes;
  NovaSeq 6000 S4 2,400 Gb on 4 lanes; NextSeq 2000 P3 360 Gb on 1 lane. Costs are indicative list prices of the
  300-cycle reagent kit, in ``budget_currency``: set your core's own.
- :data:`LIBRARY_COST` (``plan_library_cost``): indicative per-sample library preparation (PCR-free WGS, exome
  capture, hybrid-capture panel, stranded total RNA), in ``budget_currency``.

The arithmetic: Gb per sample = depth x Gb per depth; lanes = ceil(total Gb / Gb per lane) where a lane holds the
flow cell's output divided by its lanes (cores sell lanes; a NextSeq P3 has one, so it is bought whole); flow cells =
ceil(lanes / lanes per flow cell); sequencing cost = lanes x (flow cell cost / lanes); library cost = the sum of the
samples' library costs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from biobank.config import Settings, get_settings
from biobank.domain.errors import invalid
from biobank.models.plans import DNA_ASSAYS, Assay, PlanRole
from biobank.services.inputs import MAX_DEPTH

#: Default depth per assay and role: x of coverage; million read pairs for RNA-seq (``plan_default_depth``).
DEFAULT_DEPTH: dict[str, dict[str, float]] = {
    "wgs": {"tumour": 90.0, "germline_normal": 30.0, "normal_tissue": 30.0, "model": 60.0},
    "wes": {"tumour": 200.0, "germline_normal": 100.0, "normal_tissue": 100.0, "model": 150.0},
    "panel": {"tumour": 1000.0, "germline_normal": 300.0, "normal_tissue": 300.0, "model": 1000.0},
    "rna_seq": {"tumour": 50.0, "germline_normal": 50.0, "normal_tissue": 50.0, "model": 50.0},
}
#: Raw Gb a sample needs per 1x (per million read pairs for RNA-seq), overheads included (``plan_gb_per_depth``).
GB_PER_DEPTH: dict[str, float] = {"wgs": 3.3, "wes": 0.12, "panel": 0.005, "rna_seq": 0.3}
#: Flow cell kinds: output Gb (2 x 150), lanes, cost of one flow cell (``plan_flow_cells`` adds or replaces).
FLOW_CELLS: dict[str, dict[str, float]] = {
    "NovaSeq X 10B": {"gb": 3000.0, "lanes": 8, "cost": 16000.0},
    "NovaSeq X 25B": {"gb": 8000.0, "lanes": 8, "cost": 25000.0},
    "NovaSeq 6000 S4": {"gb": 2400.0, "lanes": 4, "cost": 22000.0},
    "NextSeq 2000 P3": {"gb": 360.0, "lanes": 1, "cost": 6000.0},
}
#: Library preparation per sample and assay (``plan_library_cost``).
LIBRARY_COST: dict[str, float] = {"wgs": 150.0, "wes": 300.0, "panel": 200.0, "rna_seq": 250.0}
#: The unit of a depth, per assay (RNA-seq depth is a read count, not a coverage).
DEPTH_UNIT: dict[str, str] = {"wgs": "x", "wes": "x", "panel": "x", "rna_seq": "M pairs"}
#: The longest library kit name a sample keeps (``plan_specimen.library``).
LIBRARY_LENGTH = 80

_ASSAYS = frozenset(a.value for a in Assay)
_ROLES = frozenset(r.value for r in PlanRole)


def _known_assays(name: str, given: Mapping[str, Any]) -> None:
    unknown = sorted(set(given) - _ASSAYS)
    if unknown:
        raise invalid(name, unknown[0], f"unknown assay; assays are {', '.join(sorted(_ASSAYS))}")


def _positive(name: str, value: Any, *, zero: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise invalid(name, value, "must be a number") from None
    if math.isnan(number) or number < 0 or (number == 0 and not zero) or math.isinf(number):
        raise invalid(name, value, "must be zero or more" if zero else "must be positive")
    return number


@dataclass(frozen=True)
class FlowCell:
    name: str
    gb: float
    lanes: int
    cost: float

    @property
    def gb_per_lane(self) -> float:
        return self.gb / self.lanes


@dataclass(frozen=True)
class BudgetSettings:
    """The defaults above changed by the settings; every value checked (an unknown assay, role or a non-positive
    number is refused, naming the setting)."""

    default_depth: Mapping[str, Mapping[str, float]]
    gb_per_depth: Mapping[str, float]
    flow_cells: Mapping[str, FlowCell]
    flow_cell: str
    library_cost: Mapping[str, float]
    currency: str

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> BudgetSettings:
        settings = settings or get_settings()
        depths = {assay: dict(roles) for assay, roles in DEFAULT_DEPTH.items()}
        _known_assays("plan_default_depth", settings.plan_default_depth)
        for assay, roles in settings.plan_default_depth.items():
            unknown = sorted(set(roles) - _ROLES)
            if unknown:
                raise invalid(f"plan_default_depth.{assay}", unknown[0], f"unknown role; roles are {', '.join(sorted(_ROLES))}")
            for role, depth in roles.items():
                value = _positive(f"plan_default_depth.{assay}.{role}", depth)
                if value > MAX_DEPTH:
                    raise invalid(f"plan_default_depth.{assay}.{role}", depth, f"at most {MAX_DEPTH:g}")
                depths[assay][role] = value
        _known_assays("plan_gb_per_depth", settings.plan_gb_per_depth)
        gb = GB_PER_DEPTH | {a: _positive(f"plan_gb_per_depth.{a}", v) for a, v in settings.plan_gb_per_depth.items()}
        _known_assays("plan_library_cost", settings.plan_library_cost)
        libraries = LIBRARY_COST | {
            a: _positive(f"plan_library_cost.{a}", v, zero=True) for a, v in settings.plan_library_cost.items()
        }
        cells = {name: FlowCell(name, spec["gb"], int(spec["lanes"]), spec["cost"]) for name, spec in FLOW_CELLS.items()}
        for name, spec in settings.plan_flow_cells.items():
            label = " ".join(str(name).split())
            if not label:
                raise invalid("plan_flow_cells", name, "a flow cell kind needs a name")
            merged = dict(FLOW_CELLS.get(label, {})) | dict(spec)
            missing = sorted({"gb", "lanes", "cost"} - set(merged))
            if missing:
                raise invalid(f"plan_flow_cells.{label}", spec, f"give {', '.join(missing)} (output Gb, lanes, cost)")
            unknown = sorted(set(merged) - {"gb", "lanes", "cost"})
            if unknown:
                raise invalid(f"plan_flow_cells.{label}", unknown[0], "expected gb, lanes and cost")
            lanes = _positive(f"plan_flow_cells.{label}.lanes", merged["lanes"])
            if lanes != int(lanes):
                raise invalid(f"plan_flow_cells.{label}.lanes", merged["lanes"], "must be a whole number")
            cells[label] = FlowCell(
                label, _positive(f"plan_flow_cells.{label}.gb", merged["gb"]), int(lanes),
                _positive(f"plan_flow_cells.{label}.cost", merged["cost"], zero=True),
            )
        return cls(depths, gb, cells, settings.plan_flow_cell, libraries, settings.budget_currency)

    def kind(self, name: str | None, *, field_name: str = "flow_cell") -> FlowCell:
        """The flow cell kind ``name`` (any letter case, spaces collapsed); None: the default kind (the
        ``plan_flow_cell`` setting). Unknown: refused, naming the known kinds."""
        if name is None or not name.strip():
            name, field_name = self.flow_cell, "plan_flow_cell"
        wanted = " ".join(name.split())
        for known, cell in self.flow_cells.items():
            if known.casefold() == wanted.casefold():
                return cell
        raise invalid(field_name, name, f"unknown flow cell kind; known kinds are {', '.join(sorted(self.flow_cells))}"
                      " (add one with the plan_flow_cells setting)")

    def depth(self, assay: str, role: str) -> float:
        """The default depth of a sample of ``assay`` in ``role``."""
        roles = self.default_depth.get(assay, {})
        return float(roles.get(role, roles.get("tumour", 30.0)))


def check_sample(
    code: str, assay: str | None, depth: float | None, library: str | None
) -> tuple[str | None, float | None, str | None]:
    """A sample's own assay (from the vocabulary), depth (positive, at most :data:`MAX_DEPTH`) and library kit
    (whitespace collapsed, at most :data:`LIBRARY_LENGTH`; blank: none), or a clear error naming the specimen."""
    if assay is not None:
        assay = str(assay).strip().lower() or None
        if assay is not None and assay not in _ASSAYS:
            raise invalid(f"{code}.assay", assay, f"expected one of {', '.join(sorted(_ASSAYS))}")
    if depth is not None:
        try:
            value = float(depth)
        except (TypeError, ValueError):
            raise invalid(f"{code}.target_depth", depth, "must be a number") from None
        if math.isnan(value) or value <= 0 or value > MAX_DEPTH:
            raise invalid(f"{code}.target_depth", depth, f"must be above 0 and at most {MAX_DEPTH:g}")
        depth = value
    if library is not None:
        library = " ".join(str(library).split()) or None
        if library is not None and len(library) > LIBRARY_LENGTH:
            raise invalid(f"{code}.library", library, f"is {len(library)} characters long; at most {LIBRARY_LENGTH}")
    return assay, depth, library


def _given(value: Any) -> Any:
    """A stored value, or None for a missing one (NaN from a frame)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def effective(
    role: str,
    assay: Any,
    depth: Any,
    *,
    plan_assay: str,
    plan_depth: float | None,
    settings: BudgetSettings,
) -> tuple[str, float]:
    """The assay and depth a sample is sequenced at: its own, else the plan's assay, and the plan's depth when the
    sample has the plan's assay and the plan names one, else its role's default."""
    own_assay = _given(assay)
    sample_assay = str(own_assay) if own_assay else plan_assay
    own_depth = _given(depth)
    if own_depth is not None:
        return sample_assay, float(own_depth)
    if plan_depth is not None and sample_assay == plan_assay:
        return sample_assay, float(plan_depth)
    return sample_assay, settings.depth(sample_assay, role)


@dataclass(frozen=True)
class SampleBudget:
    specimen_code: str
    role: str
    assay: str
    depth: float
    depth_unit: str
    library: str | None
    gb: float
    library_cost: float
    paired_dna: str | None = None


@dataclass(frozen=True)
class Budget:
    flow_cell: str
    gb: float
    lanes: int
    flow_cells: int
    lanes_per_flow_cell: int
    sequencing_cost: float
    library_cost: float
    currency: str
    samples: list[SampleBudget] = field(default_factory=list)

    @property
    def total_cost(self) -> float:
        return self.sequencing_cost + self.library_cost

    def line(self) -> str:
        """``3 samples, 312 Gb: 1 lane(s) of NovaSeq X 10B (1 flow cell(s)), sequencing 2,000 + libraries 450 =
        2,450 USD``."""
        return (
            f"{len(self.samples)} sample(s), {self.gb:,.0f} Gb: {self.lanes} lane(s) of {self.flow_cell} "
            f"({self.flow_cells} flow cell(s), {self.lanes_per_flow_cell} lanes each); sequencing "
            f"{self.sequencing_cost:,.0f} + libraries {self.library_cost:,.0f} = {self.total_cost:,.0f} {self.currency}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"total_cost": self.total_cost, "line": self.line()}

    def sample_records(self) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.samples]


def pairs(rows: Iterable[Mapping[str, Any]]) -> dict[str, str | None]:
    """For each RNA-seq sample (by specimen code), the DNA-assay sample of the same donor and region (sampling site)
    in the selection; None when the region has none. Rows need specimen_code, donor_code, region_code and the
    sample's effective ``assay``."""
    listed = list(rows)
    dna: dict[tuple[Any, Any], str] = {}
    for r in listed:
        if r["assay"] in DNA_ASSAYS:
            dna.setdefault((r.get("donor_code"), r.get("region_code")), str(r["specimen_code"]))
    return {
        str(r["specimen_code"]): dna.get((r.get("donor_code"), r.get("region_code")))
        for r in listed
        if r["assay"] == Assay.rna_seq
    }


def compute(
    rows: Iterable[Mapping[str, Any]],
    *,
    plan_assay: str,
    plan_depth: float | None = None,
    flow_cell: str | None = None,
    settings: BudgetSettings | None = None,
) -> Budget:
    """The budget of these samples (rows with specimen_code, role and optionally assay, target_depth, library,
    donor_code, region_code) on ``flow_cell`` (default: the ``plan_flow_cell`` setting)."""
    settings = settings or BudgetSettings.from_settings()
    cell = settings.kind(flow_cell)
    resolved: list[dict[str, Any]] = []
    for r in rows:
        assay, depth = effective(str(r["role"]), r.get("assay"), r.get("target_depth"), plan_assay=plan_assay,
                                 plan_depth=plan_depth, settings=settings)
        resolved.append(dict(r) | {"assay": assay, "target_depth": depth})
    paired = pairs(resolved)
    samples = [
        SampleBudget(
            specimen_code=str(r["specimen_code"]), role=str(r["role"]), assay=r["assay"], depth=r["target_depth"],
            depth_unit=DEPTH_UNIT.get(r["assay"], "x"), library=_given(r.get("library")),
            gb=r["target_depth"] * settings.gb_per_depth[r["assay"]],
            library_cost=settings.library_cost[r["assay"]], paired_dna=paired.get(str(r["specimen_code"])),
        )
        for r in resolved
    ]
    gb = sum(s.gb for s in samples)
    lanes = math.ceil(round(gb / cell.gb_per_lane, 9)) if gb > 0 else 0
    return Budget(
        flow_cell=cell.name,
        gb=gb,
        lanes=lanes,
        flow_cells=math.ceil(lanes / cell.lanes),
        lanes_per_flow_cell=cell.lanes,
        sequencing_cost=lanes * cell.cost / cell.lanes,
        library_cost=sum(s.library_cost for s in samples),
        currency=settings.currency,
        samples=samples,
    )


__all__ = [
    "DEFAULT_DEPTH",
    "FLOW_CELLS",
    "GB_PER_DEPTH",
    "LIBRARY_COST",
    "Budget",
    "BudgetSettings",
    "FlowCell",
    "SampleBudget",
    "check_sample",
    "compute",
    "effective",
    "pairs",
]
