"""The planning rules of DOMAIN.md §6, one named check each, with a default severity a setting can change.

Every check is a pure function of a :class:`PlanContext` (frames from :mod:`biobank.queries.exports`) returning
:class:`Finding` rows, so the dashboard can re-run the whole report on every toggle without touching the database.
Severities come from :data:`RULES` unless ``BIOBANK_PLAN_RULE_SEVERITY`` overrides them, e.g.
``BIOBANK_PLAN_RULE_SEVERITY='{"min_regions_per_lesion": "error", "sex_recorded": "off"}'``. The input requirements
(ng of nucleic acid per assay and depth, DIN, RIN, DV200) are :class:`InputRequirements`, whose defaults the
``BIOBANK_PLAN_INPUT_*`` and ``BIOBANK_PLAN_MIN_*`` settings override.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from biobank.config import Settings, get_settings
from biobank.domain.codes import SAFE_CODE
from biobank.domain.errors import ValidationError, invalid
from biobank.domain.vocab import ACID_DECALCIFICATION
from biobank.domain.vocab_derived import ESTABLISHED_OR_BEYOND
from biobank.models.plans import DNA_ASSAYS, Assay, PlanPurpose, PlanRole
from biobank.services.budget import BudgetSettings, effective, pairs

SEVERITIES = ("error", "warning", "info", "off")

#: The role of material grown in a model (PDX, organoid, cell line): paired with its source patient specimen by the
#: model's source region (``model_source_paired``), which every row of model material carries.
MODEL_ROLE = PlanRole.model.value
#: Every role a plan's sample can take (DOMAIN.md §6 rule 13).
ROLES: tuple[str, ...] = tuple(r.value for r in PlanRole)

#: Least nucleic acid (ng) a sample needs for each assay at its reference depth: PCR-free WGS, exome capture, a
#: targeted panel, RNA-seq (DOMAIN.md §6 rule 16). ``BIOBANK_PLAN_INPUT_NG`` overrides any of them.
INPUT_NG: dict[str, float] = {"wgs": 1000.0, "wes": 200.0, "panel": 50.0, "rna_seq": 300.0}
#: The depth (x) those amounts cover; a plan asking for more needs proportionally more unique molecules, so more
#: input (``BIOBANK_PLAN_INPUT_REFERENCE_DEPTH``). RNA-seq depth is in reads, not x: its input does not scale.
REFERENCE_DEPTH: dict[str, float] = {"wgs": 60.0, "wes": 200.0, "panel": 1000.0}
#: Least DNA integrity number per DNA assay (``BIOBANK_PLAN_MIN_DIN``): WGS needs long intact DNA, capture less.
MIN_DIN: dict[str, float] = {"wgs": 7.0, "wes": 4.0, "panel": 3.0}
#: RNA-seq: least RIN of frozen material, and the DV200 that FFPE RNA must exceed.
MIN_RIN = 7.0
MIN_DV200_FFPE = 30.0
A260_280_RANGE = (1.8, 2.1)
CELLULARITY_EXCLUDE = 20.0
CELLULARITY_WARN = 30.0
ADJACENT_MM = 20.0
UNAVAILABLE = frozenset({"depleted", "disposed", "distributed"})
_ACID = frozenset(a.value for a in ACID_DECALCIFICATION)
#: Site categories whose involvement puts tumour cells into marrow and nodes (DOMAIN.md §6 rule 14).
INVOLVED_CATEGORIES = frozenset({"bone", "bone_marrow", "lymph_node"})
#: Normal material that must not be a germline normal once those sites are involved.
_MARROW_OR_NODE = frozenset({"bone", "bone_marrow", "lymph_node"})
_BLOOD_KINDS = frozenset({"germline_blood", "premortem_blood"})
_ASSAY_TEXT = {"wgs": "WGS", "wes": "WES", "panel": "panel", "rna_seq": "RNA-seq"}
#: Materials a DNA assay can take: the extract, or what DNA can still be extracted from (tissue, cells, blood).
DNA_ASSAY_MATERIALS = frozenset({"dna", "tissue", "section", "cells", "whole_blood", "buffy_coat", "bone_marrow"})
#: Materials RNA-seq can take: the RNA extract, or tissue RNA can still be extracted from.
RNA_SEQ_MATERIALS = frozenset({"rna", "tissue", "section", "cells"})


@dataclass(frozen=True)
class InputRequirements:
    """What a sample must hold for an assay (DOMAIN.md §6 rule 16): below it the plan cannot be approved."""

    input_ng: Mapping[str, float] = field(default_factory=lambda: dict(INPUT_NG))
    reference_depth: Mapping[str, float] = field(default_factory=lambda: dict(REFERENCE_DEPTH))
    min_din: Mapping[str, float] = field(default_factory=lambda: dict(MIN_DIN))
    min_rin: float = MIN_RIN
    min_dv200: float = MIN_DV200_FFPE

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> InputRequirements:
        """The defaults, changed by the settings (each mapping names assays; an unknown assay is refused)."""
        settings = settings or get_settings()
        assays = {a.value for a in Assay}
        for name in ("plan_input_ng", "plan_input_reference_depth", "plan_min_din"):
            given: Mapping[str, float] = getattr(settings, name)
            unknown = sorted(set(given) - assays)
            if unknown:
                raise invalid(name, unknown, f"unknown assay(s); assays are {', '.join(sorted(assays))}")
            negative = sorted(a for a, v in given.items() if v < 0 or (name != "plan_min_din" and v == 0))
            if negative:
                raise invalid(f"{name}.{negative[0]}", given[negative[0]], "must be positive")
        return cls(
            input_ng=INPUT_NG | dict(settings.plan_input_ng),
            reference_depth=REFERENCE_DEPTH | dict(settings.plan_input_reference_depth),
            min_din=MIN_DIN | dict(settings.plan_min_din),
            min_rin=settings.plan_min_rin,
            min_dv200=settings.plan_min_dv200_pct,
        )

    def ng(self, assay: str, depth: float | None = None) -> float:
        """Nanograms an assay needs at ``depth`` (the reference amount, scaled up for deeper sequencing)."""
        base = self.input_ng.get(assay, 0.0)
        reference = self.reference_depth.get(assay)
        if depth is None or not reference or depth <= reference:
            return base
        return base * depth / reference

    def problems(self, row: Mapping[str, Any], assay: str, depth: float | None = None) -> list[str]:
        """Measured values of an extract that fail the assay's requirements (unknown values are not failures)."""
        analyte = "dna" if assay in DNA_ASSAYS else "rna"
        if row.get("material_type") != analyte:
            return []
        out = []
        need = self.ng(assay, depth)
        amount = available_ng(row)
        if amount is not None and amount < need:
            at = f" at {depth:g}x" if depth is not None and assay in self.reference_depth else ""
            out.append(f"{amount:,.0f} ng left, {_ASSAY_TEXT.get(assay, assay)}{at} needs {need:,.0f} ng")
        if analyte == "dna":
            din, least = _num(row.get("din")), self.min_din.get(assay)
            if din is not None and least is not None and din < least:
                out.append(f"DIN {din:g} below {least:g} for {_ASSAY_TEXT.get(assay, assay)}")
        elif _origin_format(row) == "ffpe":
            dv200 = _num(row.get("dv200_pct"))
            if dv200 is not None and dv200 <= self.min_dv200:
                out.append(f"FFPE RNA DV200 {dv200:g} % not above {self.min_dv200:g} %")
        else:
            rin = _num(row.get("rin"))
            if rin is not None and rin < self.min_rin:
                out.append(f"RIN {rin:g} below {self.min_rin:g}")
        return out


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    donor: str | None
    specimen: str | None
    message: str

    def __str__(self) -> str:
        where = " ".join(x for x in (self.donor, self.specimen) if x)
        return f"[{self.severity}] {self.rule}: {where + ': ' if where else ''}{self.message}"


