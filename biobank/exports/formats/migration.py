"""Inputs for the migration-history tools MACHINA and Metient: one set of files per donor.

Both tools model one patient at a time (a multi-donor Metient file fails with "Each anatomical site index must
correspond to the same anatomical site label"), so every donor gets files of its own. The files carry what the
biobank knows (which sample comes from which anatomical site, which site is the primary, the sample's purity); the
mutations, their clusters and frequencies come from the user's sequencing analysis and are joined on the sample.

- **MACHINA** (read from its source, elkebir-group/machina): ``<donor>.samples.tsv`` holds the first four columns of
  its frequency file (``-F``: ``sample_index, sample_label, anatomical_site_index, anatomical_site_label``);
  :func:`machina_frequencies` joins it with the user's per-sample cluster frequencies (``sample_label,
  character_label, f_lb, f_ub``) into the whole file, three count lines and a ``#`` header included.
  ``<donor>.colors`` is the colour map (``-c``: a site label and an integer per line). ``<donor>.primary`` holds the
  ``-p`` label(s) when a primary site was sampled; when none was, the file is absent and ``NOTES.txt`` says so
  (``pmh_sankoff`` then tries every site as the primary, ``pmh``/``pmh_tr``/``pmh_ti`` need ``-p`` chosen by hand).
  A leaf labelling is keyed by clone-tree vertex labels (MACHINA: "clone-tree vertex with label ... does not
  exist" otherwise), so it can only be made once the user has a clone tree: :func:`machina_leaf_labeling` labels
  each leaf named ``<clone>_<sample or site label>`` (MACHINA's own naming, ``<character>_<site>``) with its site.
  Labels are whitespace-separated in MACHINA and comma-separated in ``-p``, so they carry no spaces, commas, colons
  or semicolons.
- **Metient** (read from metient 1.0.0, ``util/data_extraction_util.py``): ``<donor>.tsv``, one row per tumour
  sample with ``anatomical_site_index`` (0-based, contiguous, the primary first), ``anatomical_site_label``,
  ``site_category`` (``primary``/``metastasis``) and ``purity`` (cellularity / 100, what Metient's
  ``calc_var_read_prob(major_cn, minor_cn, purity)`` needs). The user adds, per mutation and sample,
  ``character_index, character_label, cluster_index, ref, var`` and ``var_read_prob`` (from the copy number and this
  purity). Metient requires each label to map to one index and one category, indices 0..n-1, and a primary site.

Labels come from :class:`~biobank.exports.formats._common.SiteLabeller`: the site label made safe, with the side
added when the laterality distinguishes it, unique per site across the export. Only tumour samples are labelled.

Material grown in a model (role ``model``, or any row with a ``model_code``) is left out of both tools' files, with a
line per donor in ``NOTES.txt`` (:func:`split_models`): a PDX or organoid passage is not an anatomical site of the
patient, and labelling it with its source's site would invent a metastasis. A plan's declaration that the primary
tumour is unsampled, with its reason, is carried into ``NOTES.txt`` too.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from biobank.exports.formats import (
    Problem,
    check_unique_specimens,
    check_vocabulary,
    is_model_material,
    refuse_problems,
    require_columns,
)
from biobank.exports.formats._common import SAFE_ID, SiteLabeller, number, purity, tumour_sites

METIENT_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "donor",
    "anatomical_site_index",
    "anatomical_site_label",
    "site_category",
    "purity",
)
#: Columns the user's mutation table adds before Metient reads the file (its unpooled input).
METIENT_USER_COLUMNS: tuple[str, ...] = (
    "character_index",
    "character_label",
    "cluster_index",
    "ref",
    "var",
    "var_read_prob",
)
#: MACHINA's frequency-file columns (``frequencymatrix.cpp``): ours, then the user's.
MACHINA_SAMPLE_COLUMNS: tuple[str, ...] = (
    "sample_index",
    "sample_label",
    "anatomical_site_index",
    "anatomical_site_label",
)
MACHINA_USER_COLUMNS: tuple[str, ...] = ("character_label", "f_lb", "f_ub")
SAMPLE_REQUIRED = (
    "specimen_code",
    "donor_code",
    "role",
    "lesion_kind",
    "site_code",
    "site_label",
    "laterality",
)


@dataclass(frozen=True)
class MachinaInput:
    """One patient's MACHINA inputs: the sample/site table, the colour map and the ``-p`` value (None: unknown)."""

    donor: str
    samples: pd.DataFrame
    primary: str | None

    @property
    def sites(self) -> dict[str, str]:
        """Sample label -> anatomical-site label."""
        return dict(zip(self.samples["sample_label"], self.samples["anatomical_site_label"], strict=True))

    @property
    def colors(self) -> str:
        """The ``-c`` colour map: each site label with an integer (1, 2, ... in site-index order)."""
        ordered = self.samples.drop_duplicates("anatomical_site_index").sort_values("anatomical_site_index")
        return "".join(f"{label}\t{i + 1}\n" for i, label in enumerate(ordered["anatomical_site_label"]))


