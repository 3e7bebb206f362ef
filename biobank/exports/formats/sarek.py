"""nf-core/sarek samplesheet (``--input``), validated against sarek's own JSON schema and its start-up rule.

Columns: ``patient,sex,status,sample`` then the input files, plus ``contamination`` (1 - tumour purity, 0 for normals).
``status`` is 1 for the patient's tumour and for material grown in a model (role ``model``: a PDX or organoid passage
is sequenced against the patient's germline normal like a tumour), 0 for normals; the sheet has no column that says
"patient tissue", so a model sample is told apart by its specimen code only (the other exports mark it).


- FASTQ pairs (:func:`match_fastqs`, from a folder): ``lane,fastq_1,fastq_2``; sarek runs them from ``--step mapping``
  (its default).
- Aligned files (:func:`match_aligned`, from a folder): ``bam,bai`` for ``<sample>.bam`` with ``<sample>.bam.bai`` or
  ``<sample>.bai``, and/or ``cram,crai`` for ``<sample>.cram`` with ``<sample>.cram.crai`` or ``<sample>.crai``, one
  per sample; sarek takes them from a later step (``variant_calling`` for recalibrated files, ``markduplicates`` or
  ``prepare_recalibration`` for files only aligned), never from ``mapping`` (rows without a lane) or ``annotate``.
- Neither: refused (:class:`MissingInputFilesError`), since sarek stops at start-up on such a sheet. Only when a
  template is asked for is the sheet written with empty ``lane,fastq_1,fastq_2`` columns to fill in; sarek cannot run
  it until they are filled in (:func:`describe_sheet` says so).

Validation (:func:`validate_sarek`) runs the shipped ``assets/schema_input.json`` of sarek 3.10.0
(``biobank/data/sarek_schema_input.json``) with ``jsonschema`` (Draft 2020-12) on every row after converting the cells
the way nf-schema parses a CSV (empty cell = absent; integer/number columns cast), then sarek's cross-row rules:
``uniqueEntries`` (patient/sample/lane), one sample ID under one patient only, and no patient with exactly one tumour
and more than one normal. :func:`startup_problems` then applies the rule of sarek's
``subworkflows/local/samplesheet_to_channel`` (3.10.0): each row must hold ``lane`` with ``fastq_2`` (or ``spring_1``,
or ``bam``), or ``cram``/``bam`` (optionally with ``table``), or ``vcf``; any other row stops sarek with "Missing or
unknown field in csv file header". Every row must also agree on one ``--step`` (:func:`sarek_steps`).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import numbers
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from biobank.exports.formats import Problem, check_frames, refuse_problems, require_columns
from biobank.exports.formats._common import isna, karyotype, purity
from biobank.exports.formats._files import write_file

if TYPE_CHECKING:
    import jsonschema

#: Samplesheet columns in sarek's order.
COLUMNS: tuple[str, ...] = ("patient", "sex", "status", "sample", "lane", "fastq_1", "fastq_2")
#: Columns of a sheet before FASTQs are matched.
COLUMNS_NO_FASTQ: tuple[str, ...] = ("patient", "sex", "status", "sample")
#: Input-file columns for aligned reads, in sarek's order (usage docs: ``patient,sex,status,sample,bam,bai``).
ALIGNED_COLUMNS: tuple[str, ...] = ("bam", "bai", "cram", "crai")
CONTAMINATION = "contamination"

#: sarek's ``--step`` values in pipeline order (``nextflow_schema.json``).
STEPS: tuple[str, ...] = (
    "mapping",
    "markduplicates",
    "prepare_recalibration",
    "recalibrate",
    "variant_calling",
    "annotate",
)
#: Steps that take an aligned BAM/CRAM row without a lane (samplesheet_to_channel refuses mapping and annotate).
ALIGNED_STEPS: tuple[str, ...] = STEPS[1:5]
#: The step this module suggests for aligned files (sarek's "recalibrated" input).
ALIGNED_STEP = "variant_calling"
#: sarek's own words when a row has no input it knows (samplesheet_to_channel's last ``else``).
STARTUP_ERROR = "Missing or unknown field in csv file header"


class MissingInputFilesError(ValueError):
    """A samplesheet asked for without input files and without asking for a template (sarek cannot run it)."""

    def __init__(self) -> None:
        super().__init__(
            "sarek samplesheet: no input files were given (a folder of FASTQ pairs, or of BAM/CRAM files with "
            f"their indexes); sarek stops at start-up on a sheet without them (\"{STARTUP_ERROR}\"). Name a "
            "folder, or ask for a template to fill in"
        )

#: Roles sequenced as sarek's tumour status (1), against the patient's germline normal.
TUMOUR_STATUS_ROLES = frozenset({"tumour", "model"})

DONOR_REQUIRED = ("donor_code", "sex")
SAMPLE_REQUIRED = ("specimen_code", "donor_code", "role")

SCHEMA_RESOURCE = "data/sarek_schema_input.json"


@functools.cache
def load_schema() -> dict[str, Any]:
    """sarek's ``schema_input.json`` as shipped in the package."""
    return json.loads(resources.files("biobank").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------- building


def sarek_frame(donors: pd.DataFrame, samples: pd.DataFrame, *, contamination: bool = True) -> pd.DataFrame:
    """The samplesheet rows without FASTQs: ``patient,sex,status,sample`` (+ ``contamination``).

    Tumours and model samples (:data:`TUMOUR_STATUS_ROLES`) get status 1, normals 0. ``contamination`` is 1 - purity
    (purity = tumour cellularity / 100) for those, 0 for normals, and left empty when the cellularity was not recorded.
    """
    required = SAMPLE_REQUIRED + (("tumour_cellularity_pct",) if contamination else ())
    check_frames(
        donors, samples, export="sarek", donor_columns=DONOR_REQUIRED, sample_columns=required, sample_vocabulary=["role"]
    )

    sex_of = {str(d): karyotype(s) for d, s in zip(donors["donor_code"], donors["sex"], strict=True)}
    rows: list[dict[str, Any]] = []
    for _, s in samples.iterrows():
        tumour = s["role"] in TUMOUR_STATUS_ROLES
        row: dict[str, Any] = {
            "patient": str(s["donor_code"]),
            "sex": sex_of[str(s["donor_code"])],
            "status": 1 if tumour else 0,
            "sample": str(s["specimen_code"]),
        }
        if contamination:
            if tumour:
                p = purity(s["tumour_cellularity_pct"])
                row[CONTAMINATION] = None if p is None else round(1.0 - p, 6)
            else:
                row[CONTAMINATION] = 0.0
        rows.append(row)
    columns = list(COLUMNS_NO_FASTQ) + ([CONTAMINATION] if contamination else [])
    frame = pd.DataFrame(rows, columns=columns)
    frame["status"] = frame["status"].astype("int64")
    if contamination:
        frame[CONTAMINATION] = frame[CONTAMINATION].astype("Float64")
    return frame


_FASTQ_SUFFIX = re.compile(
    r"^(?:_S\d+)?(?:_L(?P<lane>\d+))?_R(?P<read>[12])(?:_\d{3})?\.f(?:ast)?q\.gz$",
)


def _parse_fastq_name(name: str, samples: list[str]) -> tuple[str, int, int] | None:
    """(sample, lane, read) for ``<sample>_S1_L001_R1_001.fastq.gz`` or ``<sample>_R1.fq.gz``; None otherwise.

    The sample is matched against the known sample IDs (longest first), so IDs that themselves contain ``_S1`` or
    ``_L2`` are read correctly.
    """
    for sample in samples:
        if not name.startswith(sample):
            continue
        m = _FASTQ_SUFFIX.match(name[len(sample) :])
        if m:
            lane = int(m.group("lane")) if m.group("lane") else 1
            return sample, lane, int(m.group("read"))
    return None


def match_fastqs(frame: pd.DataFrame, folder: str | Path, *, recursive: bool = False) -> pd.DataFrame:
    """Fill ``lane,fastq_1,fastq_2`` from the FASTQ files in ``folder``: one row per sample and lane.

    Recognised names: Illumina ``<sample>_S<n>_L<lane>_R<1|2>_001.fastq.gz`` (also ``.fq.gz``) and
    ``<sample>_R<1|2>.fq.gz`` / ``.fastq.gz`` (lane 1). Paths are absolute. A sample without files, an R1 without its
    R2 (or the reverse) and two files for the same sample, lane and read are errors (``ValueError`` naming them).
    Files that belong to no sample in the sheet are ignored.
    """
    require_columns(frame, ("sample",), frame_name="samplesheet", export="sarek")
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"FASTQ folder does not exist: {root}")
    ids = sorted({str(s) for s in frame["sample"]}, key=len, reverse=True)
    files = root.rglob("*") if recursive else root.iterdir()
    found: dict[tuple[str, int], dict[int, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(files):
        if not path.is_file():
            continue
        parsed = _parse_fastq_name(path.name, ids)
        if parsed:
            sample, lane, read = parsed
            found[(sample, lane)][read].append(path.resolve())

    errors: list[str] = []
    for (sample, lane), reads in sorted(found.items()):
        for read, paths in sorted(reads.items()):
            if len(paths) > 1:
                errors.append(
                    f"{sample} lane {lane}: {len(paths)} R{read} files ({', '.join(p.name for p in paths)})"
                )
        if 1 in reads and 2 not in reads:
            errors.append(f"{sample} lane {lane}: R1 without R2 ({reads[1][0].name})")
        if 2 in reads and 1 not in reads:
            errors.append(f"{sample} lane {lane}: R2 without R1 ({reads[2][0].name})")
    with_files = {s for s, _ in found}
    missing = [s for s in dict.fromkeys(str(s) for s in frame["sample"]) if s not in with_files]
    if missing:
        errors.append(f"no FASTQ files in {root} for sample(s): {', '.join(missing)}")
    if errors:
        raise ValueError("cannot match FASTQs to the samplesheet:\n" + "\n".join(f"  - {e}" for e in errors))

    out_rows: list[dict[str, Any]] = []
    extra = [c for c in frame.columns if c not in COLUMNS]
    for _, row in frame.iterrows():
        sample = str(row["sample"])
        for lane in sorted(lane for s, lane in found if s == sample):
            reads = found[(sample, lane)]
            new = {c: row[c] for c in COLUMNS_NO_FASTQ if c in frame.columns}
            new.update({"lane": lane, "fastq_1": str(reads[1][0]), "fastq_2": str(reads[2][0])})
            new.update({c: row[c] for c in extra})
            out_rows.append(new)
    columns = [c for c in COLUMNS if c in frame.columns or c not in COLUMNS_NO_FASTQ] + extra
    out = pd.DataFrame(out_rows, columns=columns)
    out["lane"] = out["lane"].astype("int64")
    for c in frame.columns:
        if c in out.columns and c != "lane":
            out[c] = out[c].astype(frame[c].dtype)
    return out


def _aligned_files(root: Path, sample: str) -> dict[str, list[Path]]:
    """The BAM/CRAM files and indexes named for ``sample`` in ``root`` (exact names, so no prefix is confused)."""
    found: dict[str, list[Path]] = {}
    for kind, index in (("bam", "bai"), ("cram", "crai")):
        reads = root / f"{sample}.{kind}"
        if reads.is_file():
            found[kind] = [reads.resolve()]
            found[index] = [
                p.resolve() for p in (root / f"{sample}.{kind}.{index}", root / f"{sample}.{index}") if p.is_file()
            ]
    return found


def match_aligned(frame: pd.DataFrame, folder: str | Path) -> pd.DataFrame:
    """Fill ``bam,bai`` and/or ``cram,crai`` from the aligned files in ``folder``: one row per sample, no lane.

    Each sample needs ``<sample>.bam`` with ``<sample>.bam.bai`` or ``<sample>.bai``, or ``<sample>.cram`` with
    ``<sample>.cram.crai`` or ``<sample>.crai`` (paths written absolute). A sample without a file, with both a BAM and
    a CRAM, without an index or with two indexes is an error (``ValueError`` naming each). Other files are ignored.
    Only the columns some sample uses are written (``bam,bai`` for an all-BAM folder).
    """
    require_columns(frame, ("sample",), frame_name="samplesheet", export="sarek")
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"BAM/CRAM folder does not exist: {root}")
    errors: list[str] = []
    chosen: dict[str, dict[str, str]] = {}
    for sample in dict.fromkeys(str(s) for s in frame["sample"]):
        files = _aligned_files(root, sample)
        if not files:
            errors.append(f"{sample}: no {sample}.bam or {sample}.cram in {root}")
            continue
        if "bam" in files and "cram" in files:
            errors.append(f"{sample}: both {sample}.bam and {sample}.cram; keep one")
            continue
        kind, index = ("bam", "bai") if "bam" in files else ("cram", "crai")
        if not files[index]:
            errors.append(f"{sample}: {sample}.{kind} has no index ({sample}.{kind}.{index} or {sample}.{index})")
            continue
        if len(files[index]) > 1:
            errors.append(f"{sample}: two indexes ({', '.join(p.name for p in files[index])}); keep one")
            continue
        chosen[sample] = {kind: str(files[kind][0]), index: str(files[index][0])}
    if errors:
        raise ValueError("cannot match BAM/CRAM files to the samplesheet:\n" + "\n".join(f"  - {e}" for e in errors))

    used = [c for c in ALIGNED_COLUMNS if any(c in files for files in chosen.values())]
    base = [c for c in frame.columns if c in COLUMNS_NO_FASTQ]
    extra = [c for c in frame.columns if c not in COLUMNS and c not in ALIGNED_COLUMNS]
    out = frame[base].copy()
    for c in used:
        out[c] = [chosen[str(s)].get(c) for s in frame["sample"]]
    for c in extra:
        out[c] = frame[c]
    return out.reset_index(drop=True)


def template_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The sheet with empty ``lane,fastq_1,fastq_2`` columns to fill in: a template sarek cannot run as it is."""
    out = frame[[c for c in frame.columns if c in COLUMNS_NO_FASTQ]].copy()
    for c in ("lane", "fastq_1", "fastq_2"):
        out[c] = pd.Series([None] * len(frame), index=frame.index, dtype="object")
    for c in frame.columns:
        if c not in COLUMNS:
            out[c] = frame[c]
    return out.reset_index(drop=True)


# ------------------------------------------------------------------------------------------------- validation


def _types(prop: Mapping[str, Any]) -> set[str]:
    types: set[str] = set()
    t = prop.get("type")
    if isinstance(t, str):
        types.add(t)
    elif isinstance(t, list):
        types.update(t)
    for sub in prop.get("anyOf", []) + prop.get("oneOf", []):
        types |= _types(sub)
    return types


_INT = re.compile(r"^[+-]?\d+$")


def parse_cell(value: Any, prop: Mapping[str, Any] | None) -> Any:
    """A samplesheet cell as nf-schema reads it from the CSV text.

    An empty cell is absent (None); a cell whose property allows ``integer`` and holds an integer becomes an int, one
    whose property allows ``number`` becomes a number; everything else stays a string.
    """
    if isna(value):
        return None
    if isinstance(value, bool):
        s = str(value).lower()
    elif isinstance(value, numbers.Number):
        f = float(value)  # type: ignore[arg-type]  # a cell of any type; what float() refuses is caught below
        s = str(int(f)) if f.is_integer() else repr(f)
    else:
        s = str(value).strip()
    if s == "":
        return None
    types = _types(prop or {})
    if "integer" in types and _INT.match(s):
        return int(s)
    if "number" in types:
        if _INT.match(s):
            return int(s)
        try:
            return float(s)
        except ValueError:
            return s
    if "boolean" in types and s.lower() in ("true", "false"):
        return s.lower() == "true"
    return s


def to_schema_rows(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows typed as nf-schema would parse them from the CSV (absent keys for empty cells)."""
    props = load_schema()["items"]["properties"]
    items: Iterable[Mapping[Any, Any]] = (
        rows.to_dict(orient="records") if isinstance(rows, pd.DataFrame) else rows
    )
    out: list[dict[str, Any]] = []
    for row in items:
        typed: dict[str, Any] = {}
        for key, value in row.items():
            v = parse_cell(value, props.get(key))
            if v is not None:
                typed[str(key)] = v
        out.append(typed)
    return out


def _schema_problem(error: jsonschema.ValidationError) -> Problem:
    path = list(error.absolute_path)
    row = path[0] + 1 if path and isinstance(path[0], int) else None
    field = str(path[1]) if len(path) > 1 else None
    props = load_schema()["items"]["properties"]
    message = error.message
    if error.validator == "anyOf" and field is None:
        message = "a row with a lane needs fastq_1 (or spring_1, or bam)"
    if field and field in props and "errorMessage" in props[field]:
        message = f"{message} ({props[field]['errorMessage']})"
    elif field is None and error.validator in ("required", "dependentRequired"):
        m = re.search(r"'([^']+)' is a (?:required property|dependency)", error.message)
        field = m.group(1) if m else None
    return Problem(row, field, message)


def validate_sarek(
    rows: pd.DataFrame | Iterable[Mapping[str, Any]], *, check_files: bool = False
) -> list[Problem]:
    """Every problem sarek would stop on, as (1-based row, field, message); empty when the sheet is valid.

    Runs the schema with jsonschema (Draft 2020-12) on the typed rows, then the cross-row rules. With
    ``check_files`` the ``exists: true`` file columns must name existing files (nf-schema checks this at launch).
    """
    schema = load_schema()
    typed = to_schema_rows(rows)
    import jsonschema  # here, not at the top: importing it costs the whole command line ~1 s of start-up

    validator = jsonschema.Draft202012Validator(schema)
    problems = [_schema_problem(e) for e in validator.iter_errors(typed)]
    problems.sort(key=lambda p: (p.row or 0, p.field or ""))

    if check_files:
        props = schema["items"]["properties"]
        for i, row in enumerate(typed, start=1):
            for key, value in row.items():
                if props.get(key, {}).get("format") == "file-path" and not Path(str(value)).is_file():
                    problems.append(Problem(i, key, f"file does not exist: {value}"))

    problems.extend(cross_row_problems(typed))
    return problems


def cross_row_problems(typed: list[dict[str, Any]]) -> list[Problem]:
    """sarek's rules across rows: unique patient/sample/lane, one patient per sample, one tumour -> one normal."""
    problems: list[Problem] = []
    unique_keys = load_schema()["items"].get("uniqueEntries", ["lane", "patient", "sample"])
    seen: dict[tuple[Any, ...], int] = {}
    patient_of: dict[str, tuple[str, int]] = {}
    statuses: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for i, row in enumerate(typed, start=1):
        key = tuple(str(row.get(k)) if row.get(k) is not None else None for k in unique_keys)
        if key in seen:
            combo = ", ".join(f"{k}={row.get(k)!s}" for k in unique_keys)
            problems.append(Problem(i, "sample", f"duplicate entry ({combo}) already in row {seen[key]}"))
        else:
            seen[key] = i
        sample, patient = row.get("sample"), row.get("patient")
        if sample is None or patient is None:
            continue
        sample, patient = str(sample), str(patient)
        if sample in patient_of and patient_of[sample][0] != patient:
            first, at = patient_of[sample]
            problems.append(
                Problem(
                    i, "sample", f"sample {sample} is under patient {patient} and patient {first} (row {at})"
                )
            )
        else:
            patient_of.setdefault(sample, (patient, i))
        status = row.get("status", 0)
        if status in (0, 1):
            statuses[patient][int(status)].add(sample)
    for patient, by_status in statuses.items():
        tumours, normals = by_status.get(1, set()), by_status.get(0, set())
        if len(tumours) == 1 and len(normals) > 1:
            problems.append(
                Problem(
                    None,
                    "status",
                    f"patient {patient} has one tumour ({next(iter(tumours))}) and {len(normals)} normal samples "
                    f"({', '.join(sorted(normals))}); sarek pairs a single tumour with one normal only",
                )
            )
    return problems


def _row_steps(row: Mapping[str, Any]) -> tuple[set[str], str | None]:
    """The ``--step`` values sarek takes a typed row at, and the input it reads, per ``samplesheet_to_channel``.

    The branches are tried in sarek's order; a row none of them takes gets no step (sarek stops at start-up).
    """
    lane = row.get("lane") is not None
    has = {k for k in ("fastq_2", "spring_1", "table", "cram", "bam", "bai", "vcf") if row.get(k) is not None}
    if lane and "fastq_2" in has:
        return {"mapping"}, "fastq"
    if lane and "spring_1" in has:
        return {"mapping"}, "spring"
    if lane and "bam" in has:
        # any step but annotate; a step after mapping needs the index ("BAM index (bai) should be provided.")
        return ({"mapping", *ALIGNED_STEPS} if "bai" in has else {"mapping"}), "bam"
    if "cram" in has:
        return set(ALIGNED_STEPS), "cram"
    if "bam" in has:
        return set(ALIGNED_STEPS), "bam"
    if "vcf" in has:
        return {"annotate"}, "vcf"
    return set(), None


def startup_problems(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> list[Problem]:
    """Rows sarek's ``samplesheet_to_channel`` stops on at start-up, and sheets no single ``--step`` can run."""
    typed = to_schema_rows(rows)
    problems: list[Problem] = []
    allowed = set(STEPS)
    for i, row in enumerate(typed, start=1):
        steps, _input = _row_steps(row)
        if not steps:
            problems.append(
                Problem(
                    i,
                    None,
                    f"{row.get('sample')}: no input file (fastq_1/fastq_2 with a lane, bam, cram or vcf): sarek stops "
                    f'with "{STARTUP_ERROR}"',
                )
            )
        else:
            allowed &= steps
    if not problems and not allowed:
        problems.append(Problem(None, None, "rows need different sarek steps (FASTQs and aligned files mixed)"))
    return problems


def sarek_steps(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> list[str]:
    """The ``--step`` values sarek can run every row of the sheet at, in pipeline order (empty: none)."""
    allowed = set(STEPS)
    for row in to_schema_rows(rows):
        allowed &= _row_steps(row)[0]
    return [s for s in STEPS if s in allowed]


def describe_sheet(text: str) -> str:
    """One line on how to run a written samplesheet: its sarek step, or that it is a template sarek cannot run."""
    rows = list(csv.DictReader(io.StringIO(text)))
    steps = sarek_steps(rows)
    if not steps:
        return (
            "sarek samplesheet TEMPLATE: it has no input files, and sarek stops at start-up on it "
            f'("{STARTUP_ERROR}") until lane,fastq_1,fastq_2 (or bam,bai / cram,crai) are filled in'
        )
    if steps == ["mapping"]:
        return "sarek samplesheet of FASTQ pairs: run sarek with --step mapping (its default)"
    if ALIGNED_STEP in steps:
        others = " or ".join(s for s in steps if s != ALIGNED_STEP)
        return (
            f"sarek samplesheet of aligned files: run sarek with --step {ALIGNED_STEP} (files already duplicate-marked "
            f"and recalibrated; {others} for files only aligned)"
        )
    return f"sarek samplesheet: run sarek with --step {steps[0]}"


# ---------------------------------------------------------------------------------------------------- output


def to_csv(frame: pd.DataFrame) -> str:
    """The samplesheet as CSV text (empty cells for missing values)."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n", na_rep="")
    return buf.getvalue()


def build_sarek(
    donors: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    contamination: bool = True,
    fastq_folder: str | Path | None = None,
    bam_folder: str | Path | None = None,
    template: bool = False,
    check_files: bool = False,
) -> str:
    """The validated samplesheet CSV.

    Inputs come from ``fastq_folder`` (FASTQ pairs) or ``bam_folder`` (BAM/CRAM with indexes), not both; with neither,
    :class:`MissingInputFilesError` unless ``template`` (a sheet with empty ``lane,fastq_1,fastq_2`` to fill in).
    Raises :class:`ExportValidationError` (a ValueError) listing every problem the schema, sarek's cross-row rules
    or its start-up rule find.
    """
    if fastq_folder is not None and bam_folder is not None:
        raise ValueError(
            "sarek samplesheet: give FASTQs or aligned files, not both (FASTQs start at the mapping step, BAM/CRAM "
            "files at a later one, and one sarek run has one step)"
        )
    if fastq_folder is None and bam_folder is None and not template:
        raise MissingInputFilesError()
    frame = sarek_frame(donors, samples, contamination=contamination)
    if fastq_folder is not None:
        frame = match_fastqs(frame, fastq_folder)
    elif bam_folder is not None:
        frame = match_aligned(frame, bam_folder)
    else:
        frame = template_frame(frame)
    problems = validate_sarek(frame, check_files=check_files)
    if not template or fastq_folder is not None or bam_folder is not None:
        problems.extend(startup_problems(frame))
    refuse_problems("sarek samplesheet", problems)
    return to_csv(frame)


def write_sarek(
    path: str | Path,
    donors: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    contamination: bool = True,
    fastq_folder: str | Path | None = None,
    bam_folder: str | Path | None = None,
    template: bool = False,
    check_files: bool = False,
) -> Path:
    """Write the validated samplesheet to ``path`` (e.g. ``samplesheet.csv``) and return the path."""
    content = build_sarek(
        donors,
        samples,
        contamination=contamination,
        fastq_folder=fastq_folder,
        bam_folder=bam_folder,
        template=template,
        check_files=check_files,
    )
    return write_file(path, content)