@dataclass
class PlanContext:
    """What the rules read: the plan's settings, its donors, every specimen of them, and the selection.

    ``selection`` has ``specimen_id`` and ``role``, and may have each sample's own ``assay``, ``target_depth`` and
    ``library`` (missing or None: the plan's assay, the plan's depth or the role's default, :func:`budget.effective`).

    ``lesions`` (donor_code, lesion_code, lesion_kind, site_code, site_label, site_category) adds lesions without
    material to what the specimens show of a donor's disease; ``models`` (one row per model passage: model_code,
    model_kind, status, passage, passage_number, qc_passed) says which models are established and QC-passed.
    """

    purpose: str
    assay: str
    donors: pd.DataFrame | list[dict[str, Any]]  # query.donor_frame rows of the plan's donors
    specimens: pd.DataFrame | list[dict[str, Any]]  # query.specimen_records of every specimen of those donors
    selection: pd.DataFrame  # specimen_id, role
    primary_site_code: str | None = None
    unknown_primary: bool = False
    pmi_limit_hours: float = field(default_factory=lambda: get_settings().pmi_limit_hours)
    target_depth: float | None = None
    primary_unsampled_reason: str | None = None
    lesions: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    requirements: InputRequirements = field(default_factory=InputRequirements.from_settings)
    budget_settings: BudgetSettings = field(default_factory=BudgetSettings.from_settings)

    def __post_init__(self) -> None:
        # Plain records: the rules loop over a few hundred rows, where pandas' per-row costs would dominate.
        self.donor_records = _records(self.donors)
        self.records = resolve_lineage(_records(self.specimens))

    def selected(self) -> list[dict[str, Any]]:
        """The selected specimens (records with their ``role``, and the ``assay``, ``target_depth`` and ``library``
        each is sequenced with: its own or the default), in selection order."""
        by_id = {r["specimen_id"]: r for r in self.records}
        frame = self.selection
        n = len(frame)
        ids, roles = frame["specimen_id"].tolist(), frame["role"].tolist()
        assays = frame["assay"].tolist() if "assay" in frame else [None] * n
        depths = frame["target_depth"].tolist() if "target_depth" in frame else [None] * n
        libraries = frame["library"].tolist() if "library" in frame else [None] * n
        out = []
        for i, role, assay, depth, library in zip(ids, roles, assays, depths, libraries, strict=True):
            record = by_id.get(int(i))
            if record is None:
                continue
            assay_, depth_ = effective(str(role), assay, depth, plan_assay=self.assay, plan_depth=self.target_depth,
                                       settings=self.budget_settings)
            out.append(record | {"role": role, "assay": assay_, "target_depth": depth_,
                                 "library": library if isinstance(library, str) else None})
        return out

    def selected_frame(self) -> pd.DataFrame:
        columns = [*(self.records[0] if self.records else {}), "role", "assay", "target_depth", "library"]
        return pd.DataFrame(self.selected(), columns=columns)

    @property
    def dna(self) -> bool:
        return self.assay in DNA_ASSAYS


