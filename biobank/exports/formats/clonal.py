"""Sample tables for clonal deconvolution: PyClone-VI, and CONIPHER's naming of the same table, one file per donor.

A clonal tool fits one tumour at a time: PyClone-VI keeps only the mutations present in every sample of its file
(``need at least one array to stack`` when two donors share none), CONIPHER takes one ``CASE_ID``. So every donor gets
a file of its own (:func:`per_donor`).

PyClone-VI (``<donor>.tsv``), one row per tumour sample: ``sample_id,donor,lesion,region,anatomical_site,
site_category,tumour_content,sex``.

- ``sample_id`` is the specimen code, kept as it is by PyClone-VI (read as a string).
- ``anatomical_site`` is the safe site label shared with the migration export (no spaces, colons, commas).
- ``site_category`` is ``primary`` (primary lesion or local recurrence at that site) or ``metastasis``.
- ``tumour_content`` is purity = tumour cellularity / 100, in [0, 1].
- ``sex`` is ``XX``/``XY``/``NA`` (what decides ``normal_cn`` on X and Y: 1 for a male's X and Y, else 2).

The user's mutation table supplies, per mutation and sample, ``mutation_id,sample_id,ref_counts,alt_counts,major_cn,
minor_cn`` (and ``error_rate`` if wanted); joined on ``sample_id`` with this table (``tumour_content``, and
``normal_cn`` from ``sex`` and the chromosome) it is PyClone-VI's input: ``mutation_id,sample_id,ref_counts,
alt_counts,major_cn,minor_cn,normal_cn,tumour_content,error_rate`` (:data:`PYCLONE_VI_COLUMNS`).

CONIPHER (``<donor>.conipher.tsv``): ``CASE_ID,SAMPLE,ACF,PLOIDY``. CONIPHER rewrites ``-`` in ``SAMPLE`` to ``.``
when it reads its input (and R's column names rewrite other characters), so ``SAMPLE`` is written in that alphabet
already (:func:`conipher_sample_id`) and ``conipher_sample_ids.tsv`` maps it back to the specimen code. ``ACF``
(aberrant cell fraction) is the purity. ``PLOIDY`` is 2 (diploid) because the biobank measures no tumour ploidy:
CONIPHER 2.1 requires the column and carries it into its segment table without computing with it; replace it with a
copy-number caller's estimate when there is one. The user adds ``CHR,POS,REF,ALT,REF_COUNT,VAR_COUNT,DEPTH,
COPY_NUMBER_A,COPY_NUMBER_B`` (and for tree building ``CLUSTER,CCF_PHYLO,CCF_OBS,MUT_COPY``) per mutation and sample.

Material grown in a model (role ``model``, or a row with a ``model_code``) is left out of both tables, with a line per
donor in ``NOTES.txt``: each row is placed at an anatomical site of the patient, which a PDX or organoid is not.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd

from biobank.exports.formats import Problem, check_frames, refuse_problems, require_columns
from biobank.exports.formats._common import SiteLabeller, karyotype, purity, text, tumour_sites
from biobank.exports.formats.migration import split_models

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
CONIPHER_COLUMNS: tuple[str, ...] = ("CASE_ID", "SAMPLE", "ACF", "PLOIDY")
#: Columns of the sample-id mapping written beside the CONIPHER files.
CONIPHER_ID_COLUMNS: tuple[str, ...] = ("CASE_ID", "SAMPLE", "sample_id")
CONIPHER_IDS_FILE = "conipher_sample_ids.tsv"
#: Ploidy written for CONIPHER's required PLOIDY column (see the module docstring).
ASSUMED_PLOIDY = 2.0
#: PyClone-VI's input columns (its README: required, then the optional tumour_content and error_rate).
PYCLONE_VI_COLUMNS: tuple[str, ...] = (
    "mutation_id",
    "sample_id",
    "ref_counts",
    "alt_counts",
    "major_cn",
    "minor_cn",
    "normal_cn",
    "tumour_content",
    "error_rate",
)

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
    """The clonal sample table (tumour samples only, never material grown in a model; in input order).

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
    tumours = tumour_sites(split_models(samples)[0], labeller)
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