def split_models(samples: pd.DataFrame, tool: str = "this tool") -> tuple[pd.DataFrame, list[str]]:
    """The samples without material grown in a model (role ``model`` or a ``model_code``), and one note per donor
    naming what was left out: a model is not an anatomical site, so a site-based tool has no place for it."""
    grown = is_model_material(samples)
    if "role" in samples.columns:
        grown = grown | (samples["role"] == "model")
    if not grown.any():
        return samples, []
    notes = []
    for donor, group in samples[grown].groupby("donor_code", sort=False):
        codes = [str(c) for c in group["specimen_code"]]
        notes.append(
            f"{donor}: {len(codes)} sample(s) grown in a model left out ({', '.join(codes)}): a PDX, organoid or "
            f"cell-line passage is not an anatomical site of the patient, so {tool} has no place for it; compare it "
            "with its source region outside the site-based analysis"
        )
    return samples[~grown].reset_index(drop=True), notes


def unsampled_note(reason: str | None) -> list[str]:
    """The NOTES line of a plan that declares its primary tumour unsampled (none when it declares nothing)."""
    return [f"the plan declares the primary tumour unsampled: {reason}"] if reason else []


def labelled_tumours(samples: pd.DataFrame, labeller: SiteLabeller | None = None) -> pd.DataFrame:
    """Tumour samples (never material grown in a model) with their safe ``anatomical_site_label`` and
    ``site_category``."""
    require_columns(samples, SAMPLE_REQUIRED, frame_name="samples", export="migration")
    check_vocabulary(samples, frame_name="samples", columns=["role", "lesion_kind", "laterality"])
    check_unique_specimens(samples)
    tumours = tumour_sites(split_models(samples)[0], labeller)
    if tumours.empty:
        raise ValueError("no tumour samples selected: a migration history needs at least one")
    return tumours


def _site_indices(group: pd.DataFrame) -> dict[str, int]:
    """0-based site indices for one donor: the primary site(s) first, then the others in input order."""
    ordered = list(dict.fromkeys(group.loc[group["site_category"] == "primary", "anatomical_site_label"]))
    ordered += [label for label in dict.fromkeys(group["anatomical_site_label"]) if label not in ordered]
    return {label: i for i, label in enumerate(ordered)}


def build_machina(samples: pd.DataFrame) -> dict[str, MachinaInput]:
    """MACHINA inputs per donor (in input order); raises if a label or sample ID is unsafe."""
    tumours = labelled_tumours(samples)
    out: dict[str, MachinaInput] = {}
    for donor, group in tumours.groupby("donor_code", sort=False):
        index = _site_indices(group)
        frame = pd.DataFrame(
            {
                "sample_index": range(len(group)),
                "sample_label": [str(s) for s in group["specimen_code"]],
                "anatomical_site_index": [index[label] for label in group["anatomical_site_label"]],
                "anatomical_site_label": list(group["anatomical_site_label"]),
            },
            columns=list(MACHINA_SAMPLE_COLUMNS),
        )
        primaries = list(
            dict.fromkeys(group.loc[group["site_category"] == "primary", "anatomical_site_label"])
        )
        out[str(donor)] = MachinaInput(str(donor), frame, ",".join(primaries) if primaries else None)
    problems = validate_machina(out.values())
    refuse_problems("MACHINA inputs", problems)
    return out


