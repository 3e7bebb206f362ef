"""Anatomical-site labelling for migration-history tools: MACHINA and Metient.

- **MACHINA** (``pmh``, ``pmh_sankoff``, ``pmh_pr``): a leaf-labelling file per patient, one line per sample with the
  sample label and its anatomical-site label separated by a tab; the primary site(s) are given with ``-p``
  (comma-separated labels). Labels are whitespace-separated in MACHINA and comma-separated in ``-p``, so they carry
  no spaces, commas, colons or semicolons.
- **Metient**: one row per tumour sample with ``anatomical_site_index`` (0-based, contiguous per patient),
  ``anatomical_site_label`` and ``site_category`` (``primary``/``metastasis``); Metient requires each label to map to
  one index and one category, and both categories to be present for a patient.

Labels come from :class:`~biobank.exports.formats._common.SiteLabeller`: the site label made safe, with the side
added when the laterality distinguishes it, unique per site across the export. Only tumour samples are labelled.
A donor whose primary was not sampled (or is unknown) gets no ``-p`` label for MACHINA (it then tries every site)
and is an error for Metient.
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
    refuse_problems,
    require_columns,
)
from biobank.exports.formats._common import SAFE_ID, SiteLabeller, tumour_sites

METIENT_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "donor",
    "anatomical_site_index",
    "anatomical_site_label",
    "site_category",
)
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
    """One patient's MACHINA inputs: the leaf-labelling text and the ``-p`` value (None = unknown primary)."""

    donor: str
    labeling: str
    primary: str | None

    @property
    def labels(self) -> dict[str, str]:
        return dict(line.split("\t") for line in self.labeling.splitlines() if line)


def labelled_tumours(samples: pd.DataFrame, labeller: SiteLabeller | None = None) -> pd.DataFrame:
    """Tumour samples with their safe ``anatomical_site_label`` and ``site_category``."""
    require_columns(samples, SAMPLE_REQUIRED, frame_name="samples", export="migration")
    check_vocabulary(samples, frame_name="samples", columns=["role", "lesion_kind", "laterality"])
    check_unique_specimens(samples)
    return tumour_sites(samples, labeller)


def build_machina(samples: pd.DataFrame) -> dict[str, MachinaInput]:
    """MACHINA inputs per donor (in input order); raises if a label or sample ID is unsafe."""
    tumours = labelled_tumours(samples)
    out: dict[str, MachinaInput] = {}
    for donor, group in tumours.groupby("donor_code", sort=False):
        lines = [
            f"{s}\t{label}\n"
            for s, label in zip(group["specimen_code"], group["anatomical_site_label"], strict=True)
        ]
        primaries = list(
            dict.fromkeys(group.loc[group["site_category"] == "primary", "anatomical_site_label"])
        )
        out[str(donor)] = MachinaInput(str(donor), "".join(lines), ",".join(primaries) if primaries else None)
    problems = validate_machina(out.values())
    refuse_problems("MACHINA labelling", problems)
    return out


def validate_machina(inputs: Iterable[MachinaInput]) -> list[Problem]:
    """MACHINA's rules: two whitespace-free fields per line, safe labels, the ``-p`` labels among the site labels."""
    problems: list[Problem] = []
    for item in inputs:
        sites: set[str] = set()
        for n, line in enumerate(item.labeling.splitlines(), start=1):
            parts = line.split("\t")
            if len(parts) != 2 or any(not p or any(ch.isspace() for ch in p) for p in parts):
                problems.append(Problem(n, None, f"{item.donor}: line {line!r} is not 'sample<TAB>label'"))
                continue
            for field, value in zip(("sample", "label"), parts, strict=True):
                if not SAFE_ID.match(value):
                    problems.append(
                        Problem(n, field, f"{item.donor}: {value!r} has characters outside [A-Za-z0-9._-]")
                    )
            sites.add(parts[1])
        if item.primary:
            for p in item.primary.split(","):
                if p not in sites:
                    problems.append(Problem(None, "primary", f"{item.donor}: primary {p!r} labels no sample"))
    return problems


def metient_frame(samples: pd.DataFrame) -> pd.DataFrame:
    """Metient's sample/site table; raises :class:`ExportValidationError` when Metient's rules fail."""
    tumours = labelled_tumours(samples)
    rows = []
    for donor, group in tumours.groupby("donor_code", sort=False):
        ordered = list(dict.fromkeys(group.loc[group["site_category"] == "primary", "anatomical_site_label"]))
        ordered += [label for label in dict.fromkeys(group["anatomical_site_label"]) if label not in ordered]
        index = {label: i for i, label in enumerate(ordered)}
        for _, s in group.iterrows():
            rows.append(
                {
                    "sample_id": str(s["specimen_code"]),
                    "donor": str(donor),
                    "anatomical_site_index": index[s["anatomical_site_label"]],
                    "anatomical_site_label": s["anatomical_site_label"],
                    "site_category": s["site_category"],
                }
            )
    frame = pd.DataFrame(rows, columns=list(METIENT_COLUMNS))
    frame["anatomical_site_index"] = frame["anatomical_site_index"].astype("int64")
    problems = validate_metient(frame)
    refuse_problems("Metient sample table", problems)
    return frame


def validate_metient(frame: pd.DataFrame) -> list[Problem]:
    """Metient's input checks, per donor: index<->label one-to-one, one category per site, indices 0..n-1, both a
    primary and a metastatic site present, and labels without colons or whitespace."""
    problems: list[Problem] = []
    for i, (sample, label) in enumerate(
        zip(frame["sample_id"], frame["anatomical_site_label"], strict=True), 1
    ):
        if not SAFE_ID.match(str(label)):
            problems.append(Problem(i, "anatomical_site_label", f"{sample}: unsafe label {label!r}"))
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
        cats = set(g["site_category"])
        if "primary" not in cats:
            problems.append(
                Problem(
                    None,
                    "site_category",
                    f"{donor}: no sample from a primary site (primary unknown or not sampled); Metient needs one "
                    "(MACHINA can run without -p)",
                )
            )
        if "metastasis" not in cats:
            problems.append(Problem(None, "site_category", f"{donor}: no metastatic site sampled"))
    return problems


def to_tsv(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, sep="\t", index=False, lineterminator="\n")
    return buf.getvalue()


def build_metient(samples: pd.DataFrame) -> str:
    """Metient's sample/site table as TSV text."""
    return to_tsv(metient_frame(samples))


def write_migration(folder: str | Path, samples: pd.DataFrame, *, metient: bool = True) -> list[Path]:
    """Write ``machina/<donor>.labeling`` (+ ``machina/<donor>.primary`` holding the ``-p`` value when known) and
    ``metient_samples.tsv``; return the paths written."""
    out = Path(folder)
    machina = build_machina(samples)
    metient_text = build_metient(samples) if metient else None
    (out / "machina").mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for donor, item in machina.items():
        p = out / "machina" / f"{donor}.labeling"
        p.write_text(item.labeling, encoding="utf-8")
        paths.append(p)
        if item.primary:
            q = out / "machina" / f"{donor}.primary"
            q.write_text(item.primary + "\n", encoding="utf-8")
            paths.append(q)
    if metient_text is not None:
        p = out / "metient_samples.tsv"
        p.write_text(metient_text, encoding="utf-8")
        paths.append(p)
    return paths