def conipher_sample_id(sample_id: str) -> str:
    """The sample ID as CONIPHER keeps it: ``-`` (and any character R's column names change) as ``.``, and an ``X``
    before an ID that does not start with a letter (what R's ``make.names`` does to a column name)."""
    out = re.sub(r"[^A-Za-z0-9._]", ".", str(sample_id))
    if not re.match(r"^[A-Za-z]|^\.(?![0-9])", out):
        out = "X" + out
    return out


def conipher_frame(clonal: pd.DataFrame) -> pd.DataFrame:
    """CONIPHER's naming of the same table: ``CASE_ID, SAMPLE, ACF, PLOIDY`` with SAMPLE in CONIPHER's alphabet.

    Two samples of a donor whose IDs become the same are an error naming both.
    """
    require_columns(clonal, ("donor", "sample_id", "tumour_content"), frame_name="clonal", export="CONIPHER")
    samples = [conipher_sample_id(s) for s in clonal["sample_id"]]
    problems: list[Problem] = []
    seen: dict[tuple[str, str], str] = {}
    for i, (donor, code, sample) in enumerate(zip(clonal["donor"], clonal["sample_id"], samples, strict=True), 1):
        key = (str(donor), sample)
        if key in seen:
            problems.append(Problem(i, "SAMPLE", f"{code} and {seen[key]} both become {sample} in CONIPHER"))
        seen.setdefault(key, str(code))
    refuse_problems("CONIPHER sample table", problems)
    frame = pd.DataFrame(
        {
            "CASE_ID": clonal["donor"].astype(str).tolist(),
            "SAMPLE": samples,
            "ACF": clonal["tumour_content"].tolist(),
            "PLOIDY": [ASSUMED_PLOIDY] * len(clonal),
        },
        columns=list(CONIPHER_COLUMNS),
    )
    frame["ACF"] = frame["ACF"].astype("Float64")
    return frame


def conipher_ids(clonal: pd.DataFrame) -> pd.DataFrame:
    """The mapping from CONIPHER's ``SAMPLE`` back to our ``sample_id`` (specimen code), per ``CASE_ID``."""
    conipher = conipher_frame(clonal)
    return pd.DataFrame(
        {"CASE_ID": conipher["CASE_ID"], "SAMPLE": conipher["SAMPLE"], "sample_id": clonal["sample_id"].tolist()},
        columns=list(CONIPHER_ID_COLUMNS),
    )


def per_donor(frame: pd.DataFrame, column: str = "donor") -> dict[str, pd.DataFrame]:
    """The frame split by donor, in input order (each part re-indexed)."""
    return {
        str(donor): group.reset_index(drop=True) for donor, group in frame.groupby(column, sort=False)
    }


def to_tsv(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, sep="\t", index=False, lineterminator="\n", na_rep="")
    return buf.getvalue()


def build_clonal(donors: pd.DataFrame, samples: pd.DataFrame, *, allow_missing_purity: bool = False) -> str:
    """The clonal sample table of every donor together, as TSV text (split it per donor before PyClone-VI)."""
    return to_tsv(clonal_frame(donors, samples, allow_missing_purity=allow_missing_purity))


def build_conipher(donors: pd.DataFrame, samples: pd.DataFrame, *, allow_missing_purity: bool = False) -> str:
    """The CONIPHER-flavoured sample table (``CASE_ID, SAMPLE, ACF, PLOIDY``) of every donor, as TSV text."""
    return to_tsv(conipher_frame(clonal_frame(donors, samples, allow_missing_purity=allow_missing_purity)))