def validate_machina(inputs: Iterable[MachinaInput]) -> list[Problem]:
    """MACHINA's rules: whitespace-free safe labels, indices 0..n-1 with one label each, ``-p`` among the sites."""
    problems: list[Problem] = []
    for item in inputs:
        frame = item.samples
        for n, (sample, label) in enumerate(
            zip(frame["sample_label"], frame["anatomical_site_label"], strict=True), start=1
        ):
            for field, value in (("sample_label", sample), ("anatomical_site_label", label)):
                if not SAFE_ID.match(str(value)):
                    problems.append(
                        Problem(n, field, f"{item.donor}: {value!r} has characters outside [A-Za-z0-9._-]")
                    )
        if sorted(frame["sample_index"]) != list(range(len(frame))):
            problems.append(Problem(None, "sample_index", f"{item.donor}: sample indices must run 0..k-1"))
        sites = frame.drop_duplicates(["anatomical_site_index", "anatomical_site_label"])
        if sites["anatomical_site_index"].duplicated().any() or sites["anatomical_site_label"].duplicated().any():
            problems.append(
                Problem(None, "anatomical_site_index", f"{item.donor}: each site index must have one label")
            )
        if sorted(sites["anatomical_site_index"]) != list(range(len(sites))):
            problems.append(Problem(None, "anatomical_site_index", f"{item.donor}: site indices must run 0..m-1"))
        if item.primary:
            for p in item.primary.split(","):
                if p not in set(frame["anatomical_site_label"]):
                    problems.append(Problem(None, "primary", f"{item.donor}: primary {p!r} labels no sample"))
    return problems


def machina_frequencies(item: MachinaInput, clusters: pd.DataFrame) -> str:
    """MACHINA's frequency file (``-F``) from our sample/site table and the user's cluster frequencies.

    ``clusters`` has one row per sample and mutation cluster: ``sample_label`` (our specimen code),
    ``character_label`` (the cluster), ``f_lb`` and ``f_ub`` (the cell-frequency bounds, 0 <= f_lb <= f_ub <= 1).
    Every cluster needs a row in every sample; a missing pair, an unknown sample or bad bounds is an error naming it.
    """
    require_columns(clusters, ("sample_label", *MACHINA_USER_COLUMNS), frame_name="clusters", export="MACHINA")
    ours = item.samples
    characters = list(dict.fromkeys(str(c) for c in clusters["character_label"]))
    char_index = {c: i for i, c in enumerate(characters)}
    problems: list[Problem] = []
    known = set(ours["sample_label"])
    seen: set[tuple[str, str]] = set()
    for n, row in enumerate(clusters.itertuples(index=False), start=1):
        sample, char = str(row.sample_label), str(row.character_label)
        if sample not in known:
            problems.append(Problem(n, "sample_label", f"{item.donor}: {sample!r} is not a sample of this donor"))
        if not SAFE_ID.match(char):
            problems.append(Problem(n, "character_label", f"{char!r} has characters outside [A-Za-z0-9._-]"))
        lb, ub = number(row.f_lb), number(row.f_ub)
        if lb is None or ub is None or not 0.0 <= lb <= ub <= 1.0:
            problems.append(Problem(n, "f_lb", f"{sample}/{char}: bounds must satisfy 0 <= f_lb <= f_ub <= 1"))
        if (sample, char) in seen:
            problems.append(Problem(n, "character_label", f"{sample}/{char}: given twice"))
        seen.add((sample, char))
    missing = [f"{s}/{c}" for s in ours["sample_label"] for c in characters if (s, c) not in seen]
    if missing:
        problems.append(Problem(None, "character_label", f"{item.donor}: no frequency for {', '.join(missing[:5])}"))
    refuse_problems("MACHINA frequencies", problems)

    joined = clusters.astype({"sample_label": str, "character_label": str}).merge(ours, on="sample_label")
    joined["character_index"] = joined["character_label"].map(char_index)
    joined = joined.sort_values(["sample_index", "character_index"])
    m = ours["anatomical_site_index"].nunique()
    lines = [
        f"{m} #anatomical sites",
        f"{len(ours)} #samples",
        f"{len(characters)} #mutations",
        "#sample_index\tsample_label\tanatomical_site_index\tanatomical_site_label\tcharacter_index\tcharacter_label"
        "\tf_lb\tf_ub",
    ]
    for row in joined.itertuples(index=False):
        lines.append(
            f"{row.sample_index}\t{row.sample_label}\t{row.anatomical_site_index}\t{row.anatomical_site_label}\t"
            f"{row.character_index}\t{row.character_label}\t{number(row.f_lb)!r}\t{number(row.f_ub)!r}"
        )
    return "\n".join(lines) + "\n"


