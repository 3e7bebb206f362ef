"""The pure export writers (biobank.exports.formats): small hand-built frames, no database."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from biobank.exports.formats import (
    DONOR_COLUMNS,
    SAMPLE_COLUMNS,
    ExportValidationError,
    Problem,
    cbioportal,
    clonal,
    fhir,
    migration,
    phenopacket,
    sarek,
    tables,
)

UTC = "UTC"


# ------------------------------------------------------------------------------------------------------ data


def make_donors() -> pd.DataFrame:
    rows = [
        {
            "donor_code": "RA-0001",
            "sex": "female",
            "age_at_death": 62,
            "primary_diagnosis": "Invasive ductal carcinoma of breast",
            "icdo3_topography": "C50.9",
            "icdo3_morphology": "8500/3",
            "primary_site_code": "breast",
            "primary_site_label": "Breast",
            "primary_site_uberon": "UBERON:0000310",
            "diagnosis_days_before_death": 1500,
            "cause_of_death": "Metastatic breast cancer",
            "death_at": pd.Timestamp("2024-03-01T10:00:00", tz=UTC),
        },
        {
            "donor_code": "RA-0002",
            "sex": "male",
            "age_at_death": None,
            "primary_diagnosis": "Adenocarcinoma of lung",
            "icdo3_topography": "C34.9",
            "icdo3_morphology": "8140/3",
            "primary_site_code": "lung",
            "primary_site_label": "Lung",
            "primary_site_uberon": "UBERON:0002048",
            "diagnosis_days_before_death": None,
            "cause_of_death": None,
            "death_at": pd.Timestamp("2024-05-02T22:30:00", tz=UTC),
        },
    ]
    frame = pd.DataFrame(rows, columns=list(DONOR_COLUMNS))
    frame["age_at_death"] = frame["age_at_death"].astype("Int64")
    frame["diagnosis_days_before_death"] = frame["diagnosis_days_before_death"].astype("Int64")
    return frame


def _sample(
    code,
    donor,
    role,
    *,
    lesion=None,
    kind=None,
    region,
    site,
    label,
    uberon,
    side="not_applicable",
    hours,
    pct=None,
    material="tissue",
    storage="snap_frozen",
    temp="LN",
    parent=None,
    lineage="primary",
):
    death = {
        "RA-0001": pd.Timestamp("2024-03-01T10:00:00", tz=UTC),
        "RA-0002": pd.Timestamp("2024-05-02T22:30", tz=UTC),
    }
    return {
        "specimen_code": code,
        "donor_code": donor,
        "parent_code": parent,
        "lineage": lineage,
        "material_type": material,
        "storage_format": storage,
        "role": role,
        "lesion_code": lesion,
        "lesion_kind": kind,
        "region_code": region,
        "site_code": site,
        "site_label": label,
        "site_uberon": uberon,
        "laterality": side,
        "collected_at": death[donor] + pd.Timedelta(hours=hours),
        "hours_after_death": float(hours),
        "tumour_cellularity_pct": pct,
        "storage_temperature": temp,
    }


def make_samples() -> pd.DataFrame:
    breast = {"site": "breast", "label": "Breast", "uberon": "UBERON:0000310", "side": "left"}
    liver = {"site": "liver", "label": "Liver", "uberon": "UBERON:0002107"}
    spine = {"site": "vertebra_T8", "label": "Vertebra T8", "uberon": "UBERON:0002412", "side": "midline"}
    rows = [
        # RA-0001: a breast primary and two metastases (liver, spine), two regions each
        _sample(
            "RA0001-L01A-SF1",
            "RA-0001",
            "tumour",
            lesion="L01",
            kind="primary",
            region="L01-A",
            **breast,
            hours=2.5,
            pct=70,
        ),
        _sample(
            "RA0001-L01B-SF1",
            "RA-0001",
            "tumour",
            lesion="L01",
            kind="primary",
            region="L01-B",
            **breast,
            hours=3.0,
            pct=60,
        ),
        _sample(
            "RA0001-L02A-SF1",
            "RA-0001",
            "tumour",
            lesion="L02",
            kind="metastasis",
            region="L02-A",
            **liver,
            hours=3.5,
            pct=50,
            temp="-60to-85",
        ),
        _sample(
            "RA0001-L02B-FF1",
            "RA-0001",
            "tumour",
            lesion="L02",
            kind="metastasis",
            region="L02-B",
            **liver,
            hours=4.0,
            pct=40,
            storage="ffpe",
            temp="RT",
        ),
        _sample(
            "RA0001-L03A-SF1",
            "RA-0001",
            "tumour",
            lesion="L03",
            kind="metastasis",
            region="L03-A",
            **spine,
            hours=5.0,
            pct=45,
        ),
        _sample(
            "RA0001-L03B-SF1",
            "RA-0001",
            "tumour",
            lesion="L03",
            kind="metastasis",
            region="L03-B",
            **spine,
            hours=5.5,
            pct=35,
        ),
        # germline blood (pre-mortem draw) and adjacent normal breast
        _sample(
            "RA0001-B01-WB1",
            "RA-0001",
            "germline_normal",
            region="B01",
            site="blood",
            label="Blood",
            uberon="UBERON:0000178",
            hours=-2.0,
            material="whole_blood",
            storage="frozen",
            temp="-60to-85",
        ),
        _sample("RA0001-N01-SF1", "RA-0001", "normal_tissue", region="N01", **breast, hours=2.0),
        # DNA extracted from the first primary region
        _sample(
            "RA0001-L01A-DNA1",
            "RA-0001",
            "tumour",
            lesion="L01",
            kind="primary",
            region="L01-A",
            **breast,
            hours=2.5,
            pct=70,
            material="dna",
            storage="frozen",
            temp="-18to-35",
            parent="RA0001-L01A-SF1",
            lineage="derivative",
        ),
        # RA-0002: lung primary, lymph-node metastasis, blood normal
        _sample(
            "RA0002-L01A-SF1",
            "RA-0002",
            "tumour",
            lesion="L01",
            kind="primary",
            region="L01-A",
            site="lung",
            label="Lung",
            uberon="UBERON:0002048",
            side="right",
            hours=6.0,
            pct=55,
        ),
        _sample(
            "RA0002-L02A-SF1",
            "RA-0002",
            "tumour",
            lesion="L02",
            kind="lymph_node",
            region="L02-A",
            site="lymph_node",
            label="Lymph node",
            uberon="UBERON:0000029",
            hours=6.5,
            pct=30,
        ),
        _sample(
            "RA0002-B01-WB1",
            "RA-0002",
            "germline_normal",
            region="B01",
            site="blood",
            label="Blood",
            uberon="UBERON:0000178",
            hours=1.0,
            material="whole_blood",
            storage="frozen",
            temp="-60to-85",
        ),
    ]
    frame = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    frame["tumour_cellularity_pct"] = frame["tumour_cellularity_pct"].astype("Float64")
    return frame


@pytest.fixture
def donors() -> pd.DataFrame:
    return make_donors()


@pytest.fixture
def samples() -> pd.DataFrame:
    return make_samples()


def assert_no_dates(text: str) -> None:
    assert "2024-" not in text, "absolute date leaked into a de-identified export"


# ---------------------------------------------------------------------------------------------- input contract


def test_missing_columns_are_named(donors, samples):
    with pytest.raises(ValueError, match=r"missing required column\(s\) for the sarek export: role"):
        sarek.build_sarek(donors, samples.drop(columns=["role"]), template=True)
    with pytest.raises(ValueError, match="sex"):
        clonal.build_clonal(donors.drop(columns=["sex"]), samples)
    with pytest.raises(ValueError, match="lesion_kind, site_code"):
        migration.build_machina(samples.drop(columns=["lesion_kind", "site_code"]))


def test_vocabulary_and_donor_checks(donors, samples):
    bad = samples.copy()
    bad.loc[0, "role"] = "tumor"
    with pytest.raises(ValueError, match="role: 'tumor'"):
        sarek.sarek_frame(donors, bad)
    with pytest.raises(ValueError, match="RA-0002"):
        sarek.sarek_frame(donors.iloc[:1], samples)


# -------------------------------------------------------------------------------------------------------- sarek


def test_a_sheet_without_input_files_is_refused_unless_a_template_is_asked_for(donors, samples):
    """sarek stops at start-up on a sheet without fastq_1/bam/cram/vcf ("Missing or unknown field in csv file
    header"): such a sheet is refused, and written only as a template when asked for, saying so."""
    with pytest.raises(sarek.MissingInputFilesError, match="no input files") as refused:
        sarek.build_sarek(donors, samples)
    assert isinstance(refused.value, ValueError) and "\n" not in str(refused.value)
    text = sarek.build_sarek(donors, samples, template=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["patient", "sex", "status", "sample", "lane", "fastq_1", "fastq_2", "contamination"]
    by_sample = {r["sample"]: r for r in rows}
    assert by_sample["RA0001-L01A-SF1"] == {
        "patient": "RA-0001",
        "sex": "XX",
        "status": "1",
        "sample": "RA0001-L01A-SF1",
        "lane": "",
        "fastq_1": "",
        "fastq_2": "",
        "contamination": "0.3",
    }
    assert by_sample["RA0001-B01-WB1"]["status"] == "0"
    assert by_sample["RA0001-B01-WB1"]["contamination"] == "0.0"
    assert by_sample["RA0002-B01-WB1"]["sex"] == "XY"
    assert sarek.validate_sarek(rows) == [], "the template passes the schema"
    stops = sarek.startup_problems(rows)
    assert len(stops) == len(rows) and sarek.STARTUP_ERROR in stops[0].message, "but sarek cannot start from it"
    assert sarek.describe_sheet(text).startswith("sarek samplesheet TEMPLATE") and "stops" in sarek.describe_sheet(text)
    without = sarek.build_sarek(donors, samples, contamination=False, template=True)
    assert without.splitlines()[0] == "patient,sex,status,sample,lane,fastq_1,fastq_2"
    assert_no_dates(text)


def test_sarek_start_up_rule_and_steps():
    """samplesheet_to_channel (sarek 3.10.0): the branches it takes and the --step each allows."""
    base = {"patient": "P1", "sex": "XX", "status": "1", "sample": "T1"}
    fastq = base | {"lane": "1", "fastq_1": "/x/T1_R1.fq.gz", "fastq_2": "/x/T1_R2.fq.gz"}
    single_end = base | {"lane": "1", "fastq_1": "/x/T1_R1.fq.gz"}
    bam = base | {"bam": "/x/T1.bam", "bai": "/x/T1.bam.bai"}
    cram = base | {"cram": "/x/T1.cram", "crai": "/x/T1.cram.crai"}
    vcf = base | {"vcf": "/x/T1.vcf.gz"}
    assert sarek.sarek_steps([fastq]) == ["mapping"]
    assert sarek.sarek_steps([bam]) == sarek.sarek_steps([cram]) == list(sarek.ALIGNED_STEPS)
    assert "mapping" not in sarek.ALIGNED_STEPS and "annotate" not in sarek.ALIGNED_STEPS
    assert sarek.sarek_steps([vcf]) == ["annotate"]
    assert sarek.startup_problems([fastq, base | {"sample": "T2"}])[0].row == 2
    assert sarek.startup_problems([single_end]), "a lane with fastq_1 only takes no branch"
    mixed = sarek.startup_problems([fastq, bam | {"sample": "T2"}])
    assert len(mixed) == 1 and "different sarek steps" in mixed[0].message
    assert "--step variant_calling" in sarek.describe_sheet("patient,sample,bam,bai\nP1,T1,/x/T1.bam,/x/T1.bai\n")
    assert "--step mapping" in sarek.describe_sheet(
        "patient,sample,lane,fastq_1,fastq_2\nP1,T1,1,/x/a_R1.fq.gz,/x/a_R2.fq.gz\n"
    )


def test_bam_and_cram_folder_fills_the_aligned_columns(tmp_path, donors, samples):
    two = samples[samples["donor_code"] == "RA-0002"]
    _touch(
        tmp_path,
        "RA0002-L01A-SF1.bam",
        "RA0002-L01A-SF1.bam.bai",
        "RA0002-L02A-SF1.bam",
        "RA0002-L02A-SF1.bai",
        "RA0002-B01-WB1.cram",
        "RA0002-B01-WB1.cram.crai",
        "RA0002-L01A-SF1-DNA1.bam",
    )
    text = sarek.build_sarek(donors, two, bam_folder=tmp_path, check_files=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["patient", "sex", "status", "sample", "bam", "bai", "cram", "crai", "contamination"]
    by_sample = {r["sample"]: r for r in rows}
    assert Path(by_sample["RA0002-L02A-SF1"]["bai"]).name == "RA0002-L02A-SF1.bai"
    assert by_sample["RA0002-B01-WB1"]["bam"] == "" and by_sample["RA0002-B01-WB1"]["crai"].endswith(".cram.crai")
    assert all(Path(r["bam"] or r["cram"]).is_absolute() for r in rows)
    assert sarek.validate_sarek(rows, check_files=True) == [] and sarek.startup_problems(rows) == []
    assert sarek.sarek_steps(rows) == list(sarek.ALIGNED_STEPS)
    (tmp_path / "RA0002-L01A-SF1.bam.bai").unlink()
    (tmp_path / "RA0002-B01-WB1.bam").write_bytes(b"")
    with pytest.raises(ValueError) as info:
        sarek.build_sarek(donors, two, bam_folder=tmp_path)
    message = str(info.value)
    assert "RA0002-L01A-SF1: RA0002-L01A-SF1.bam has no index" in message
    assert "RA0002-B01-WB1: both RA0002-B01-WB1.bam and RA0002-B01-WB1.cram" in message
    with pytest.raises(ValueError, match="not both"):
        sarek.build_sarek(donors, two, bam_folder=tmp_path, fastq_folder=tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        sarek.build_sarek(donors, two, bam_folder=tmp_path / "nowhere")


def test_sarek_rows_validate_against_the_shipped_schema(donors, samples):
    schema = sarek.load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    reference = Path("/work/shared/reference/nf-core-sarek-3.10.0-schema_input.json")
    if reference.exists():
        assert schema == json.loads(reference.read_text())
    typed = sarek.to_schema_rows(
        list(csv.DictReader(io.StringIO(sarek.build_sarek(donors, samples, template=True))))
    )
    assert typed[0]["status"] == 1 and isinstance(typed[0]["contamination"], float)
    jsonschema.Draft202012Validator(schema).validate(typed)  # raises if invalid
    assert sarek.validate_sarek(typed) == []


def test_sarek_schema_errors_name_row_and_field():
    rows = [
        {"patient": "P1", "sex": "F", "status": "1", "sample": "S1"},
        {"patient": "P1", "sex": "XX", "status": "2", "sample": "S 2"},
        {"patient": "P1", "sex": "XX", "status": "0", "sample": "S3", "lane": "1"},
        {"patient": "P1", "sex": "XX", "status": "0", "sample": "S4", "fastq_2": "/x/S4_R2.fq.gz"},
    ]
    problems = sarek.validate_sarek(rows)
    found = {(p.row, p.field) for p in problems}
    assert (1, "sex") in found
    assert (2, "status") in found and (2, "sample") in found
    assert any(p.row == 3 and "lane" in p.message for p in problems)
    assert any(p.row == 4 and p.field == "fastq_1" for p in problems)
    assert "Sex must be one of" in str(next(p for p in problems if p.field == "sex"))


def _sheet(rows):
    return [dict(zip(("patient", "sex", "status", "sample"), r, strict=True)) for r in rows]


def test_sarek_cross_row_one_tumour_many_normals():
    rows = _sheet([("P1", "XX", 1, "T1"), ("P1", "XX", 0, "N1"), ("P1", "XX", 0, "N2")])
    problems = sarek.validate_sarek(rows)
    assert len(problems) == 1 and "one tumour" in problems[0].message
    rows.append({"patient": "P1", "sex": "XX", "status": 1, "sample": "T2"})
    assert sarek.validate_sarek(rows) == []


def test_sarek_cross_row_duplicate_patient_sample_lane():
    rows = _sheet([("P1", "XX", 1, "T1"), ("P1", "XX", 0, "N1"), ("P1", "XX", 1, "T1")])
    problems = sarek.validate_sarek(rows)
    assert [(p.row, p.field) for p in problems] == [(3, "sample")]
    assert "duplicate" in problems[0].message and "row 1" in problems[0].message


def test_sarek_cross_row_sample_under_two_patients():
    rows = _sheet(
        [("P1", "XX", 1, "T1"), ("P1", "XX", 0, "N1"), ("P2", "XY", 1, "T1"), ("P2", "XY", 0, "N2")]
    )
    problems = sarek.validate_sarek(rows)
    assert len(problems) == 1
    assert problems[0].row == 3 and "patient P2 and patient P1" in problems[0].message


def test_build_sarek_raises_with_problems(donors, samples):
    dup = pd.concat([samples, samples.iloc[[0]].assign(donor_code="RA-0002")], ignore_index=True)
    with pytest.raises(ValueError, match="repeats specimen_code"):
        sarek.build_sarek(donors, dup, template=True)
    # RA-0002 with its lymph-node metastasis left out but an extra normal: one tumour, two normals
    extra_normal = samples.iloc[[7]].assign(donor_code="RA-0002", specimen_code="RA0002-N01-SF1")
    one_tumour = pd.concat(
        [samples[samples["specimen_code"] != "RA0002-L02A-SF1"], extra_normal], ignore_index=True
    )
    with pytest.raises(ExportValidationError) as info:
        sarek.build_sarek(donors, one_tumour, template=True)
    assert isinstance(info.value, ValueError)
    assert [p.field for p in info.value.problems] == ["status"]
    assert "patient RA-0002 has one tumour" in str(info.value)


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"")


def test_match_fastqs_lanes_and_paths(tmp_path, donors, samples):
    two = samples[samples["donor_code"] == "RA-0002"]
    _touch(
        tmp_path,
        "RA0002-L01A-SF1_S1_L001_R1_001.fastq.gz",
        "RA0002-L01A-SF1_S1_L001_R2_001.fastq.gz",
        "RA0002-L01A-SF1_S1_L002_R1_001.fastq.gz",
        "RA0002-L01A-SF1_S1_L002_R2_001.fastq.gz",
        "RA0002-L02A-SF1_R1.fq.gz",
        "RA0002-L02A-SF1_R2.fq.gz",
        "RA0002-B01-WB1_S3_L004_R1_001.fastq.gz",
        "RA0002-B01-WB1_S3_L004_R2_001.fastq.gz",
        "UNRELATED_R1.fq.gz",
        "notes.txt",
    )
    frame = sarek.match_fastqs(sarek.sarek_frame(donors, two), tmp_path)
    assert list(frame.columns) == [*sarek.COLUMNS, "contamination"]
    assert frame[["sample", "lane"]].values.tolist() == [
        ["RA0002-L01A-SF1", 1],
        ["RA0002-L01A-SF1", 2],
        ["RA0002-L02A-SF1", 1],
        ["RA0002-B01-WB1", 4],
    ]
    assert Path(frame.loc[1, "fastq_2"]).name == "RA0002-L01A-SF1_S1_L002_R2_001.fastq.gz"
    assert all(Path(p).is_absolute() for p in frame["fastq_1"])
    assert sarek.validate_sarek(frame, check_files=True) == []
    text = sarek.build_sarek(donors, two, fastq_folder=tmp_path, check_files=True)
    assert text.splitlines()[0] == "patient,sex,status,sample,lane,fastq_1,fastq_2,contamination"
    assert len(text.splitlines()) == 5


def test_match_fastqs_errors(tmp_path, donors, samples):
    two = samples[samples["donor_code"] == "RA-0002"]
    frame = sarek.sarek_frame(donors, two)
    _touch(
        tmp_path,
        "RA0002-L01A-SF1_S1_L001_R1_001.fastq.gz",
        "RA0002-L02A-SF1_R1.fq.gz",
        "RA0002-L02A-SF1_R2.fq.gz",
    )
    with pytest.raises(ValueError) as info:
        sarek.match_fastqs(frame, tmp_path)
    message = str(info.value)
    assert "RA0002-L01A-SF1 lane 1: R1 without R2" in message
    assert "no FASTQ files" in message and "RA0002-B01-WB1" in message
    with pytest.raises(ValueError, match="does not exist"):
        sarek.match_fastqs(frame, tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------------------- clonal


def test_clonal_table(donors, samples):
    frame = clonal.clonal_frame(donors, samples)
    assert list(frame.columns) == [
        "sample_id",
        "donor",
        "lesion",
        "region",
        "anatomical_site",
        "site_category",
        "tumour_content",
        "sex",
    ]
    assert len(frame) == int((samples["role"] == "tumour").sum()) == 9
    assert set(frame["sample_id"]) == set(samples.loc[samples["role"] == "tumour", "specimen_code"])
    assert frame["tumour_content"].between(0, 1).all()
    row = frame.set_index("sample_id").loc["RA0001-L02B-FF1"]
    assert row["tumour_content"] == pytest.approx(0.40)
    assert row["site_category"] == "metastasis" and row["anatomical_site"] == "Liver"
    assert frame.set_index("sample_id").loc["RA0002-L02A-SF1", "site_category"] == "metastasis"
    assert frame.set_index("sample_id").loc["RA0001-L01B-SF1", "anatomical_site"] == "Breast_left"
    assert not frame["anatomical_site"].str.contains(r"[:\s,]").any()
    assert set(frame["sex"]) == {"XX", "XY"}
    tsv = clonal.build_clonal(donors, samples)
    assert tsv.splitlines()[0].split("\t") == list(clonal.COLUMNS)
    conipher = clonal.conipher_frame(frame)
    assert list(conipher.columns) == ["CASE_ID", "SAMPLE", "ACF", "PLOIDY"]
    assert conipher["ACF"].tolist() == frame["tumour_content"].tolist()
    assert (conipher["PLOIDY"] == 2.0).all()
    assert conipher["SAMPLE"].tolist()[0] == "RA0001.L01A.SF1", "in CONIPHER's alphabet ('-' read as '.')"
    ids = clonal.conipher_ids(frame)
    assert dict(zip(ids["SAMPLE"], ids["sample_id"], strict=True))["RA0001.L01A.SF1"] == "RA0001-L01A-SF1"


def test_conipher_sample_ids_and_collisions():
    assert clonal.conipher_sample_id("RA0001-L01A-SF1") == "RA0001.L01A.SF1"
    assert clonal.conipher_sample_id("1-A") == "X1.A" and clonal.conipher_sample_id("a b/c") == "a.b.c"
    frame = pd.DataFrame({"donor": ["D1", "D1"], "sample_id": ["S-1", "S.1"], "tumour_content": [0.5, 0.6]})
    with pytest.raises(ExportValidationError, match=r"S-1 and S\.1 both become S\.1|S\.1 and S-1 both become S\.1"):
        clonal.conipher_frame(frame)


def test_clonal_requires_purity(donors, samples):
    bad = samples.copy()
    bad.loc[bad["specimen_code"] == "RA0001-L03B-SF1", "tumour_cellularity_pct"] = pd.NA
    with pytest.raises(ValueError, match="RA0001-L03B-SF1: tumour cellularity not recorded"):
        clonal.build_clonal(donors, bad)
    frame = clonal.clonal_frame(donors, bad, allow_missing_purity=True)
    assert frame["tumour_content"].isna().sum() == 1
    bad.loc[0, "tumour_cellularity_pct"] = 140
    with pytest.raises(ValueError, match="0-100"):
        clonal.build_clonal(donors, bad, allow_missing_purity=True)


def test_write_clonal_one_file_per_donor(tmp_path, donors, samples):
    paths = clonal.write_clonal(tmp_path, donors, samples)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in paths) == sorted([
        "README.txt",
        "RA-0001.tsv",
        "RA-0002.tsv",
        "conipher/README.txt",
        "conipher/RA-0001.conipher.tsv",
        "conipher/RA-0002.conipher.tsv",
        "conipher/conipher_sample_ids.tsv",
    ])
    one = pd.read_csv(tmp_path / "RA-0001.tsv", sep="\t")
    assert one.shape == (7, 8) and set(one["donor"]) == {"RA-0001"}
    assert set(pd.read_csv(tmp_path / "conipher/RA-0002.conipher.tsv", sep="\t")["CASE_ID"]) == {"RA-0002"}


# ---------------------------------------------------------------------------------------------------- migration


def test_machina_inputs_per_donor(samples):
    inputs = migration.build_machina(samples)
    assert list(inputs) == ["RA-0001", "RA-0002"]
    one = inputs["RA-0001"]
    assert one.primary == "Breast_left"
    assert one.sites == {
        "RA0001-L01A-SF1": "Breast_left",
        "RA0001-L01B-SF1": "Breast_left",
        "RA0001-L02A-SF1": "Liver",
        "RA0001-L02B-FF1": "Liver",
        "RA0001-L03A-SF1": "Vertebra_T8",
        "RA0001-L03B-SF1": "Vertebra_T8",
        "RA0001-L01A-DNA1": "Breast_left",
    }
    assert tuple(one.samples.columns) == migration.MACHINA_SAMPLE_COLUMNS
    assert one.samples["sample_index"].tolist() == list(range(7))
    assert one.samples.drop_duplicates("anatomical_site_index")["anatomical_site_label"].tolist() == [
        "Breast_left", "Liver", "Vertebra_T8",
    ], "the primary site first"
    assert one.colors == "Breast_left\t1\nLiver\t2\nVertebra_T8\t3\n"
    assert inputs["RA-0002"].primary == "Lung_right"
    assert migration.validate_machina(inputs.values()) == []


def test_machina_frequency_file_and_leaf_labeling(samples):
    item = migration.build_machina(samples)["RA-0002"]
    codes = list(item.samples["sample_label"])
    clusters = pd.DataFrame(
        [{"sample_label": s, "character_label": c, "f_lb": 0.1, "f_ub": 0.4} for s in codes for c in ("A", "B")]
    )
    text = migration.machina_frequencies(item, clusters)
    lines = text.splitlines()
    assert lines[:3] == ["2 #anatomical sites", f"{len(codes)} #samples", "2 #mutations"]
    assert lines[3].startswith("#sample_index\tsample_label")
    assert lines[4].split("\t") == ["0", codes[0], "0", "Lung_right", "0", "A", "0.1", "0.4"]
    with pytest.raises(ExportValidationError, match="no frequency for"):
        migration.machina_frequencies(item, clusters.iloc[1:])
    with pytest.raises(ExportValidationError, match="is not a sample of this donor"):
        migration.machina_frequencies(item, clusters.assign(sample_label="RA0001-L01A-SF1"))
    with pytest.raises(ExportValidationError, match="f_lb <= f_ub"):
        migration.machina_frequencies(item, clusters.assign(f_lb=0.5))
    labeling = migration.machina_leaf_labeling(item, "A B\nA A_Lung_right\nB B_Lymph_node\n")
    assert labeling.splitlines()[0] == "A_Lung_right\tLung_right"
    with pytest.raises(ValueError, match="B_nowhere"):
        migration.machina_leaf_labeling(item, "A B\nB B_nowhere\n")


def test_labels_sanitised_and_unique_per_site(samples):
    odd = samples.copy()
    liver = odd["site_code"] == "liver"
    odd.loc[liver, "site_label"] = "Liver: segment 4"
    spine = odd["site_code"] == "vertebra_T8"
    odd.loc[spine, "site_label"] = "Liver segment 4"  # a different site whose safe label would collide
    labels = migration.build_machina(odd)["RA-0001"].sites
    assert labels["RA0001-L02A-SF1"] == labels["RA0001-L02B-FF1"] == "Liver_segment_4"
    assert labels["RA0001-L03A-SF1"] == "Liver_segment_4_2"
    frame = migration.metient_frame(odd)
    assert not frame["anatomical_site_label"].str.contains(r"[:\s]").any()


def test_metient_table(samples):
    frame = migration.metient_frame(samples)
    assert list(frame.columns) == [
        "sample_id",
        "donor",
        "anatomical_site_index",
        "anatomical_site_label",
        "site_category",
        "purity",
    ]
    one = frame[frame["donor"] == "RA-0001"].drop_duplicates("anatomical_site_label")
    assert one[["anatomical_site_index", "anatomical_site_label", "site_category"]].values.tolist() == [
        [0, "Breast_left", "primary"],
        [1, "Liver", "metastasis"],
        [2, "Vertebra_T8", "metastasis"],
    ]
    assert frame.set_index("sample_id").loc["RA0001-L02B-FF1", "purity"] == pytest.approx(0.40)
    assert set(frame["site_category"]) == {"primary", "metastasis"}
    assert migration.validate_metient(frame) == []
    files = migration.metient_files(samples)
    assert sorted(files) == ["RA-0001.tsv", "RA-0002.tsv", "README.txt"]
    assert set(pd.read_csv(io.StringIO(files["RA-0002.tsv"]), sep="\t")["donor"]) == {"RA-0002"}
    no_purity = samples.copy()
    no_purity.loc[no_purity["specimen_code"] == "RA0001-L03B-SF1", "tumour_cellularity_pct"] = pd.NA
    with pytest.raises(ExportValidationError, match="RA0001-L03B-SF1: tumour cellularity not recorded"):
        migration.metient_frame(no_purity)


def test_unknown_primary(samples):
    metastases_only = samples[~((samples["donor_code"] == "RA-0002") & (samples["lesion_kind"] == "primary"))]
    assert migration.build_machina(metastases_only)["RA-0002"].primary is None
    with pytest.raises(ValueError, match="RA-0002: no sample from a primary site"):
        migration.metient_frame(metastases_only)


def test_an_invalid_metient_table_lists_its_problems_on_the_first_line(samples):
    """Reported: "Metient sample table export is invalid (1 problem(s)):" listing none where a page shows the first
    line of the error."""
    metastases_only = samples[~((samples["donor_code"] == "RA-0002") & (samples["lesion_kind"] == "primary"))]
    with pytest.raises(ExportValidationError) as info:
        migration.metient_frame(metastases_only)
    first = str(info.value).splitlines()[0]
    assert first.startswith("Metient sample table export is invalid (1 problem): site_category: RA-0002: no sample ")
    assert len(info.value.problems) == 1


def test_many_problems_are_listed_up_to_ten_and_counted():
    problems = [Problem(n, "label", f"bad label {n}") for n in range(1, 13)]
    message = str(ExportValidationError("MACHINA labelling", problems))
    assert message.startswith("MACHINA labelling export is invalid (12 problems): row 1, label: bad label 1; ")
    assert message.endswith("row 10, label: bad label 10; and 2 more") and "\n" not in message


def test_write_migration(tmp_path, samples):
    paths = migration.write_migration(tmp_path, samples)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in paths)
    assert names == sorted([
        "machina/README.txt",
        "machina/RA-0001.samples.tsv",
        "machina/RA-0001.colors",
        "machina/RA-0001.primary",
        "machina/RA-0002.samples.tsv",
        "machina/RA-0002.colors",
        "machina/RA-0002.primary",
        "metient/README.txt",
        "metient/RA-0001.tsv",
        "metient/RA-0002.tsv",
    ])
    assert (tmp_path / "machina/RA-0001.primary").read_text() == "Breast_left\n"


def test_no_sampled_primary_is_a_note_for_machina(samples):
    metastases_only = samples[~((samples["donor_code"] == "RA-0002") & (samples["lesion_kind"] == "primary"))]
    files, notes = migration.machina_files(metastases_only)
    assert "RA-0002.primary" not in files and "RA-0001.primary" in files
    assert notes == [files["NOTES.txt"].strip()] and notes[0].startswith("RA-0002: no primary site was sampled")


# --------------------------------------------------------------------------------------------------- cBioPortal


def _study(donors, samples):
    return cbioportal.build_cbioportal(
        donors,
        samples,
        study_id="ra_biobank_2024",
        name="Rapid autopsy cohort",
        description="Multiregion rapid-autopsy samples",
        type_of_cancer="mixed",
    )


def test_cbioportal_study(donors, samples):
    files = _study(donors, samples)
    assert sorted(files) == sorted(cbioportal.FILES)
    assert cbioportal.parse_meta(files["meta_clinical_sample.txt"]) == {
        "cancer_study_identifier": "ra_biobank_2024",
        "genetic_alteration_type": "CLINICAL",
        "datatype": "SAMPLE_ATTRIBUTES",
        "data_filename": "data_clinical_sample.txt",
    }
    assert cbioportal.parse_meta(files["meta_clinical_patient.txt"])["datatype"] == "PATIENT_ATTRIBUTES"
    study = cbioportal.parse_meta(files["meta_study.txt"])
    assert {"type_of_cancer", "cancer_study_identifier", "name", "description"} <= set(study)
    for name, n_rows, id_cols in (
        ("data_clinical_patient.txt", 2, ["PATIENT_ID"]),
        ("data_clinical_sample.txt", 11, ["PATIENT_ID", "SAMPLE_ID"]),  # L01-A: its DNA, not also the block
    ):
        lines = files[name].rstrip("\n").split("\n")
        assert all(line.startswith("#") for line in lines[:4])
        assert not lines[4].startswith("#")
        assert lines[2].startswith("#") and set(lines[2][1:].split("\t")) <= {"STRING", "NUMBER", "BOOLEAN"}
        widths = {len(line.split("\t")) for line in lines}
        assert len(widths) == 1, f"{name}: ragged columns {widths}"
        names = lines[4].split("\t")
        assert names[: len(id_cols)] == id_cols
        assert "MUTATION_COUNT" not in names and "FRACTION_GENOME_ALTERED" not in names
        assert len(lines) == 5 + n_rows
        assert_no_dates(files[name])
    patients = pd.read_csv(
        io.StringIO(files["data_clinical_patient.txt"]), sep="\t", comment="#", keep_default_na=False
    )
    assert patients.columns[:4].tolist() == ["PATIENT_ID", "SEX", "AGE", "AGE_AT_DEATH"]
    p1 = patients.set_index("PATIENT_ID").loc["RA-0001"]
    assert p1["OS_STATUS"] == "1:DECEASED" and p1["SEX"] == "Female"
    assert float(p1["OS_MONTHS"]) == pytest.approx(1500 / (365.25 / 12), abs=0.01)
    assert patients.set_index("PATIENT_ID").loc["RA-0002", "AGE"] == "NA"
    sample_frame = pd.read_csv(
        io.StringIO(files["data_clinical_sample.txt"]), sep="\t", skiprows=4, keep_default_na=False
    )
    by_id = sample_frame.set_index("SAMPLE_ID")
    assert "RA0001-L01A-SF1" not in by_id.index, "the block whose DNA was extracted is not a sample of its own"
    assert by_id.loc["RA0001-L01A-DNA1", "SAMPLE_TYPE"] == "Primary"
    assert by_id.loc["RA0001-L02A-SF1", ["SAMPLE_TYPE", "METASTATIC_SITE", "PRIMARY_SITE"]].tolist() == [
        "Metastasis",
        "Liver",
        "Breast",
    ]
    assert by_id.loc["RA0001-N01-SF1", "SAMPLE_TYPE"] == "Normal"
    assert by_id.loc["RA0001-L01A-DNA1", "CANCER_TYPE"] == "Invasive ductal carcinoma of breast"
    assert "MODEL_ID" not in sample_frame.columns, "no model attributes without model material"
    assert cbioportal.validate_cbioportal(files) == []


def _sample_ids(files) -> list[str]:
    frame = pd.read_csv(
        io.StringIO(files["data_clinical_sample.txt"]), sep="\t", skiprows=4, keep_default_na=False
    )
    return frame["SAMPLE_ID"].tolist()


def test_cbioportal_samples_are_the_analytes_sequenced(donors, samples):
    base = {c: samples.iloc[0][c] for c in samples.columns}  # RA0001-L01A-SF1: primary, region L01-A, 70 %
    extra = [
        # the DNA split in two aliquots: still one analyte, the extract
        base | {"specimen_code": "RA0001-L01A-DNA1-A1", "parent_code": "RA0001-L01A-DNA1", "lineage": "aliquot",
                "material_type": "dna", "storage_format": "frozen"},
        base | {"specimen_code": "RA0001-L01A-DNA1-A2", "parent_code": "RA0001-L01A-DNA1", "lineage": "aliquot",
                "material_type": "dna", "storage_format": "frozen"},
        # RNA of the same block: another analyte
        base | {"specimen_code": "RA0001-L01A-RNA1", "parent_code": "RA0001-L01A-SF1", "lineage": "derivative",
                "material_type": "rna", "storage_format": "frozen"},
        # region L01-B, nothing extracted: an FFPE block with more tumour than the snap-frozen one, and a section
        base | {"specimen_code": "RA0001-L01B-FF1", "region_code": "L01-B", "storage_format": "ffpe",
                "tumour_cellularity_pct": 80.0},
        base | {"specimen_code": "RA0001-L01B-FF1-S1", "region_code": "L01-B", "storage_format": "ffpe",
                "parent_code": "RA0001-L01B-FF1", "lineage": "derivative", "material_type": "section",
                "tumour_cellularity_pct": 80.0},
    ]
    more = pd.concat([samples, pd.DataFrame(extra)], ignore_index=True)
    ids = _sample_ids(_study(donors, more))
    assert "RA0001-L01A-DNA1" in ids and "RA0001-L01A-RNA1" in ids
    assert not {"RA0001-L01A-SF1", "RA0001-L01A-DNA1-A1", "RA0001-L01A-DNA1-A2"} & set(ids)
    region_b = [i for i in ids if i.startswith("RA0001-L01B")]
    assert region_b == ["RA0001-L01B-FF1"], "one representative: the highest cellularity, the block before its section"
    assert len(ids) == len(set(ids)) == 12
    # a plan's export writes its chosen specimens as they are
    given = cbioportal.build_cbioportal(
        donors, more, study_id="x", name="X", description="Y", sequenced_level=False
    )
    assert sorted(_sample_ids(given)) == sorted(more["specimen_code"])


def test_cbioportal_marks_material_grown_in_a_model(donors, samples):
    base = {c: samples.iloc[2][c] for c in samples.columns}  # RA0001-L02A-SF1: liver metastasis
    grown = [
        base | {"specimen_code": "RA0001-L02A-PDX1-P4-SF1", "hours_after_death": 4000.0, "model_code": "RA0001-L02A-PDX1",
                "model_kind": "pdx", "passage": "P4", "passage_number": 4, "host": "NSG",
                "model_source_code": "RA0001-L02A-SF1"},
        base | {"specimen_code": "RA0001-L02A-ORG1-P2-VC1", "storage_format": "viable_cryo", "material_type": "cells",
                "hours_after_death": 900.0, "model_code": "RA0001-L02A-ORG1", "model_kind": "organoid",
                "passage": "P2", "passage_number": 2, "host": None, "model_source_code": "RA0001-L02A-SF1"},
    ]
    files = _study(donors, pd.concat([samples, pd.DataFrame(grown)], ignore_index=True))
    assert cbioportal.validate_cbioportal(files) == []
    frame = pd.read_csv(
        io.StringIO(files["data_clinical_sample.txt"]), sep="\t", skiprows=4, keep_default_na=False
    ).set_index("SAMPLE_ID")
    pdx, organoid, patient = (
        frame.loc["RA0001-L02A-PDX1-P4-SF1"], frame.loc["RA0001-L02A-ORG1-P2-VC1"], frame.loc["RA0001-L02A-SF1"]
    )
    assert (pdx["SAMPLE_TYPE"], pdx["MODEL_ID"], pdx["PASSAGE"], pdx["PASSAGE_NUMBER"], pdx["MOUSE_STRAIN"]) == (
        "Xenograft", "RA0001-L02A-PDX1", "P4", "4", "NSG",
    )
    assert pdx["MODEL_SOURCE_SAMPLE_ID"] == "RA0001-L02A-SF1" and pdx["HOURS_AFTER_DEATH"] == "NA"
    assert (organoid["SAMPLE_TYPE"], organoid["MOUSE_STRAIN"]) == ("Organoid", "NA")
    assert patient["SAMPLE_TYPE"] == "Metastasis" and patient["MODEL_ID"] == "NA", "each passage is its own sample"


def test_cbioportal_validator_catches_errors(donors, samples):
    files = _study(donors, samples)
    bad = dict(files)
    lines = bad["data_clinical_sample.txt"].rstrip("\n").split("\n")
    bad["data_clinical_sample.txt"] = "\n".join(
        [line + ("\tx" if i < 4 else "\tMUTATION_COUNT" if i == 4 else "\t3") for i, line in enumerate(lines)]
    )
    bad["meta_clinical_patient.txt"] = bad["meta_clinical_patient.txt"].replace("CLINICAL", "MUTATION")
    problems = cbioportal.validate_cbioportal(bad)
    messages = " ".join(str(p) for p in problems)
    assert "MUTATION_COUNT is computed by cBioPortal" in messages
    assert "genetic_alteration_type" in messages
    assert "datatype 'x'" in messages


def test_cbioportal_validator_applies_cbioportals_own_attribute_rules(donors, samples):
    files = _study(donors, samples)
    lines = files["data_clinical_sample.txt"].rstrip("\n").split("\n")
    extra = ["Age", "Age", "NUMBER", "-2", "AGE"]  # AGE is cBioPortal's patient-level attribute; priority below -1
    bad = dict(files)
    bad["data_clinical_sample.txt"] = "\n".join(
        [("" if i >= 4 else "#") + (line[1:] if i < 4 else line) + "\t" + (extra[i] if i < 5 else "60")
         for i, line in enumerate(lines)]
    ).replace("RA0001-N01-SF1", "RA0001-N01-SF1-" + "X" * 60)
    messages = " ".join(str(p) for p in cbioportal.validate_cbioportal(bad))
    assert "AGE as a patient-level attribute" in messages
    assert "priority '-2'" in messages
    assert "longer than 63 characters" in messages
    assert "defined both as a patient-level and as a sample-level attribute" in messages


def test_write_cbioportal(tmp_path, donors, samples):
    paths = cbioportal.write_cbioportal(
        tmp_path / "study", donors, samples, study_id="ra_x", name="X", description="Y"
    )
    assert sorted(p.name for p in paths) == sorted(cbioportal.FILES)


# -------------------------------------------------------------------------------------------------- phenopacket


def test_phenopackets_parse_back_with_terms(donors, samples):
    from google.protobuf import json_format
    from phenopackets import Phenopacket, Sex, VitalStatus

    packets = phenopacket.build_phenopackets(
        donors, samples, created=pd.Timestamp("2025-01-01", tz=UTC).to_pydatetime()
    )
    assert sorted(packets) == ["RA-0001", "RA-0002"]
    text = packets["RA-0001"]
    packet = json_format.Parse(text, Phenopacket())
    assert packet.id == "RA-0001" and packet.subject.sex == Sex.FEMALE
    assert packet.subject.vital_status.status == VitalStatus.DECEASED
    assert packet.subject.vital_status.time_of_death.age.iso8601duration == "P62Y"
    assert packet.subject.vital_status.survival_time_in_days == 1500
    assert packet.meta_data.phenopacket_schema_version == "2.0"
    assert {"UBERON", "NCIT", "EFO"} <= {r.namespace_prefix for r in packet.meta_data.resources}
    assert len(packet.biosamples) == 9
    bio = {b.id: b for b in packet.biosamples}
    primary = bio["RA0001-L01A-SF1"]
    assert primary.tumor_progression.id == "NCIT:C84509"
    assert primary.material_sample.id == "EFO:0009655"
    assert primary.sampled_tissue.id == "UBERON:0000310"
    assert primary.individual_id == "RA-0001"
    assert primary.time_of_collection.age.iso8601duration == "P62Y"
    assert "PT2H30M after death" in primary.description
    assert bio["RA0001-L02A-SF1"].tumor_progression.id == "NCIT:C3261"
    blood = bio["RA0001-B01-WB1"]
    assert blood.material_sample.id == "EFO:0009654" and not blood.HasField("tumor_progression")
    assert not blood.HasField("time_of_collection")  # pre-mortem draw: no age claimed
    assert "PT2H before death" in blood.description
    assert bio["RA0001-L01A-DNA1"].derived_from_id == "RA0001-L01A-SF1"
    assert packet.diseases[0].term.id == "ICDO:8500/3"
    assert phenopacket.validate_phenopacket(text) == []
    assert "death_at" not in text and "collected_at" not in text
    assert_no_dates(text)

    two = json_format.Parse(packets["RA-0002"], Phenopacket())
    assert not two.subject.vital_status.HasField("time_of_death")
    assert two.biosamples[1].tumor_progression.id == "NCIT:C3261"  # lymph-node metastasis


def test_phenopacket_validation_finds_problems():
    assert phenopacket.validate_phenopacket('{"id": "x", "unknownField": 1}')[0].message.startswith(
        "does not parse"
    )
    problems = phenopacket.validate_phenopacket(json.dumps({"id": "x", "subject": {"id": "x"}}))
    assert any(p.field == "meta_data" for p in problems)


def test_write_phenopackets(tmp_path, donors, samples):
    paths = phenopacket.write_phenopackets(tmp_path, donors, samples)
    assert [p.name for p in paths] == ["RA-0001.json", "RA-0002.json"]


# --------------------------------------------------------------------------------------------------------- FHIR


def test_fhir_bundle_revalidates(donors, samples):
    from fhir.resources.R4B.bundle import Bundle

    text = fhir.build_fhir(donors, samples)
    bundle = Bundle.model_validate_json(text)  # strict R4 (R4B: the same Patient, Specimen, Condition, Group)
    assert bundle.type == "transaction"
    kinds = [e.resource.get_resource_type() for e in bundle.entry]
    assert kinds.count("Patient") == 2 and kinds.count("Specimen") == 12 and kinds.count("Condition") == 2
    assert kinds.count("Group") == 1 and kinds.count("Organization") == 3
    raw = json.loads(text)
    assert all(e["request"]["method"] == "PUT" and e["resource"]["meta"]["profile"] for e in raw["entry"])
    specimens = {
        e["resource"]["identifier"][0]["value"]: e
        for e in raw["entry"]
        if e["resource"]["resourceType"] == "Specimen"
    }
    primary = specimens["RA0001-L01A-SF1"]["resource"]
    assert primary["collection"]["method"]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "29240004",
        "display": "Autopsy examination",
    }
    assert primary["collection"]["bodySite"]["coding"][0]["code"] == "UBERON:0000310"  # R4: a CodeableConcept
    assert primary["collection"]["extension"][0]["valueDuration"]["value"] == 2.5
    assert "collectedDateTime" not in primary["collection"] and "collectedPeriod" not in primary["collection"]
    assert primary["subject"]["reference"] == "Patient/RA-0001"
    assert primary["extension"][0]["url"] == fhir.MIABIS_SAMPLE_COLLECTION_EXTENSION
    assert primary["type"]["coding"][0] == {
        "system": fhir.MIABIS_SAMPLE_TYPE_SYSTEM,
        "code": "TissueFreshFrozen",
        "display": "Tissue (fresh frozen)",
    }
    temp = primary["processing"][0]["extension"][0]
    assert temp["url"] == fhir.MIABIS_STORAGE_TEMPERATURE_EXTENSION
    assert temp["valueCodeableConcept"]["coding"][0]["code"] == "LN"

    def miabis(code):
        return specimens[code]["resource"]["type"]["coding"][0]["code"]

    assert miabis("RA0001-L02B-FF1") == "TissueFixed"
    assert miabis("RA0001-B01-WB1") == "WholeBlood"
    assert miabis("RA0001-L01A-DNA1") == "DNA"
    dna = specimens["RA0001-L01A-DNA1"]["resource"]
    assert dna["parent"][0]["reference"] == "Specimen/RA0001-L01A-SF1"
    blood = specimens["RA0001-B01-WB1"]["resource"]
    assert blood["collection"]["extension"][0]["valueDuration"]["value"] == -2.0
    assert "coding" not in blood["collection"]["method"]  # pre-mortem: not an autopsy
    patient = next(e["resource"] for e in raw["entry"] if e["resource"]["resourceType"] == "Patient")
    assert (
        patient["deceasedBoolean"] is True
        and "deceasedDateTime" not in patient
        and "birthDate" not in patient
    )
    assert patient["extension"][0]["url"] == fhir.MIABIS_DATASET_TYPE_EXTENSION  # before the age at death
    conditions = [e["resource"] for e in raw["entry"] if e["resource"]["resourceType"] == "Condition"]
    assert [c["code"]["coding"][0]["code"] for c in conditions] == ["C50.9", "C34.9"]
    assert fhir.validate_fhir(text) == []
    assert_no_dates(text)


def test_fhir_refuses_a_release_other_than_r4(donors, samples):
    from biobank.domain.errors import ValidationError

    with pytest.raises(ValidationError, match="R4") as refused:
        fhir.build_fhir(donors, samples, version=5)
    assert refused.value.field == "fhir_version"


def test_fhir_validation_finds_dangling_reference(donors, samples):
    raw = json.loads(fhir.build_fhir(donors, samples))
    raw["entry"] = [e for e in raw["entry"] if e["resource"]["resourceType"] != "Patient"]
    problems = fhir.validate_fhir(json.dumps(raw))
    assert problems and all("is not in the bundle" in p.message for p in problems)


# ------------------------------------------------------------------------------------------------------- tables


def test_tables_round_trip(tmp_path, donors, samples):
    dictionary = pd.DataFrame(
        [
            {
                "table": "donors",
                "column": "donor_code",
                "type": "string",
                "meaning": "Pseudonymous code",
                "vocabulary": "",
            },
            {
                "table": "samples",
                "column": "role",
                "type": "string",
                "meaning": "Analysis role",
                "vocabulary": "tumour|germline_normal|normal_tissue",
            },
            {
                "table": "samples",
                "column": "collected_at",
                "type": "datetime",
                "meaning": "dropped",
                "vocabulary": "",
            },
            # empty in these frames (no model material): typed by the dictionary all the same
            {"table": "samples", "column": "model_code", "type": "string", "meaning": "model", "vocabulary": ""},
            {"table": "samples", "column": "passage_number", "type": "integer", "meaning": "n", "vocabulary": ""},
        ]
    )
    written = tables.write_tables({"donors": donors, "samples": samples}, tmp_path, dictionary=dictionary)
    assert [p.name for p in written["parquet"]] == ["donors.parquet", "samples.parquet"]
    expected_donors = donors.drop(columns=["death_at"])
    expected_samples = samples.drop(columns=["collected_at"]).astype(
        {"tumour_cellularity_pct": "float64", "model_code": "str", "passage_number": "Int64"}
    )
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "donors.parquet"), expected_donors)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "samples.parquet"), expected_samples)
    schema = pq.read_schema(tmp_path / "samples.parquet")
    assert (schema.field("model_code").type, schema.field("passage_number").type) == (pa.string(), pa.int64())
    assert pd.read_csv(tmp_path / "samples.csv").columns.tolist() == expected_samples.columns.tolist()
    assert_no_dates((tmp_path / "samples.csv").read_text() + (tmp_path / "donors.csv").read_text())

    book = pd.read_excel(tmp_path / "tables.xlsx", sheet_name=None)
    assert list(book) == ["donors", "samples", "dictionary"]
    assert book["samples"].shape == expected_samples.shape
    dict_csv = pd.read_csv(tmp_path / "data_dictionary.csv", keep_default_na=False)
    assert dict_csv.columns.tolist() == ["table", "column", "type", "meaning", "vocabulary"]
    assert len(dict_csv) == expected_donors.shape[1] + expected_samples.shape[1]
    role = dict_csv[(dict_csv["table"] == "samples") & (dict_csv["column"] == "role")].iloc[0]
    assert role["meaning"] == "Analysis role" and role["vocabulary"].startswith("tumour")
    hours = dict_csv[(dict_csv["table"] == "samples") & (dict_csv["column"] == "hours_after_death")].iloc[0]
    assert hours["type"] == "number"
    assert book["dictionary"].columns.tolist() == dict_csv.columns.tolist()