README = """Clonal deconvolution inputs: one file per donor (a clonal tool fits one tumour at a time).

PyClone-VI: <donor>.tsv, one row per tumour sample:
  sample_id       specimen code (PyClone-VI keeps it as it is)
  donor           donor code
  lesion, region  lesion and sampling-region codes
  anatomical_site the sampled site's label (shared with the MACHINA and Metient exports)
  site_category   primary | metastasis
  tumour_content  purity = tumour cellularity / 100
  sex             XX | XY | NA: normal_cn is 1 for a male's X and Y, else 2
Your mutation table adds, per mutation and sample: mutation_id, sample_id, ref_counts, alt_counts, major_cn,
minor_cn (error_rate optional, default 0.001). Join it on sample_id, take tumour_content from here and normal_cn
from sex and the chromosome, and give PyClone-VI (pyclone-vi fit -i) the columns
  mutation_id sample_id ref_counts alt_counts major_cn minor_cn normal_cn tumour_content error_rate
Every mutation needs a row in every sample of the file (ref/alt 0 where it was not seen): PyClone-VI drops the
others.
"""

README_CONIPHER = """CONIPHER inputs: one file per donor (CONIPHER takes one CASE_ID per run).

<donor>.conipher.tsv, one row per tumour sample:
  CASE_ID  donor code
  SAMPLE   specimen code in CONIPHER's alphabet: CONIPHER turns '-' into '.' when it reads its input, so it is
           written that way already; conipher_sample_ids.tsv maps SAMPLE back to the specimen code (sample_id)
  ACF      aberrant cell fraction = purity = tumour cellularity / 100
  PLOIDY   2 (diploid): the biobank measures no tumour ploidy; CONIPHER requires the column and carries it without
           computing with it. Replace it with your copy-number caller's estimate if you have one.
Your mutation table adds, per mutation and SAMPLE: CHR, POS, REF, ALT, REF_COUNT, VAR_COUNT, DEPTH, COPY_NUMBER_A,
COPY_NUMBER_B (and CLUSTER, CCF_PHYLO, CCF_OBS, MUT_COPY for tree building). Join on SAMPLE.
"""


def clonal_files(
    donors: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    allow_missing_purity: bool = False,
    conipher: bool = False,
) -> dict[str, str]:
    """The clonal export as ``{file name: text}``: a README and one table per donor (PyClone-VI's, or with
    ``conipher`` CONIPHER's plus the sample-id mapping), and ``NOTES.txt`` when model samples were left out."""
    frame = clonal_frame(donors, samples, allow_missing_purity=allow_missing_purity)
    notes = split_models(samples, "CONIPHER" if conipher else "PyClone-VI")[1]
    if frame.empty:
        raise ValueError("no tumour samples selected: a clonal table needs at least one" + "".join(
            f"; {n}" for n in notes))
    if conipher:
        files = {"README.txt": README_CONIPHER}
        for donor, part in per_donor(frame).items():
            files[f"{donor}.conipher.tsv"] = to_tsv(conipher_frame(part))
        files[CONIPHER_IDS_FILE] = to_tsv(conipher_ids(frame))
    else:
        files = {"README.txt": README}
        for donor, part in per_donor(frame).items():
            files[f"{donor}.tsv"] = to_tsv(part)
    if notes:
        files["NOTES.txt"] = "".join(n + "\n" for n in notes)
    return files


def write_clonal(
    folder: str | Path,
    donors: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    allow_missing_purity: bool = False,
    conipher: bool = True,
) -> list[Path]:
    """Write the PyClone-VI files (and, with ``conipher``, the CONIPHER files in ``conipher/``) into ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name, content in clonal_files(donors, samples, allow_missing_purity=allow_missing_purity).items():
        paths.append(out / name)
        paths[-1].write_text(content, encoding="utf-8")
    if conipher:
        (out / "conipher").mkdir(exist_ok=True)
        files = clonal_files(donors, samples, allow_missing_purity=allow_missing_purity, conipher=True)
        for name, content in files.items():
            paths.append(out / "conipher" / name)
            paths[-1].write_text(content, encoding="utf-8")
    return paths