def machina_leaf_labeling(item: MachinaInput, tree: str) -> str:
    """The leaf labelling of the user's clone tree (an edge list, MACHINA's ``T``), keyed by its vertex labels.

    A leaf named ``<clone>_<sample label>`` or ``<clone>_<site label>`` (MACHINA's own ``<character>_<site>``) gets
    that sample's or site's anatomical-site label; a leaf that names neither is an error naming it.
    """
    edges = [line.split() for line in tree.splitlines() if line.strip()]
    bad = [" ".join(e) for e in edges if len(e) != 2]
    if bad:
        raise ValueError(f"clone tree: lines that are not 'parent child': {', '.join(bad[:5])}")
    parents = {e[0] for e in edges}
    leaves = list(dict.fromkeys(e[1] for e in edges if e[1] not in parents))
    names = {**{s: s for s in set(item.samples["anatomical_site_label"])}, **item.sites}
    suffixes = sorted(names, key=len, reverse=True)
    lines: list[str] = []
    unknown: list[str] = []
    for leaf in leaves:
        match = next((n for n in suffixes if leaf.endswith("_" + n) or leaf == n), None)
        if match is None:
            unknown.append(leaf)
        else:
            lines.append(f"{leaf}\t{names[match]}\n")
    if unknown:
        raise ValueError(
            f"{item.donor}: clone-tree leaves that name no sample or site of this donor: {', '.join(unknown[:5])} "
            "(MACHINA needs each leaf labelled; name leaves <clone>_<sample> or <clone>_<site>)"
        )
    return "".join(lines)


def metient_frame(samples: pd.DataFrame, *, primary_unsampled_reason: str | None = None) -> pd.DataFrame:
    """Metient's sample/site table with purity; raises :class:`ExportValidationError` when Metient's rules fail
    (a missing primary named with the plan's declared reason, when it gives one)."""
    require_columns(samples, ("tumour_cellularity_pct",), frame_name="samples", export="Metient")
    tumours = labelled_tumours(samples)
    rows: list[dict[str, object]] = []
    problems: list[Problem] = []
    for donor, group in tumours.groupby("donor_code", sort=False):
        index = _site_indices(group)
        for _, s in group.iterrows():
            try:
                value = purity(s["tumour_cellularity_pct"])
            except ValueError as exc:
                problems.append(Problem(len(rows) + 1, "purity", f"{s['specimen_code']}: {exc}"))
                value = None
            rows.append(
                {
                    "sample_id": str(s["specimen_code"]),
                    "donor": str(donor),
                    "anatomical_site_index": index[s["anatomical_site_label"]],
                    "anatomical_site_label": s["anatomical_site_label"],
                    "site_category": s["site_category"],
                    "purity": value,
                }
            )
    frame = pd.DataFrame(rows, columns=list(METIENT_COLUMNS))
    frame["anatomical_site_index"] = frame["anatomical_site_index"].astype("int64")
    frame["purity"] = frame["purity"].astype("Float64")
    problems += validate_metient(frame, primary_unsampled_reason=primary_unsampled_reason)
    refuse_problems("Metient sample table", problems)
    return frame


