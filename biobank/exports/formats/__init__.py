"""Pure export writers: pandas DataFrames in, the files analysis pipelines take out (DOMAIN.md §6).

One module per target, each validated by the target tool's own rules:

=================  =====================================================================================
module             target
=================  =====================================================================================
``sarek``          nf-core/sarek samplesheet CSV (validated with jsonschema against sarek's own schema)
``clonal``         sample table for clonal deconvolution (PyClone-VI ``tumour_content``; CONIPHER ``ACF``)
``migration``      MACHINA leaf labelling (+ primary for ``-p``) and Metient's sample/site table
``cbioportal``     cBioPortal study folder (meta_study, clinical patient and sample files)
``phenopacket``    GA4GH Phenopacket v2 per donor (built and re-parsed with the ``phenopackets`` package)
``fhir``           HL7 FHIR R4 transaction Bundle with the MIABIS-on-FHIR profiles (strict R4 models)
``tables``         every entity as CSV, Parquet and Excel with a data dictionary
=================  =====================================================================================

No module here queries the database: the query layer builds the two frames below and hands them in. Outputs are
de-identified: no names, no absolute dates; times are hours after death or days before death (ISO 8601 durations
where a standard needs them).

Input contract
--------------
``donors``: one row per donor (:data:`DONOR_COLUMNS`):

- ``donor_code`` pseudonymous code, e.g. ``RA-0001``
- ``sex`` MIABIS sex: ``male|female|unknown|undifferentiated|not_applicable``
- ``age_at_death`` whole years, int or NA
- ``primary_diagnosis`` free text (e.g. "Invasive ductal carcinoma of breast")
- ``icdo3_topography`` e.g. ``C50.9``; ``icdo3_morphology`` e.g. ``8500/3``
- ``primary_site_code``, ``primary_site_label``, ``primary_site_uberon``: NA together means unknown primary
- ``diagnosis_days_before_death`` int or NA
- ``cause_of_death`` text or NA
- ``death_at`` tz-aware UTC datetime or NaT (never written to any export; only accepted so the query layer can pass
  its frame unchanged)

``samples``: one row per specimen (:data:`SAMPLE_COLUMNS`):

- ``specimen_code`` sample ID, e.g. ``RA0001-L02B-SF1``; ``donor_code``; ``parent_code`` or NA
- ``lineage`` ``primary|aliquot|derivative``
- ``material_type`` ``tissue|whole_blood|plasma|buffy_coat|bone_marrow|dna|rna|cells|section``
- ``storage_format`` ``fresh|snap_frozen|oct|ffpe|rnalater|viable_cryo|frozen``
- ``role`` ``tumour|germline_normal|normal_tissue|model`` (:data:`SAMPLE_ROLES`)
- ``lesion_code`` (NA for normals), ``lesion_kind`` ``primary|metastasis|local_recurrence|lymph_node`` or NA
- ``region_code`` e.g. ``L02-B``, or ``N01`` for a normal tissue
- ``site_code``, ``site_label``, ``site_uberon``, ``laterality`` (the sampled anatomical site)
- ``collected_at`` tz-aware UTC (never written to any export)
- ``hours_after_death`` float; negative for pre-mortem draws
- ``tumour_cellularity_pct`` 0-100 or NA
- ``storage_temperature`` MIABIS code ``RT|2to10|-18to-35|-60to-85|LN|Other`` or NA (:data:`STORAGE_TEMPERATURES`)
- ``model_code``, ``model_kind`` (``pdx|organoid|cell_line``), ``passage`` (label), ``passage_number``, ``host``
  (PDX host strain), ``model_source_code`` (the patient specimen the model was derived from): NA for the patient's
  own material; set on material grown in a model and everything made from it. Such material is never described
  as the patient's autopsy tissue (:func:`is_model_material`).

Each writer requires only the columns it uses and raises :class:`ValueError` naming the missing ones
(:func:`require_columns`); vocabulary columns are checked against :mod:`biobank.domain.vocab` (:func:`check_vocabulary`).
Problems found by a target's own rules are returned by its ``validate_*`` function as :class:`Problem` rows, and
raised together as :class:`ExportValidationError` (a ``ValueError``) by its ``build_*`` function.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from biobank.domain import vocab
from biobank.exports.formats._common import isna as _isna

#: Columns of the ``donors`` frame, in contract order.
DONOR_COLUMNS: tuple[str, ...] = (
    "donor_code",
    "sex",
    "age_at_death",
    "primary_diagnosis",
    "icdo3_topography",
    "icdo3_morphology",
    "primary_site_code",
    "primary_site_label",
    "primary_site_uberon",
    "diagnosis_days_before_death",
    "cause_of_death",
    "death_at",
)

#: Columns of the ``samples`` frame, in contract order.
SAMPLE_COLUMNS: tuple[str, ...] = (
    "specimen_code",
    "donor_code",
    "parent_code",
    "lineage",
    "material_type",
    "storage_format",
    "role",
    "lesion_code",
    "lesion_kind",
    "region_code",
    "site_code",
    "site_label",
    "site_uberon",
    "laterality",
    "collected_at",
    "hours_after_death",
    "tumour_cellularity_pct",
    "storage_temperature",
    "model_code",
    "model_kind",
    "passage",
    "passage_number",
    "host",
    "model_source_code",
)

#: Role of a specimen in an analysis (DOMAIN.md §2, analysis plan).
SAMPLE_ROLES: tuple[str, ...] = ("tumour", "germline_normal", "normal_tissue", "model")

#: MIABIS storage temperature codes (DOMAIN.md §4; MIABIS-on-FHIR ``miabis-storage-temperature-cs``).
STORAGE_TEMPERATURES: tuple[str, ...] = ("RT", "2to10", "-18to-35", "-60to-85", "LN", "Other")

#: Allowed values of each vocabulary column (NA is always allowed where the contract says "or NA").
VOCABULARIES: dict[str, tuple[str, ...]] = {
    "sex": tuple(vocab.values(vocab.Sex)),
    "lineage": tuple(vocab.values(vocab.Lineage)),
    "material_type": tuple(vocab.values(vocab.MaterialType)),
    "storage_format": tuple(vocab.values(vocab.StorageFormat)),
    "role": SAMPLE_ROLES,
    "lesion_kind": tuple(vocab.values(vocab.LesionKind)),
    "laterality": tuple(vocab.values(vocab.Laterality)),
    "storage_temperature": STORAGE_TEMPERATURES,
    "model_kind": ("pdx", "organoid", "cell_line"),
}


@dataclass(frozen=True)
class Problem:
    """One rule a row breaks: ``row`` is the 1-based data row (the CSV line is ``row + 1``), or None for a file."""

    row: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field:
            where.append(self.field)
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ExportValidationError(ValueError):
    """An export broke its target's rules; ``problems`` lists every one."""

    #: Problems the message lists (all stay in ``problems``).
    LISTED = 10

    def __init__(self, target: str, problems: Sequence[Problem]) -> None:
        self.target = target
        self.problems = list(problems)
        count = len(self.problems)
        listed = "; ".join(str(p) for p in self.problems[: self.LISTED])
        more = f"; and {count - self.LISTED} more" if count > self.LISTED else ""
        # One line: a page or a command that shows the first line of an error shows the problems too.
        super().__init__(f"{target} export is invalid ({count} problem{'s' if count != 1 else ''}): {listed}{more}")


