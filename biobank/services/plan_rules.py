"""The planning rules of DOMAIN.md §6, one named check each, with a default severity a setting can change.

Every check is a pure function of a :class:`PlanContext` (frames from :mod:`biobank.queries.exports`) returning
:class:`Finding` rows, so the dashboard can re-run the whole report on every toggle without touching the database.
Severities come from :data:`RULES` unless ``BIOBANK_PLAN_RULE_SEVERITY`` overrides them, e.g.
``BIOBANK_PLAN_RULE_SEVERITY='{"min_regions_per_lesion": "error", "sex_recorded": "off"}'``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from biobank.config import get_settings
from biobank.domain.codes import SAFE_CODE
from biobank.domain.errors import ValidationError, invalid
from biobank.domain.vocab import ACID_DECALCIFICATION
from biobank.models.plans import DNA_ASSAYS, PlanPurpose

SEVERITIES = ("error", "warning", "info", "off")

#: Minimum nucleic acid (ng) a sample needs for each assay (common library-prep inputs).
MIN_INPUT_NG = {"wgs": 1000.0, "wes": 200.0, "panel": 50.0, "rna_seq": 300.0}
A260_280_RANGE = (1.8, 2.1)
MIN_DIN_WGS = 7.0
MIN_DV200_FFPE = 30.0
CELLULARITY_EXCLUDE = 20.0
CELLULARITY_WARN = 30.0
ADJACENT_MM = 20.0
UNAVAILABLE = frozenset({"depleted", "disposed", "distributed"})
_ACID = frozenset(a.value for a in ACID_DECALCIFICATION)


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
    """What the rules read: the plan's settings, its donors, every specimen of them, and the selection."""

    purpose: str
    assay: str
    donors: pd.DataFrame | list[dict[str, Any]]  # query.donor_frame rows of the plan's donors
    specimens: pd.DataFrame | list[dict[str, Any]]  # query.specimen_records of every specimen of those donors
    selection: pd.DataFrame  # specimen_id, role
    primary_site_code: str | None = None
    unknown_primary: bool = False
    pmi_limit_hours: float = field(default_factory=lambda: get_settings().pmi_limit_hours)

    def __post_init__(self) -> None:
        # Plain records: the rules loop over a few hundred rows, where pandas' per-row costs would dominate.
        self.donor_records = _records(self.donors)
        self.records = _records(self.specimens)

    def selected(self) -> list[dict[str, Any]]:
        """The selected specimens (records with their ``role``), in selection order."""
        by_id = {r["specimen_id"]: r for r in self.records}
        roles = zip(self.selection["specimen_id"].tolist(), self.selection["role"].tolist(), strict=True)
        return [by_id[int(i)] | {"role": role} for i, role in roles if int(i) in by_id]

    def selected_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.selected(), columns=[*(self.records[0] if self.records else {}), "role"])

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


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _records(rows: pd.DataFrame | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as plain dicts with NaN as None (a frame is converted once)."""
    if isinstance(rows, pd.DataFrame):
        rows = [{str(k): v for k, v in row.items()} for row in rows.to_dict(orient="records")]
    return [{k: _clean(v) for k, v in row.items()} for row in rows]


_rows = _records


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
    """Rule 1: exactly one germline normal per donor (DNA assays)."""
    if not ctx.dna:
        return []
    out: list[tuple[str | None, str | None, str]] = []
    for donor in (d["donor_code"] for d in ctx.donor_records):
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


def min_tumour_samples(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 2: at least two tumour samples per donor."""
    out: list[tuple[str | None, str | None, str]] = []
    for donor in (d["donor_code"] for d in ctx.donor_records):
        n = sum(1 for r in sel if r["donor_code"] == donor and r["role"] == "tumour")
        if n < 2:
            out.append((donor, None, f"{n} tumour sample(s); clonal reconstruction needs at least two"))
    return out


def min_regions_per_lesion(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 2: at least two regions of each lesion studied."""
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
        if r.get("lesion_kind") in ("metastasis", "lymph_node") and r["status"] not in UNAVAILABLE
    }
    chosen = {(r["donor_code"], r["lesion_code"]) for r in sel if r["role"] == "tumour"}
    out: list[tuple[str | None, str | None, str]] = []
    for donor, lesion, site in sorted(available):
        if (donor, lesion) not in chosen:
            out.append((str(donor), None, f"metastatic lesion {lesion} ({site}) has no sample in the plan"))
    return out


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
    """Rule 5: WGS on FFPE material (formalin artefacts)."""
    if ctx.assay != "wgs":
        return []
    return _flag(
        sel,
        lambda r: _origin_format(r) == "ffpe",
        lambda r: "WGS on FFPE material: expect formalin artefacts (C>T) and uneven coverage",
    )


def wgs_acid_decalcified(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 5: WGS on acid-decalcified material (acid destroys DNA)."""
    if ctx.assay != "wgs":
        return []
    return _flag(
        sel,
        lambda r: r.get("decalcification_agent") in _ACID,
        lambda r: f"WGS on material decalcified with {r['decalcification_agent']}: acid destroys DNA",
    )


def nucleic_acid_qc(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 6: quantity and quality recorded (A260/280 1.8-2.1; DIN for WGS; DV200 > 30 % for FFPE RNA)."""
    out: list[tuple[str | None, str | None, str]] = []
    analyte = "dna" if ctx.dna else "rna"
    need = MIN_INPUT_NG.get(ctx.assay, 0.0)
    for r in sel:
        donor, code = r["donor_code"], r["specimen_code"]
        if r.get("material_type") != analyte:
            out.append((donor, code, f"no {analyte.upper()} extracted yet: quantity and quality unknown"))
            continue
        problems = []
        amount = available_ng(r)
        if amount is None:
            problems.append("quantity not recorded")
        elif amount < need:
            problems.append(f"{amount:g} ng left, {ctx.assay} needs {need:g} ng")
        ratio = _num(r.get("a260_280"))
        if ratio is None:
            problems.append("A260/280 not recorded")
        elif not A260_280_RANGE[0] <= ratio <= A260_280_RANGE[1]:
            problems.append(f"A260/280 {ratio:g} outside {A260_280_RANGE[0]}-{A260_280_RANGE[1]}")
        if ctx.assay == "wgs":
            din = _num(r.get("din"))
            if din is None:
                problems.append("DIN not recorded (WGS)")
            elif din < MIN_DIN_WGS:
                problems.append(f"DIN {din:g} below {MIN_DIN_WGS:g}")
        if analyte == "rna" and _origin_format(r) == "ffpe":
            dv200 = _num(r.get("dv200_pct"))
            if dv200 is None or dv200 <= MIN_DV200_FFPE:
                problems.append(
                    f"FFPE RNA needs DV200 > {MIN_DV200_FFPE:g} % (recorded: {dv200 if dv200 is not None else 'none'})"
                )
        if problems:
            out.append((donor, code, "; ".join(problems)))
    return out


def pmi_recorded(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 7: the post-mortem interval is known for post-mortem material."""
    return _flag(
        sel,
        lambda r: _num(r.get("pmi_hours")) is None and r["site_kind"] != "premortem_blood",
        lambda r: "PMI unknown (no time of death or of collection)",
    )


def pmi_over_limit(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 7: PMI above the limit."""
    return _flag(
        sel,
        lambda r: (_num(r.get("pmi_hours")) or 0.0) > ctx.pmi_limit_hours and r["site_kind"] != "premortem_blood",
        lambda r: f"PMI {r['pmi_hours']:.1f} h is above the {ctx.pmi_limit_hours:g} h limit",
    )


def adjacent_normal(ctx: PlanContext, sel: Rows) -> Out:
    """Rule 8: normal tissue within 2 cm of tumour may carry tumour cells."""

    def near(r: dict[str, Any]) -> bool:
        distance = _num(r.get("distance_to_tumour_mm"))
        return r.get("tissue_status") == "adjacent_normal" or (distance is not None and distance < ADJACENT_MM)

    def message(r: dict[str, Any]) -> str:
        distance = _num(r.get("distance_to_tumour_mm"))
        where = f"{distance:g} mm from tumour" if distance is not None else "adjacent to tumour"
        return f"normal tissue {where} (< 2 cm): tumour-in-normal contamination"

    return _flag(sel, lambda r: r["role"] in ("germline_normal", "normal_tissue") and near(r), message)


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
    """Rule 11: one assay per donor within a plan (a DNA plan holding RNA, or the reverse, is a second assay)."""
    other = "rna" if ctx.dna else "dna"
    return _flag(
        sel,
        lambda r: r.get("material_type") == other,
        lambda r: f"{other.upper()} in a {ctx.assay} plan: one assay per donor (make a second plan)",
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


def specimen_available(ctx: PlanContext, sel: Rows) -> Out:
    """A selected specimen must still be here (not depleted, disposed of or distributed)."""
    return _flag(sel, lambda r: r["status"] in UNAVAILABLE, lambda r: f"specimen is {r['status']}")


def role_matches_site(ctx: PlanContext, sel: Rows) -> Out:
    """A tumour role needs a tumour region; a normal role must not be one."""
    return _flag(
        sel,
        lambda r: (r["role"] == "tumour") != (r.get("site_kind") == "tumour_region"),
        lambda r: f"role {r['role']} does not fit a {r.get('site_kind')} sample",
    )


RULES: tuple[Rule, ...] = (
    Rule("one_germline_normal", "error", "exactly one germline normal per donor", one_germline_normal),
    Rule("min_tumour_samples", "error", "at least two tumour samples per donor", min_tumour_samples),
    Rule(
        "min_regions_per_lesion", "warning", "at least two regions per lesion studied", min_regions_per_lesion
    ),
    Rule(
        "primary_site_named",
        "error",
        "migration analyses name the primary site (or unknown primary)",
        primary_site_named,
    ),
    Rule(
        "metastatic_sites_sampled",
        "warning",
        "migration analyses sample every metastatic site",
        metastatic_sites_sampled,
    ),
    Rule(
        "cellularity_recorded",
        "error",
        "tumour cellularity recorded for every tumour sample",
        cellularity_recorded,
    ),
    Rule(
        "cellularity_minimum", "error", "tumour samples below 20 % cellularity excluded", cellularity_minimum
    ),
    Rule("cellularity_low", "warning", "tumour samples of 20-30 % cellularity", cellularity_low),
    Rule("wgs_ffpe", "warning", "WGS on FFPE material", wgs_ffpe),
    Rule("wgs_acid_decalcified", "error", "WGS on acid-decalcified material", wgs_acid_decalcified),
    Rule(
        "nucleic_acid_qc",
        "warning",
        "nucleic-acid quantity and quality recorded and adequate",
        nucleic_acid_qc,
    ),
    Rule("pmi_recorded", "warning", "PMI recorded", pmi_recorded),
    Rule("pmi_over_limit", "warning", "PMI above the limit", pmi_over_limit),
    Rule("adjacent_normal", "warning", "normal tissue within 2 cm of tumour", adjacent_normal),
    Rule("safe_identifiers", "error", "identifiers safe for every pipeline", safe_identifiers),
    Rule("sex_recorded", "warning", "sex recorded", sex_recorded),
    Rule("one_assay_per_donor", "warning", "one assay per donor within a plan", one_assay_per_donor),
    Rule(
        "genomic_consent", "error", "consent covers genomic sequencing and was not withdrawn", genomic_consent
    ),
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
    "RULES",
    "RULE_NAMES",
    "SEVERITIES",
    "Finding",
    "PlanContext",
    "PlanRulesError",
    "Report",
    "Rule",
    "available_ng",
    "run_rules",
    "severities",
]