def validate_metient(frame: pd.DataFrame, *, primary_unsampled_reason: str | None = None) -> list[Problem]:
    """Metient's input checks, per donor: index<->label one-to-one, one category per site, indices 0..n-1, a primary
    site present (metastases optional, as Metient allows), labels without colons or whitespace, purity in [0, 1]."""
    problems: list[Problem] = []
    for i, (sample, label) in enumerate(
        zip(frame["sample_id"], frame["anatomical_site_label"], strict=True), 1
    ):
        if not SAFE_ID.match(str(label)):
            problems.append(Problem(i, "anatomical_site_label", f"{sample}: unsafe label {label!r}"))
    if "purity" in frame.columns:
        for i, (sample, value) in enumerate(zip(frame["sample_id"], frame["purity"], strict=True), 1):
            if pd.isna(value):
                problems.append(Problem(i, "purity", f"{sample}: tumour cellularity not recorded"))
            elif not 0.0 < float(value) <= 1.0:
                problems.append(Problem(i, "purity", f"{sample}: purity must be within (0, 1], got {value}"))
    bad_cat = sorted(set(frame["site_category"]) - {"primary", "metastasis"})
    if bad_cat:
        problems.append(Problem(None, "site_category", f"values outside primary/metastasis: {bad_cat}"))
    for donor, g in frame.groupby("donor", sort=False):
        for a, b in (
            ("anatomical_site_index", "anatomical_site_label"),
            ("anatomical_site_label", "anatomical_site_index"),
            ("anatomical_site_index", "site_category"),
        ):
            if (g.groupby(a)[b].nunique() > 1).any():
                problems.append(Problem(None, a, f"{donor}: each {a} must map to one {b}"))
        if set(g["anatomical_site_index"]) != set(range(g["anatomical_site_index"].nunique())):
            problems.append(Problem(None, "anatomical_site_index", f"{donor}: indices must run 0..n-1"))
        if "primary" not in set(g["site_category"]):
            why = (
                f"the plan declares the primary unsampled: {primary_unsampled_reason}"
                if primary_unsampled_reason
                else "primary unknown or not sampled"
            )
            problems.append(
                Problem(
                    None,
                    "site_category",
                    f"{donor}: no sample from a primary site ({why}); Metient needs one (MACHINA can run without -p)",
                )
            )
    return problems


def to_tsv(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, sep="\t", index=False, lineterminator="\n", na_rep="")
    return buf.getvalue()


def build_metient(samples: pd.DataFrame) -> str:
    """Metient's sample/site table of every donor together, as TSV text (split it per donor before Metient)."""
    return to_tsv(metient_frame(samples))


METIENT_README = """Metient inputs: one file per donor (Metient models one patient per file).

<donor>.tsv, one row per tumour sample:
  sample_id              specimen code
  donor                  donor code
  anatomical_site_index  0-based, the primary site first
  anatomical_site_label  the sampled site (no spaces, colons or commas)
  site_category          primary | metastasis
  purity                 tumour cellularity / 100
Your mutation table adds, per mutation and sample (join on sample_id): character_index, character_label,
cluster_index, ref, var, and var_read_prob = major_cn / (purity * (major_cn + minor_cn) + 2 * (1 - purity))
(Metient's calc_var_read_prob). Metient drops the columns it does not use (sample_id, donor, purity).
"""


