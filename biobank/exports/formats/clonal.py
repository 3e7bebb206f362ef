"""Sample table for clonal deconvolution (PyClone-VI, and a CONIPHER-flavoured variant).

One row per tumour sample: ``sample_id,donor,lesion,region,anatomical_site,site_category,tumour_content,sex``.

- ``anatomical_site`` is the safe site label shared with the migration export (no spaces, colons, commas).
- ``site_category`` is ``primary`` (primary lesion or local recurrence at that site) or ``metastasis``.
- ``tumour_content`` is purity = tumour cellularity / 100, in [0, 1]; PyClone-VI reads it per sample beside its
  mutation rows (``mutation_id,sample_id,ref_counts,alt_counts,major_cn,minor_cn,normal_cn,tumour_content,
  error_rate``).
- ``sex`` is ``XX``/``XY``/``NA`` (what decides ``normal_cn`` on X and Y).

CONIPHER names the sample ``SAMPLE`` and purity ``ACF`` (aberrant cell fraction) beside ``CASE_ID``:
:func:`conipher_frame`.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from biobank.exports.formats import Problem, check_frames, refuse_problems, require_columns
from biobank.exports.formats._common import SiteLabeller, karyotype, purity, text, tumour_sites

COLUMNS: tuple[str, ...] = (
    "sample_id",
    "donor",
    "lesion",
    "region",
    "anatomical_site",
    "site_category",
    "tumour_content",
    "sex",
)
CONIPHER_COLUMNS: tuple[str, ...] = ("CASE_ID", "SAMPLE", "ACF")

DONOR_REQUIRED = ("donor_code", "sex")
SAMPLE_REQUIRED = (
    "specimen_code",
    "donor_code",
    "role",
    "lesion_code",
    "lesion_kind",
    "region_code",
    "site_code",
    "site_label",
    "laterality",
    "tumour_cellularity_pct",
)


def clonal_frame(
    donors: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    labeller: SiteLabeller | None = None,
    allow_missing_purity: bool = False,
) -> pd.DataFrame:
    """The clonal sample table (tumour samples only, in input order).

    A tumour sample without a recorded cellularity is an error (planning rule 4) unless ``allow_missing_purity``,
    which leaves ``tumour_content`` empty.
    """
    check_frames(
        donors,
        samples,
        export="clonal",
        donor_columns=DONOR_REQUIRED,
        sample_columns=SAMPLE_REQUIRED,
        sample_vocabulary=["role", "lesion_kind", "laterality"],
    )

    sex_of = {str(d): karyotype(s) for d, s in zip(donors["donor_code"], donors["sex"], strict=True)}
    tumours = tumour_sites(samples, labeller)
    problems: list[Problem] = []
    rows = []
    for i, (_, s) in enumerate(tumours.iterrows(), start=1):
        try:
            content = purity(s["tumour_cellularity_pct"])
        except ValueError as exc:
            problems.append(Problem(i, "tumour_content", f"{s['specimen_code']}: {exc}"))
            content = None
        if content is None and not allow_missing_purity:
            problems.append(
                Problem(i, "tumour_content", f"{s['specimen_code']}: tumour cellularity not recorded")
            )
        rows.append(
            {
                "sample_id": str(s["specimen_code"]),
                "donor": str(s["donor_code"]),
                "lesion": text(s["lesion_code"]),
                "region": text(s["region_code"]),
                "anatomical_site": s["anatomical_site_label"],
                "site_category": s["site_category"],
                "tumour_content": content,
                "sex": sex_of[str(s["donor_code"])],
            }
        )
    refuse_problems("clonal sample table", problems)
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["tumour_content"] = frame["tumour_content"].astype("Float64")
    return frame


def conipher_frame(clonal: pd.DataFrame) -> pd.DataFrame:
    """CONIPHER's naming of the same table: ``CASE_ID, SAMPLE, ACF``."""
    require_columns(clonal, ("donor", "sample_id", "tumour_content"), frame_name="clonal", export="CONIPHER")
    return pd.DataFrame(
        {"CASE_ID": clonal["donor"], "SAMPLE": clonal["sample_id"], "ACF": clonal["tumour_content"]},
        columns=list(CONIPHER_COLUMNS),
    )


def to_tsv(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, sep="\t", index=False, lineterminator="\n", na_rep="")
    return buf.getvalue()


def build_clonal(donors: pd.DataFrame, samples: pd.DataFrame, *, allow_missing_purity: bool = False) -> str:
    """The clonal sample table as TSV text."""
    return to_tsv(clonal_frame(donors, samples, allow_missing_purity=allow_missing_purity))


def build_conipher(donors: pd.DataFrame, samples: pd.DataFrame, *, allow_missing_purity: bool = False) -> str:
    """The CONIPHER-flavoured sample table (``CASE_ID, SAMPLE, ACF``) as TSV text."""
    return to_tsv(conipher_frame(clonal_frame(donors, samples, allow_missing_purity=allow_missing_purity)))


def write_clonal(
    folder: str | Path,
    donors: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    allow_missing_purity: bool = False,
    conipher: bool = True,
) -> list[Path]:
    """Write ``clonal_samples.tsv`` (and ``conipher_samples.tsv``) into ``folder``; return the paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    frame = clonal_frame(donors, samples, allow_missing_purity=allow_missing_purity)
    paths = [out / "clonal_samples.tsv"]
    paths[0].write_text(to_tsv(frame), encoding="utf-8")
    if conipher:
        paths.append(out / "conipher_samples.tsv")
        paths[1].write_text(to_tsv(conipher_frame(frame)), encoding="utf-8")
    return paths