def test_tables_checks(tmp_path, donors):
    with pytest.raises(ValueError, match=r"donors\.nope"):
        tables.write_tables(
            {"donors": donors},
            tmp_path,
            dictionary=pd.DataFrame(
                [{"table": "donors", "column": "nope", "type": "", "meaning": "", "vocabulary": ""}]
            ),
        )
    with pytest.raises(ValueError, match="vocabulary"):
        tables.write_tables(
            {"donors": donors}, tmp_path, dictionary=pd.DataFrame({"table": [], "column": []})
        )
    with pytest.raises(ValueError, match="unknown table format"):
        tables.write_tables({"donors": donors}, tmp_path, formats=("csv", "json"))
    typed = pd.DataFrame([{"table": "donors", "column": "age_at_death", "type": "integer", "meaning": "age",
                           "vocabulary": ""}])
    with pytest.raises(ValueError, match=r"donors\.age_at_death row 2: 'sixty' is not a number"):
        tables.write_tables({"donors": donors.astype({"age_at_death": object}).assign(age_at_death=[62, "sixty"])},
                            tmp_path, dictionary=typed)
    with pytest.raises(ValueError, match=r"donors\.age_at_death row 1: 62.5 is not a whole number"):
        tables.write_tables({"donors": donors.assign(age_at_death=[62.5, None])}, tmp_path, dictionary=typed)
    with pytest.raises(ValueError, match=r"types must be one of .*donors\.age_at_death \('int'\)"):
        tables.write_tables({"donors": donors}, tmp_path, dictionary=typed.assign(type="int"))
    with pytest.raises(ValueError, match=r"no type or meaning for donors\.donor_code, donors\.sex"):
        tables.write_tables({"donors": donors}, tmp_path, dictionary=typed, complete_dictionary=True)
    notes = donors.assign(
        notes="free text", created_at=None, birth_date=[pd.Timestamp("1961-01-01").date()] * 2
    )
    written = tables.write_tables({"donors": notes}, tmp_path, formats=("csv",))
    columns = pd.read_csv(written["csv"][0]).columns
    assert not {"notes", "created_at", "birth_date", "death_at"} & set(columns)
    assert (
        "notes"
        in pd.read_csv(
            tables.write_tables({"donors": notes}, tmp_path, formats=("csv",), keep_free_text=True)["csv"][0]
        ).columns
    )