def metient_files(samples: pd.DataFrame, *, primary_unsampled_reason: str | None = None) -> dict[str, str]:
    """The Metient export as ``{file name: text}``: a README, one table per donor and, when something needs saying
    (model samples left out, the primary declared unsampled), ``NOTES.txt``."""
    frame = metient_frame(samples, primary_unsampled_reason=primary_unsampled_reason)
    files = {"README.txt": METIENT_README}
    for donor, group in frame.groupby("donor", sort=False):
        files[f"{donor}.tsv"] = to_tsv(group.reset_index(drop=True))
    notes = split_models(samples, "Metient")[1] + unsampled_note(primary_unsampled_reason)
    if notes:
        files["NOTES.txt"] = "".join(n + "\n" for n in notes)
    return files


MACHINA_README = """MACHINA inputs: one set of files per donor (MACHINA models one patient at a time).

<donor>.samples.tsv  the first four columns of MACHINA's frequency file (-F), one row per tumour sample:
                     sample_index, sample_label (specimen code), anatomical_site_index (the primary first),
                     anatomical_site_label
<donor>.colors       the colour map (-c): each site label with an integer
<donor>.primary      the primary site label(s) for -p, comma-separated; absent when no primary was sampled
                     (see NOTES.txt)

Frequency file (-F, for pmh_ti and generatemutationtrees): your clustering gives, per sample and mutation cluster,
  sample_label, character_label, f_lb, f_ub   (cell-frequency bounds, 0 <= f_lb <= f_ub <= 1)
Join it on sample_label and write MACHINA's layout: three lines with the number of anatomical sites, samples and
clusters, a '#' header line, then per row
  sample_index sample_label anatomical_site_index anatomical_site_label character_index character_label f_lb f_ub
(biobank.exports.formats.migration.machina_frequencies does this).

Leaf labelling (for pmh_sankoff, pmh, pmh_tr): it is keyed by the vertex labels of your clone tree, not by sample.
Name each leaf <clone>_<sample_label> or <clone>_<anatomical_site_label> (MACHINA's own leaves are
<cluster>_<site>) and label it with that sample's site (biobank.exports.formats.migration.machina_leaf_labeling).
"""


_BY_HAND = "pmh, pmh_tr and pmh_ti need -p chosen by hand"


def machina_files(
    samples: pd.DataFrame, *, primary_unsampled_reason: str | None = None
) -> tuple[dict[str, str], list[str]]:
    """The MACHINA export as ``{file name: text}`` and the notes to show (donors without a sampled primary, with the
    plan's declared reason; model samples left out)."""
    files = {"README.txt": MACHINA_README}
    notes: list[str] = split_models(samples, "MACHINA")[1]
    declared = f" (the plan declares the primary tumour unsampled: {primary_unsampled_reason})"
    for donor, item in build_machina(samples).items():
        files[f"{donor}.samples.tsv"] = to_tsv(item.samples)
        files[f"{donor}.colors"] = item.colors
        if item.primary:
            files[f"{donor}.primary"] = item.primary + "\n"
        else:
            notes.append(
                f"{donor}: no primary site was sampled{declared if primary_unsampled_reason else ''}, so there is no "
                f"{donor}.primary: pmh_sankoff without -p tries every site as the primary; " + _BY_HAND
            )
    if primary_unsampled_reason and not any(n.endswith(_BY_HAND) for n in notes):
        notes += unsampled_note(primary_unsampled_reason)
    if notes:
        files["NOTES.txt"] = "".join(n + "\n" for n in notes)
    return files, notes


def write_migration(folder: str | Path, samples: pd.DataFrame, *, metient: bool = True) -> list[Path]:
    """Write ``machina/`` (and ``metient/``) into ``folder``; return the paths written."""
    out = Path(folder)
    parts = {"machina": machina_files(samples)[0]}
    if metient:
        parts["metient"] = metient_files(samples)
    paths: list[Path] = []
    for sub, files in parts.items():
        (out / sub).mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            p = out / sub / name
            p.write_text(content, encoding="utf-8")
            paths.append(p)
    return paths