def is_model_material(samples: pd.DataFrame) -> pd.Series:
    """True for the rows grown in a model (PDX, organoid, cell line) or made from such material."""
    if "model_code" not in samples.columns:
        return pd.Series(False, index=samples.index)
    return samples["model_code"].notna()


def refuse_problems(target: str, problems: Sequence[Problem]) -> None:
    """Raise :class:`ExportValidationError` for ``target`` when its rules found any ``problems``."""
    if problems:
        raise ExportValidationError(target, problems)


def require_columns(frame: pd.DataFrame, required: Iterable[str], *, frame_name: str, export: str) -> None:
    """Raise ValueError naming every required column the frame lacks."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{frame_name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{frame_name} frame is missing required column(s) for the {export} export: {', '.join(missing)}"
        )


def check_vocabulary(frame: pd.DataFrame, *, frame_name: str, columns: Iterable[str] | None = None) -> None:
    """Raise ValueError naming each vocabulary column that holds a value outside its vocabulary (NA allowed)."""
    bad: list[str] = []
    for column in columns if columns is not None else VOCABULARIES:
        if column not in frame.columns or column not in VOCABULARIES:
            continue
        allowed = set(VOCABULARIES[column])
        values = {str(v) for v in frame[column] if not _isna(v)}
        wrong = sorted(values - allowed)
        if wrong:
            bad.append(
                f"{column}: {', '.join(map(repr, wrong))} (allowed: {', '.join(VOCABULARIES[column])})"
            )
    if bad:
        raise ValueError(f"{frame_name} frame has values outside the vocabulary: " + "; ".join(bad))


def check_donors_known(donors: pd.DataFrame, samples: pd.DataFrame) -> None:
    """Raise ValueError if a sample names a donor the donors frame does not hold, or a donor code repeats."""
    dup = donors["donor_code"][donors["donor_code"].duplicated()].tolist()
    if dup:
        raise ValueError(f"donors frame repeats donor_code: {', '.join(map(str, dup))}")
    known = set(donors["donor_code"])
    unknown = sorted({str(d) for d in samples["donor_code"] if d not in known})
    if unknown:
        raise ValueError(f"samples name donor(s) missing from the donors frame: {', '.join(unknown)}")


def check_unique_specimens(samples: pd.DataFrame) -> None:
    """Raise ValueError if a specimen code is empty or repeats."""
    codes = samples["specimen_code"]
    empty = int(sum(1 for c in codes if _isna(c) or not str(c).strip()))
    if empty:
        raise ValueError(f"samples frame has {empty} row(s) without a specimen_code")
    dup = sorted({str(c) for c in codes[codes.duplicated()]})
    if dup:
        raise ValueError(f"samples frame repeats specimen_code: {', '.join(dup)}")


def check_frames(
    donors: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    export: str,
    donor_columns: Iterable[str],
    sample_columns: Iterable[str],
    sample_vocabulary: Iterable[str] | None = None,
) -> None:
    """What every writer checks first: both frames hold the columns it needs, the donors' sex and the samples'
    ``sample_vocabulary`` columns (default: every vocabulary column) hold known values, every sample's donor is in
    the donors frame, and each specimen code is given once."""
    require_columns(donors, donor_columns, frame_name="donors", export=export)
    require_columns(samples, sample_columns, frame_name="samples", export=export)
    check_vocabulary(donors, frame_name="donors", columns=["sex"])
    check_vocabulary(samples, frame_name="samples", columns=sample_vocabulary)
    check_donors_known(donors, samples)
    check_unique_specimens(samples)


__all__ = [
    "DONOR_COLUMNS",
    "SAMPLE_COLUMNS",
    "SAMPLE_ROLES",
    "STORAGE_TEMPERATURES",
    "VOCABULARIES",
    "ExportValidationError",
    "Problem",
    "check_donors_known",
    "check_frames",
    "check_unique_specimens",
    "check_vocabulary",
    "is_model_material",
    "refuse_problems",
    "require_columns",
]
