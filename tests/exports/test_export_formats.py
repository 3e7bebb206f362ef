"""The pure export writers (biobank.exports.formats): small hand-built frames, no database."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import pandas as pd
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
        sarek.build_sarek(donors, samples.drop(columns=["role"]))
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


def test_sarek_sheet_without_fastqs(donors, samples):
    text = sarek.build_sarek(donors, samples)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["patient", "sex", "status", "sample", "contamination"]
    by_sample = {r["sample"]: r for r in rows}
    assert by_sample["RA0001-L01A-SF1"] == {
        "patient": "RA-0001",
        "sex": "XX",
        "status": "1",
        "sample": "RA0001-L01A-SF1",
        "contamination": "0.3",
    }
    assert by_sample["RA0001-B01-WB1"]["status"] == "0"
    assert by_sample["RA0001-B01-WB1"]["contamination"] == "0.0"
    assert by_sample["RA0002-B01-WB1"]["sex"] == "XY"
    without = sarek.build_sarek(donors, samples, contamination=False)
    assert without.splitlines()[0] == "patient,sex,status,sample"
    assert_no_dates(text)


def test_sarek_rows_validate_against_the_shipped_schema(donors, samples):
    schema = sarek.load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    reference = Path("/work/shared/reference/nf-core-sarek-3.10.0-schema_input.json")
    if reference.exists():
        assert schema == json.loads(reference.read_text())
    typed = sarek.to_schema_rows(list(csv.DictReader(io.StringIO(sarek.build_sarek(donors, samples)))))
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
        sarek.build_sarek(donors, dup)
    # RA-0002 with its lymph-node metastasis left out but an extra normal: one tumour, two normals
    extra_normal = samples.iloc[[7]].assign(donor_code="RA-0002", specimen_code="RA0002-N01-SF1")
    one_tumour = pd.concat(
        [samples[samples["specimen_code"] != "RA0002-L02A-SF1"], extra_normal], ignore_index=True
    )
    with pytest.raises(ExportValidationError) as info:
        sarek.build_sarek(donors, one_tumour)
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
    assert list(conipher.columns) == ["CASE_ID", "SAMPLE", "ACF"]
    assert conipher["ACF"].tolist() == frame["tumour_content"].tolist()


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


def test_write_clonal(tmp_path, donors, samples):
    paths = clonal.write_clonal(tmp_path, donors, samples)
    assert [p.name for p in paths] == ["clonal_samples.tsv", "conipher_samples.tsv"]
    assert pd.read_csv(paths[0], sep="\t").shape == (9, 8)


# ---------------------------------------------------------------------------------------------------- migration


def test_machina_labelling(samples):
    inputs = migration.build_machina(samples)
    assert list(inputs) == ["RA-0001", "RA-0002"]
    one = inputs["RA-0001"]
    assert one.primary == "Breast_left"
    assert one.labels == {
        "RA0001-L01A-SF1": "Breast_left",
        "RA0001-L01B-SF1": "Breast_left",
        "RA0001-L02A-SF1": "Liver",
        "RA0001-L02B-FF1": "Liver",
        "RA0001-L03A-SF1": "Vertebra_T8",
        "RA0001-L03B-SF1": "Vertebra_T8",
        "RA0001-L01A-DNA1": "Breast_left",
    }
    assert inputs["RA-0002"].primary == "Lung_right"
    for item in inputs.values():
        for line in item.labeling.splitlines():
            _sample_id, label = line.split("\t")
            assert ":" not in label and " " not in label and "," not in label


def test_labels_sanitised_and_unique_per_site(samples):
    odd = samples.copy()
    liver = odd["site_code"] == "liver"
    odd.loc[liver, "site_label"] = "Liver: segment 4"
    spine = odd["site_code"] == "vertebra_T8"
    odd.loc[spine, "site_label"] = "Liver segment 4"  # a different site whose safe label would collide
    labels = migration.build_machina(odd)["RA-0001"].labels
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
    ]
    one = frame[frame["donor"] == "RA-0001"].drop_duplicates("anatomical_site_label")
    assert one[["anatomical_site_index", "anatomical_site_label", "site_category"]].values.tolist() == [
        [0, "Breast_left", "primary"],
        [1, "Liver", "metastasis"],
        [2, "Vertebra_T8", "metastasis"],
    ]
    assert set(frame["site_category"]) == {"primary", "metastasis"}
    assert migration.validate_metient(frame) == []


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
    assert names == [
        "machina/RA-0001.labeling",
        "machina/RA-0001.primary",
        "machina/RA-0002.labeling",
        "machina/RA-0002.primary",
        "metient_samples.tsv",
    ]
    assert (tmp_path / "machina/RA-0001.primary").read_text() == "Breast_left\n"


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
        ("data_clinical_sample.txt", 12, ["PATIENT_ID", "SAMPLE_ID"]),
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
    assert by_id.loc["RA0001-L01A-SF1", "SAMPLE_TYPE"] == "Primary"
    assert by_id.loc["RA0001-L02A-SF1", ["SAMPLE_TYPE", "METASTATIC_SITE", "PRIMARY_SITE"]].tolist() == [
        "Metastasis",
        "Liver",
        "Breast",
    ]
    assert by_id.loc["RA0001-N01-SF1", "SAMPLE_TYPE"] == "Normal"
    assert by_id.loc["RA0001-L01A-SF1", "CANCER_TYPE"] == "Invasive ductal carcinoma of breast"
    assert cbioportal.validate_cbioportal(files) == []


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
    from fhir.resources.bundle import Bundle

    text = fhir.build_fhir(donors, samples)
    bundle = Bundle.model_validate_json(text)
    assert bundle.type == "collection"
    kinds = [e.resource.get_resource_type() for e in bundle.entry]
    assert kinds.count("Patient") == 2 and kinds.count("Specimen") == 12
    raw = json.loads(text)
    specimens = {
        e["resource"]["identifier"][0]["value"]: e
        for e in raw["entry"]
        if e["resource"]["resourceType"] == "Specimen"
    }
    urls = {e["fullUrl"] for e in raw["entry"]}
    primary = specimens["RA0001-L01A-SF1"]["resource"]
    assert primary["collection"]["method"]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "29240004",
        "display": "Autopsy examination",
    }
    assert primary["collection"]["bodySite"]["concept"]["coding"][0]["code"] == "UBERON:0000310"
    assert primary["collection"]["extension"][0]["valueDuration"]["value"] == 2.5
    assert "collectedDateTime" not in primary["collection"] and "collectedPeriod" not in primary["collection"]
    assert primary["subject"]["reference"] in urls
    type_codes = {
        c["code"] for c in primary["type"]["coding"] if c["system"] == fhir.MIABIS_SAMPLE_TYPE_SYSTEM
    }
    assert type_codes == {"TissueFreshFrozen"}
    temp = primary["processing"][0]["extension"][0]
    assert temp["url"] == fhir.MIABIS_STORAGE_TEMPERATURE_EXTENSION
    assert temp["valueCodeableConcept"]["coding"][0]["code"] == "LN"

    def miabis(code):
        return next(
            c["code"]
            for c in specimens[code]["resource"]["type"]["coding"]
            if c["system"] == fhir.MIABIS_SAMPLE_TYPE_SYSTEM
        )

    assert miabis("RA0001-L02B-FF1") == "TissueFixed"
    assert miabis("RA0001-B01-WB1") == "WholeBlood"
    assert miabis("RA0001-L01A-DNA1") == "DNA"
    dna = specimens["RA0001-L01A-DNA1"]["resource"]
    assert dna["parent"][0]["reference"] == specimens["RA0001-L01A-SF1"]["fullUrl"]
    blood = specimens["RA0001-B01-WB1"]["resource"]
    assert blood["collection"]["extension"][0]["valueDuration"]["value"] == -2.0
    assert "coding" not in blood["collection"]["method"]  # pre-mortem: not an autopsy
    patient = next(e["resource"] for e in raw["entry"] if e["resource"]["resourceType"] == "Patient")
    assert (
        patient["deceasedBoolean"] is True
        and "deceasedDateTime" not in patient
        and "birthDate" not in patient
    )
    assert fhir.validate_fhir(text) == []
    assert_no_dates(text)


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
        ]
    )
    written = tables.write_tables({"donors": donors, "samples": samples}, tmp_path, dictionary=dictionary)
    assert [p.name for p in written["parquet"]] == ["donors.parquet", "samples.parquet"]
    expected_donors = donors.drop(columns=["death_at"])
    expected_samples = samples.drop(columns=["collected_at"])
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "donors.parquet"), expected_donors)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "samples.parquet"), expected_samples)
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