Rows = list[dict[str, Any]]
Out = list[tuple[str | None, str | None, str]]
Check = Callable[["PlanContext", Rows], Out]


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str
    summary: str
    check: Check


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _origin_format(row: Mapping[str, Any]) -> str:
    """The storage format of the tissue a derivative came from (a DNA extract is stored 'frozen')."""
    if row.get("lineage") == "derivative" and isinstance(row.get("parent_storage_format"), str):
        return str(row["parent_storage_format"])
    return str(row.get("storage_format"))


def _pct(row: Mapping[str, Any]) -> float:
    """Tumour cellularity, or 100 when not recorded (that case is ``cellularity_recorded``'s)."""
    value = _num(row.get("tumour_cellularity_pct"))
    return 100.0 if value is None else value


def _records(rows: pd.DataFrame | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as plain dicts with NaN as None (a frame is converted once; new dicts, so callers may annotate them)."""
    if isinstance(rows, pd.DataFrame):
        rows = [{str(k): v for k, v in row.items()} for row in rows.to_dict(orient="records")]
    # NaN is the only value unequal to itself: one comparison per float, no call per value (1,000 rows x 60 columns).
    return [{k: None if v.__class__ is float and v != v else v for k, v in row.items()} for row in rows]


_rows = _records


def is_model(row: Mapping[str, Any]) -> bool:
    """Material grown in a model (PDX, organoid, cell line) or made from it: never the patient's own tissue."""
    return isinstance(row.get("model_code"), str)


def model_text(row: Mapping[str, Any]) -> str:
    """``PDX RA0004-L06A-PDX1, passage P4`` for a row of model material."""
    kind = {"pdx": "PDX", "organoid": "organoid", "cell_line": "cell line"}.get(str(row.get("model_kind")), "model")
    return f"{kind} {row.get('model_code')}, passage {row.get('passage')}"


def resolve_lineage(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each record ``decal_agent`` and ``decal_hours``: its own decalcification, else its nearest ancestor's.

    A DNA extract of an acid-decalcified block carries no agent of its own, yet the acid fragmented it.
    """
    by_id = {int(r["specimen_id"]): r for r in records}
    for r in records:
        current: dict[str, Any] | None = r
        agent, hours = None, None
        for _ in range(32):  # lineage depth; a cycle cannot exist (a parent is older) but is bounded anyway
            if current is None:
                break
            if isinstance(current.get("decalcification_agent"), str):
                agent, hours = current["decalcification_agent"], _num(current.get("decalcification_hours"))
                break
            parent = _num(current.get("parent_id"))
            current = by_id.get(int(parent)) if parent is not None else None
        r["decal_agent"], r["decal_hours"] = agent, hours
    return records


def decal_text(row: Mapping[str, Any]) -> str:
    """``formic_acid 24 h``, or the agent alone when its hours are not recorded."""
    hours = _num(row.get("decal_hours"))
    return f"{row.get('decal_agent')}" + (f" {hours:g} h" if hours is not None else "")


def is_acid(row: Mapping[str, Any]) -> bool:
    return row.get("decal_agent", row.get("decalcification_agent")) in _ACID


def involvement(records: Sequence[Mapping[str, Any]], lesions: Sequence[Mapping[str, Any]] = ()) -> dict[str, list[str]]:
    """Per donor, the lesions in bone, marrow or lymph nodes (``L02 (Vertebra T12)``): sites whose involvement
    seeds tumour cells into marrow and nodes, so neither is a germline normal."""
    found: dict[str, dict[str, str]] = {}
    rows = [
        (r["donor_code"], r.get("lesion_code"), r.get("lesion_kind"), r.get("site_category_vocab"), r.get("site_label"))
        for r in records
        if r.get("site_kind") == "tumour_region" and not is_model(r)
    ] + [
        (r["donor_code"], r.get("lesion_code"), r.get("lesion_kind"), r.get("site_category"), r.get("site_label"))
        for r in lesions
    ]
    for donor, lesion, kind, category, label in rows:
        if isinstance(lesion, str) and (category in INVOLVED_CATEGORIES or kind == "lymph_node"):
            found.setdefault(str(donor), {})[lesion] = f"{lesion} ({label})"
    return {donor: [text for _, text in sorted(lesions_.items())] for donor, lesions_ in found.items()}


def germline_problem(row: Mapping[str, Any], involved: list[str]) -> str | None:
    """Why this specimen cannot be a germline normal, or None (DOMAIN.md §6 rule 14).

    Blood (not plasma, which carries tumour DNA) or distant normal tissue; never adjacent normal; never marrow,
    bone or a lymph node of a donor whose disease involves bone, marrow or nodes.
    """
    kind, material = row.get("site_kind"), row.get("material_type")
    category = row.get("site_category_vocab")
    if is_model(row):
        return None  # model_material_role reports it
    if material == "plasma":
        return "plasma carries circulating tumour DNA: take the buffy coat or whole blood"
    if kind in _BLOOD_KINDS:
        return None
    marrow = kind == "bone_marrow" or material == "bone_marrow" or category in _MARROW_OR_NODE
    if marrow and involved:
        what = "lymph node" if category == "lymph_node" else "bone marrow" if category != "bone" else "bone"
        return (
            f"{what} of a donor with disease in {', '.join(involved)}: disseminated tumour cells; "
            "use blood or distant normal tissue"
        )
    if kind == "normal_tissue":
        distance = _num(row.get("distance_to_tumour_mm"))
        if row.get("tissue_status") == "adjacent_normal" or (distance is not None and distance < ADJACENT_MM):
            where = f"{distance:g} mm from tumour" if distance is not None else "adjacent to tumour"
            return f"normal tissue {where} (< 2 cm) cannot be the germline normal: tumour cells in it hide somatic calls"
    return None


def _flag(rows: Rows, flagged: Callable[[dict[str, Any]], bool], message: Callable[[dict[str, Any]], str]) -> Out:
    """A finding ``(donor, specimen, message)`` for each selected specimen ``flagged`` picks."""
    return [(r["donor_code"], r["specimen_code"], message(r)) for r in rows if flagged(r)]


def _flag_donors(
    ctx: PlanContext, flagged: Callable[[dict[str, Any]], bool], message: Callable[[dict[str, Any]], str]
) -> Out:
    """A finding ``(donor, None, message)`` for each donor of the plan ``flagged`` picks."""
    return [(str(r["donor_code"]), None, message(r)) for r in ctx.donor_records if flagged(r)]


# ------------------------------------------------------------------------------------------------- the checks


def one_germline_normal(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 1: exactly one germline normal per donor sequenced for DNA (a DNA plan, or a DNA sample of the donor)."""
    dna_donors = {r["donor_code"] for r in sel if r["assay"] in DNA_ASSAYS}
    out: list[tuple[str | None, str | None, str]] = []
    for donor in (d["donor_code"] for d in ctx.donor_records):
        if not ctx.dna and donor not in dna_donors:
            continue
        normals = [
            r["specimen_code"] for r in sel if r["donor_code"] == donor and r["role"] == "germline_normal"
        ]
        if len(normals) != 1:
            found = ", ".join(normals) or "none"
            out.append(
                (
                    donor,
                    None,
                    f"needs exactly one germline normal (blood first, else distant normal tissue); found {found}",
                )
            )
    return out


def germline_normal_source(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 14: the germline normal is blood or distant normal tissue, judged against the donor's disease."""
    involved = involvement(ctx.records, ctx.lesions)
    out: Out = []
    for r in sel:
        if r["role"] != "germline_normal":
            continue
        problem = germline_problem(r, involved.get(str(r["donor_code"]), []))
        if problem:
            out.append((r["donor_code"], r["specimen_code"], problem))
    return out


def _counted_tumours(ctx: PlanContext) -> frozenset[str]:
    """Roles that count as tumour samples: a model-versus-tumour comparison counts its models too."""
    if ctx.purpose == PlanPurpose.model_vs_tumour:
        return frozenset({"tumour", MODEL_ROLE})
    return frozenset({"tumour"})


def min_tumour_samples(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 2: at least two tumour samples per donor (a model-versus-tumour plan counts its models)."""
    counted = _counted_tumours(ctx)
    what = "tumour or model" if MODEL_ROLE in counted else "tumour"
    need = "a comparison needs at least two" if MODEL_ROLE in counted else "clonal reconstruction needs at least two"
    out: list[tuple[str | None, str | None, str]] = []
    for donor in (d["donor_code"] for d in ctx.donor_records):
        n = sum(1 for r in sel if r["donor_code"] == donor and r["role"] in counted)
        if n < 2:
            out.append((donor, None, f"{n} {what} sample(s); {need}"))
    return out


def min_regions_per_lesion(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 2: at least two regions of each lesion studied (not for a model-versus-tumour comparison)."""
    if ctx.purpose == PlanPurpose.model_vs_tumour:
        return []
    regions_of: dict[tuple[str, str], set[str]] = {}
    for r in sel:
        if r["role"] == "tumour" and r.get("lesion_code"):
            regions_of.setdefault((r["donor_code"], r["lesion_code"]), set()).add(r["region_code"])
    out: Out = []
    for (donor, lesion), found in sorted(regions_of.items()):
        regions = len(found)
        if regions < 2:
            out.append(
                (str(donor), None, f"lesion {lesion} has {regions} region in the plan; sample at least two")
            )
    return out


def primary_site_named(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 3: a migration analysis names the primary site (or says it is unknown)."""
    if ctx.purpose != PlanPurpose.migration_history or ctx.unknown_primary or ctx.primary_site_code:
        return []
    return _flag_donors(
        ctx,
        lambda r: not isinstance(r.get("primary_site_code"), str),
        lambda r: "migration history needs the primary site: set it on the donor or the plan, or mark the primary unknown",
    )


def metastatic_sites_sampled(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 3: in a migration analysis every metastatic lesion with material has a sample in the plan."""
    if ctx.purpose != PlanPurpose.migration_history:
        return []
    available = {
        (r["donor_code"], r["lesion_code"], r["site_label"])
        for r in ctx.records
        if r.get("lesion_kind") in ("metastasis", "lymph_node") and r["status"] not in UNAVAILABLE and not is_model(r)
    }
    chosen = {(r["donor_code"], r["lesion_code"]) for r in sel if r["role"] == "tumour"}
    out: list[tuple[str | None, str | None, str]] = []
    for donor, lesion, site in sorted(available):
        if (donor, lesion) not in chosen:
            out.append((str(donor), None, f"metastatic lesion {lesion} ({site}) has no sample in the plan"))
    return out


def primary_sampled(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 15: a migration analysis holds a sample of the primary tumour, or declares it unsampled with the reason.

    A local recurrence is a regrowth at the primary's site, not the primary: it never stands in for one silently.
    """
    if ctx.purpose != PlanPurpose.migration_history:
        return []
    declared = (ctx.primary_unsampled_reason or "").strip()
    out: Out = []
    for donor in (str(d["donor_code"]) for d in ctx.donor_records):
        tumours = [r for r in sel if r["donor_code"] == donor and r["role"] == "tumour"]
        primaries = sorted({str(r["lesion_code"]) for r in tumours if r.get("lesion_kind") == "primary"})
        if primaries and declared:
            out.append((donor, None, f"the plan declares the primary unsampled ({declared}) yet holds primary "
                                     f"lesion {', '.join(primaries)}: remove the declaration or the samples"))
            continue
        if primaries or declared or ctx.unknown_primary:
            continue
        recurrences = sorted({str(r["lesion_code"]) for r in tumours if r.get("lesion_kind") == "local_recurrence"})
        left = sorted({
            str(r["lesion_code"]) for r in ctx.records
            if r["donor_code"] == donor and r.get("lesion_kind") == "primary" and r["status"] not in UNAVAILABLE
            and not is_model(r)
        })
        bits = ["no sample of the primary tumour (migration tools root the history at it)"]
        if recurrences:
            bits.append(f"local recurrence {', '.join(recurrences)} is not the primary")
        if left:
            bits.append(f"primary lesion {', '.join(left)} has material: add it")
        out.append((donor, None, "; ".join(bits) + "; or declare the primary unsampled with the reason"))
    return out


def local_recurrence_not_primary(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 15: a local recurrence in a migration analysis is named as such (exports place it at the primary site)."""
    if ctx.purpose != PlanPurpose.migration_history:
        return []
    seen: dict[tuple[str, str], str] = {}
    for r in sel:
        if r["role"] == "tumour" and r.get("lesion_kind") == "local_recurrence":
            seen.setdefault((str(r["donor_code"]), str(r["lesion_code"])), str(r.get("site_label")))
    return [
        (donor, None, f"local recurrence {lesion} ({site}) is a regrowth at the primary site, not the primary "
                      "tumour: migration exports label it a primary-site sample, so say so in the analysis")
        for (donor, lesion), site in sorted(seen.items())
    ]


def lesion_kind_known(ctx: PlanContext, sel: Rows) -> Out:
    """Issue 19: a tumour sample's lesion has a known kind. An import records a lesion without one as ``unknown``
    (never an invented kind); the planner cannot tell such a lesion's primary from its metastases."""
    return _flag(
        sel,
        lambda r: r["role"] == "tumour" and r.get("lesion_kind") == "unknown",
        lambda r: f"lesion {r.get('lesion_code')} has an unknown kind: record whether it is the primary, a metastasis "
                  "or a recurrence before the analysis relies on it",
    )


def cellularity_recorded(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 4: tumour cellularity recorded for every tumour sample."""
    return _flag(
        sel,
        lambda r: r["role"] == "tumour" and _num(r.get("tumour_cellularity_pct")) is None,
        lambda r: "no tumour cellularity recorded (purity is needed for deconvolution)",
    )


def cellularity_minimum(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 4: tumour samples below 20 % cellularity are excluded."""
    return _flag(
        sel,
        lambda r: r["role"] == "tumour" and _pct(r) < CELLULARITY_EXCLUDE,
        lambda r: f"tumour cellularity {r['tumour_cellularity_pct']:g} % is below {CELLULARITY_EXCLUDE:g} %: exclude it",
    )


def cellularity_low(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 4: tumour samples of 20-30 % cellularity are warned about."""
    return _flag(
        sel,
        lambda r: r["role"] == "tumour" and CELLULARITY_EXCLUDE <= _pct(r) < CELLULARITY_WARN,
        lambda r: f"tumour cellularity {r['tumour_cellularity_pct']:g} % is low (20-30 %): subclonal calls will be weak",
    )


def wgs_ffpe(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 5: WGS on FFPE material (formalin artefacts); each sample's own assay."""
    return _flag(
        sel,
        lambda r: r["assay"] == "wgs" and _origin_format(r) == "ffpe",
        lambda r: "WGS on FFPE material: expect formalin artefacts (C>T) and uneven coverage",
    )


def acid_decalcified(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 5: no DNA assay (WGS, WES, panel) on acid-decalcified material or an extract of it (acid fragments DNA);
    each sample's own assay."""
    return _flag(
        sel,
        lambda r: r["assay"] in DNA_ASSAYS and is_acid(r),
        lambda r: f"{_ASSAY_TEXT.get(r['assay'], r['assay'])} on material decalcified with {decal_text(r)}: acid "
        "fragments DNA "
        "(take frozen or EDTA-decalcified material)",
    )


def edta_hours_recorded(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 5: EDTA decalcification is acceptable, with its hours recorded (a pre-analytical variable)."""
    return _flag(
        sel,
        lambda r: r.get("decal_agent") == "edta" and _num(r.get("decal_hours")) is None,
        lambda r: "EDTA-decalcified, hours not recorded: record them (days of EDTA still degrade nucleic acids)",
    )


def nucleic_acid_qc(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 6: quantity and quality recorded (A260/280 1.8-2.1; DIN for DNA assays; RIN or DV200 for RNA), for each
    sample's own assay."""
    out: list[tuple[str | None, str | None, str]] = []
    for r in sel:
        donor, code, assay = r["donor_code"], r["specimen_code"], r["assay"]
        analyte = "dna" if assay in DNA_ASSAYS else "rna"
        if r.get("material_type") != analyte:
            out.append((donor, code, f"no {analyte.upper()} extracted yet: quantity and quality unknown"))
            continue
        problems = []
        if available_ng(r) is None:
            problems.append("quantity not recorded")
        ratio = _num(r.get("a260_280"))
        if ratio is None:
            problems.append("A260/280 not recorded")
        elif not A260_280_RANGE[0] <= ratio <= A260_280_RANGE[1]:
            problems.append(f"A260/280 {ratio:g} outside {A260_280_RANGE[0]}-{A260_280_RANGE[1]}")
        if analyte == "dna":
            if assay in ctx.requirements.min_din and _num(r.get("din")) is None:
                problems.append(f"DIN not recorded ({_ASSAY_TEXT.get(assay, assay)})")
        elif _origin_format(r) == "ffpe":
            if _num(r.get("dv200_pct")) is None:
                problems.append(f"DV200 not recorded (FFPE RNA needs > {ctx.requirements.min_dv200:g} %)")
        elif _num(r.get("rin")) is None:
            problems.append(f"RIN not recorded (needs >= {ctx.requirements.min_rin:g})")
        if problems:
            out.append((donor, code, "; ".join(problems)))
    return out


def input_requirements(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 16: an extract holds what its sample's assay needs at the sample's depth (ng, DIN; RIN or DV200 for RNA)."""
    out: Out = []
    for r in sel:
        problems = ctx.requirements.problems(r, r["assay"], r["target_depth"])
        if problems:
            out.append((r["donor_code"], r["specimen_code"], "; ".join(problems)))
    return out


def _post_mortem(r: Mapping[str, Any]) -> bool:
    """Patient material taken after death (not a pre-mortem draw, not grown in a model since)."""
    return r.get("site_kind") != "premortem_blood" and not is_model(r)


def pmi_recorded(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 7: the post-mortem interval is known for post-mortem material."""
    return _flag(
        sel,
        lambda r: _num(r.get("pmi_hours")) is None and _post_mortem(r),
        lambda r: "PMI unknown (no time of death or of collection)",
    )


def pmi_over_limit(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 7: PMI above the limit."""
    return _flag(
        sel,
        lambda r: (_num(r.get("pmi_hours")) or 0.0) > ctx.pmi_limit_hours and _post_mortem(r),
        lambda r: f"PMI {r['pmi_hours']:.1f} h is above the {ctx.pmi_limit_hours:g} h limit",
    )


def adjacent_normal(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 8: normal tissue within 2 cm of tumour may carry tumour cells (as a germline normal: rule 14, an error)."""

    def near(r: dict[str, Any]) -> bool:
        distance = _num(r.get("distance_to_tumour_mm"))
        return r.get("tissue_status") == "adjacent_normal" or (distance is not None and distance < ADJACENT_MM)

    def message(r: dict[str, Any]) -> str:
        distance = _num(r.get("distance_to_tumour_mm"))
        where = f"{distance:g} mm from tumour" if distance is not None else "adjacent to tumour"
        return f"normal tissue {where} (< 2 cm): tumour-in-normal contamination"

    return _flag(sel, lambda r: r["role"] == "normal_tissue" and near(r), message)


def safe_identifiers(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 9: identifiers only letters, digits, '.', '_', '-' (no spaces, no colons)."""
    out: list[tuple[str | None, str | None, str]] = []
    for donor in (d["donor_code"] for d in ctx.donor_records):
        if not SAFE_CODE.match(str(donor)):
            out.append((str(donor), None, f"donor code {donor!r} is not safe for every pipeline"))
    for r in sel:
        for column in ("specimen_code", "region_code", "lesion_code"):
            value = r.get(column)
            if isinstance(value, str) and not SAFE_CODE.match(value):
                out.append(
                    (
                        r["donor_code"],
                        r["specimen_code"],
                        f"{column} {value!r} is not safe for every pipeline",
                    )
                )
    return out


def sex_recorded(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 10: sex recorded (pipelines use it for X/Y copy number)."""
    return _flag_donors(
        ctx,
        lambda r: r.get("sex") not in ("male", "female"),
        lambda r: f"sex is {r['sex']}: pipelines get NA and cannot call X/Y copy number",
    )


def one_assay_per_donor(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 11: one DNA assay per donor within a plan: somatic calls of a tumour sample are made against the germline
    normal, so mixing WGS, exome and panel restricts them to the targets all share (matched RNA-seq is not a
    second DNA assay)."""
    assays: dict[str, set[str]] = {}
    for r in sel:
        if r["assay"] in DNA_ASSAYS:
            assays.setdefault(str(r["donor_code"]), set()).add(str(r["assay"]))
    return [
        (donor, None, f"DNA samples use {', '.join(_ASSAY_TEXT[a] for a in sorted(found))}: somatic calls are limited "
                      "to the targets all share (one DNA assay per donor, or a second plan)")
        for donor, found in sorted(assays.items())
        if len(found) > 1
    ]


def dna_assay_material(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 11: a DNA assay (WGS, WES, panel) takes DNA, or material DNA can be extracted from (never RNA or plasma)."""
    return _flag(
        sel,
        lambda r: r["assay"] in DNA_ASSAYS and r.get("material_type") not in DNA_ASSAY_MATERIALS,
        lambda r: f"{_ASSAY_TEXT[r['assay']]} sample is {r.get('material_type')} material: a DNA assay needs a DNA "
        "extract, tissue or blood",
    )


def rna_seq_material(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 11: an RNA-seq sample is RNA, or tissue RNA can still be extracted from (never a DNA extract or blood)."""
    return _flag(
        sel,
        lambda r: r["assay"] == Assay.rna_seq and r.get("material_type") not in RNA_SEQ_MATERIALS,
        lambda r: f"RNA-seq sample is {r.get('material_type')} material: RNA-seq needs an RNA extract or tissue to "
        "extract it from",
    )


def rna_seq_paired(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 11: a matched RNA-seq sample has a DNA sample of the same region in the plan (expression is read
    against that region's clones), unless the whole plan is RNA-seq."""
    if not ctx.dna:
        return []
    unpaired = {code for code, dna in pairs(sel).items() if dna is None}
    return _flag(
        sel,
        lambda r: r["specimen_code"] in unpaired,
        lambda r: f"RNA-seq of region {r.get('region_code')} has no DNA sample of that region in the plan: add one "
        "to pair expression with the region's clones",
    )


def genomic_consent(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 12: consent covers genomic sequencing, and was not withdrawn."""
    return _flag_donors(
        ctx,
        lambda r: bool(r.get("withdrawn")) or not r.get("genomic_sequencing"),
        lambda r: "consent was withdrawn: the donor's material is blocked from plans"
        if r.get("withdrawn")
        else "consent does not cover genomic sequencing",
    )


def model_material_role(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 13: material grown in a model takes the model role, and only it does."""

    def message(r: dict[str, Any]) -> str:
        if is_model(r):
            return (
                f"grown in {model_text(r)} (from {r.get('model_source_code')}): it is not the patient's "
                f"{str(r['role']).replace('_', ' ')}; give it the model role"
            )
        return "role model, but this is the patient's own material (not grown in a model)"

    return _flag(sel, lambda r: is_model(r) != (r["role"] == MODEL_ROLE), message)


def model_source_paired(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 13: a model sample is paired with a tumour sample of the patient region its model came from."""
    tumour_regions = {(r["donor_code"], r["region_code"]) for r in sel if r["role"] == "tumour" and not is_model(r)}
    return _flag(
        sel,
        lambda r: r["role"] == MODEL_ROLE and is_model(r) and (r["donor_code"], r["region_code"]) not in tumour_regions,
        lambda r: f"{model_text(r)} came from {r.get('model_source_code')} (region {r['region_code']}): add a tumour "
        "sample of that region to compare it with",
    )


def model_established(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 13: a model sample comes from an established model and a passage that passed QC."""
    facts = {(m["model_code"], m.get("passage")): m for m in ctx.models}
    status = {m["model_code"]: m.get("status") for m in ctx.models}
    out: Out = []
    for r in sel:
        if r["role"] != MODEL_ROLE or not is_model(r) or r["model_code"] not in status:
            continue
        problems = []
        if status[r["model_code"]] not in ESTABLISHED_OR_BEYOND:
            problems.append(f"model is {status[r['model_code']]}, not established")
        passage = facts.get((r["model_code"], r.get("passage")))
        if passage is None or not passage.get("qc_passed"):
            problems.append(f"passage {r.get('passage')} has no passed QC")
        if problems:
            out.append((r["donor_code"], r["specimen_code"], f"{model_text(r)}: " + "; ".join(problems)))
    return out


def model_samples_present(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 13: a model-versus-tumour plan holds at least one model sample per donor."""
    if ctx.purpose != PlanPurpose.model_vs_tumour:
        return []
    with_models = {r["donor_code"] for r in sel if r["role"] == MODEL_ROLE}
    return _flag_donors(
        ctx,
        lambda r: r["donor_code"] not in with_models,
        lambda r: "a model-versus-tumour plan without a model sample: add an established model's passage material",
    )


def specimen_available(ctx: PlanContext, sel: Rows) -> Out:
    """A selected specimen must still be here (not depleted, disposed of or distributed)."""
    return _flag(sel, lambda r: r["status"] in UNAVAILABLE, lambda r: f"specimen is {r['status']}")


def role_matches_site(ctx: PlanContext, sel: Rows) -> Out:
    """A tumour role needs a tumour region; a normal role must not be one (the model role: rule 13)."""
    return _flag(
        sel,
        lambda r: r["role"] != MODEL_ROLE and (r["role"] == "tumour") != (r.get("site_kind") == "tumour_region"),
        lambda r: f"role {r['role']} does not fit a {r.get('site_kind')} sample",
    )


RULES: tuple[Rule, ...] = (
    Rule("one_germline_normal", "error", "exactly one germline normal per donor", one_germline_normal),
    Rule("germline_normal_source", "error", "germline normal is blood or distant normal (never adjacent, or marrow "
          "or node of a donor with bone, marrow or nodal disease)", germline_normal_source),
    Rule("min_tumour_samples", "error", "at least two tumour samples per donor", min_tumour_samples),
    Rule("min_regions_per_lesion", "warning", "at least two regions per lesion studied", min_regions_per_lesion),
    Rule("primary_site_named", "error", "migration analyses name the primary site (or unknown primary)",
          primary_site_named),
    Rule("primary_sampled", "error", "migration analyses sample the primary or declare it unsampled with the reason",
          primary_sampled),
    Rule("local_recurrence_not_primary", "warning", "a local recurrence in a migration analysis is not the primary",
          local_recurrence_not_primary),
    Rule("metastatic_sites_sampled", "warning", "migration analyses sample every metastatic site",
          metastatic_sites_sampled),
    Rule("lesion_kind_known", "warning", "tumour samples come from lesions of a known kind", lesion_kind_known),
    Rule("cellularity_recorded", "error", "tumour cellularity recorded for every tumour sample", cellularity_recorded),
    Rule("cellularity_minimum", "error", "tumour samples below 20 % cellularity excluded", cellularity_minimum),
    Rule("cellularity_low", "warning", "tumour samples of 20-30 % cellularity", cellularity_low),
    Rule("wgs_ffpe", "warning", "WGS on FFPE material", wgs_ffpe),
    Rule("acid_decalcified", "error", "no DNA assay on acid-decalcified material", acid_decalcified),
    Rule("edta_hours_recorded", "warning", "EDTA decalcification has its hours recorded", edta_hours_recorded),
    Rule("input_requirements", "error", "extracts meet each sample's assay input at its depth (ng, DIN, RIN, DV200)",
          input_requirements),
    Rule("nucleic_acid_qc", "warning", "nucleic-acid quantity and quality recorded (A260/280 in range)",
          nucleic_acid_qc),
    Rule("pmi_recorded", "warning", "PMI recorded", pmi_recorded),
    Rule("pmi_over_limit", "warning", "PMI above the limit", pmi_over_limit),
    Rule("adjacent_normal", "warning", "normal tissue within 2 cm of tumour", adjacent_normal),
    Rule("safe_identifiers", "error", "identifiers safe for every pipeline", safe_identifiers),
    Rule("sex_recorded", "warning", "sex recorded", sex_recorded),
    Rule("one_assay_per_donor", "warning", "one DNA assay per donor within a plan", one_assay_per_donor),
    Rule("dna_assay_material", "error", "DNA assays take DNA, tissue or blood", dna_assay_material),
    Rule("rna_seq_material", "error", "RNA-seq takes RNA or tissue", rna_seq_material),
    Rule("rna_seq_paired", "warning", "matched RNA-seq has a DNA sample of the same region", rna_seq_paired),
    Rule("genomic_consent", "error", "consent covers genomic sequencing and was not withdrawn", genomic_consent),
    Rule("model_material_role", "error", "material grown in a model takes the model role, and only it",
          model_material_role),
    Rule("model_source_paired", "error", "a model sample is paired with a tumour sample of its source region",
          model_source_paired),
    Rule("model_established", "warning", "model samples come from an established model's QC-passed passage",
          model_established),
    Rule("model_samples_present", "error", "a model-versus-tumour plan holds a model sample per donor",
          model_samples_present),
    Rule("specimen_available", "error", "selected specimens are still available", specimen_available),
    Rule("role_matches_site", "error", "roles fit the kind of sample", role_matches_site),
)
RULE_NAMES = tuple(r.name for r in RULES)


def severities(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each rule's severity: the default, changed by ``overrides`` (default: the ``plan_rule_severity`` setting)."""
    given = dict(get_settings().plan_rule_severity if overrides is None else overrides)
    unknown = sorted(set(given) - set(RULE_NAMES))
    if unknown:
        raise invalid("plan_rule_severity", unknown, f"unknown rule(s); rules are {', '.join(RULE_NAMES)}")
    for name, severity in given.items():
        if severity not in SEVERITIES:
            raise invalid(f"plan_rule_severity.{name}", severity, f"expected one of {', '.join(SEVERITIES)}")
    return {r.name: given.get(r.name, r.severity) for r in RULES}


@dataclass
class Report:
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [asdict(f) for f in self.findings], columns=["rule", "severity", "donor", "specimen", "message"]
        )

    def to_records(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self.findings]

    def summary(self) -> str:
        return f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"


def run_rules(ctx: PlanContext, *, overrides: Mapping[str, str] | None = None) -> Report:
    """Every rule on the context; findings ordered errors first, then by rule order."""
    levels = severities(overrides)
    sel = ctx.selected()
    findings: list[Finding] = []
    for rule in RULES:
        severity = levels[rule.name]
        if severity == "off":
            continue
        for donor, specimen, message in rule.check(ctx, sel):
            findings.append(Finding(rule.name, severity, donor, specimen, message))
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: rank[f.severity])
    return Report(findings)


def available_ng(row: Mapping[str, Any]) -> float | None:
    """Nucleic acid left in a DNA/RNA specimen: remaining quantity in ng, else the recorded yield."""
    if row.get("unit") == "ng":
        return _num(row.get("quantity_remaining"))
    return _num(row.get("yield_ng"))


class PlanRulesError(ValidationError):
    """The plan breaks rules at error severity; ``report`` holds every finding."""

    def __init__(self, plan_code: str, report: Report, *, action: str = "approval") -> None:
        self.report = report
        first = "; ".join(
            f"{f.rule}: {' '.join(x for x in (f.donor, f.specimen) if x)}: {f.message}"
            for f in report.errors[:3]
        )
        more = f" (and {len(report.errors) - 3} more)" if len(report.errors) > 3 else ""
        super().__init__(
            f"plan {plan_code}: {action} refused, {len(report.errors)} rule error(s): {first}{more}",
            field="plan",
            value=plan_code,
        )


__all__ = [
    "MODEL_ROLE",
    "ROLES",
    "RULES",
    "RULE_NAMES",
    "SEVERITIES",
    "Finding",
    "InputRequirements",
    "PlanContext",
    "PlanRulesError",
    "Report",
    "Rule",
    "available_ng",
    "germline_problem",
    "involvement",
    "is_model",
    "resolve_lineage",
    "run_rules",
    "severities",
]
