"""CancerModels.org submission sheets (dictionary 2.1): the dictionary's sheets and columns, the right rows, values
the dictionary allows, de-identified dates, consent enforced. CancerModels.org's own validator judges the demo
cohort's export in test_cancermodels_lectern.py."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pydantic
import pytest

from biobank.config import Settings
from biobank.db.engine import session_scope
from biobank.domain.errors import ConsentError, ValidationError
from biobank.exports import cancermodels as cm
from biobank.services import derived, donors
from biobank.services.inputs import ModelCreate, ModelQCCreate, PassageCreate
from tests.support.factories import donor_with_material

DAY0 = date(2026, 3, 14)

#: The CancerModels.org dictionary 2.1 sheets and fields, in its order, written out here so that a change to the
#: shipped dictionary or to the module cannot pass unnoticed.
EXPECTED = {
    "patient": ["patient_id", "sex", "history", "ethnicity", "ethnicity_assessment_method", "initial_diagnosis",
                "age_at_initial_diagnosis", "age_category", "smoking_status", "alcohol_status", "alcohol_frequency",
                "family_history_of_cancer"],
    "patient_sample": ["patient_id", "sample_id", "collection_date", "collection_event", "months_since_collection_1",
                       "age_in_years_at_collection", "diagnosis", "tumour_type", "primary_site", "collection_site",
                       "collection_method", "stage", "staging_system", "grade", "grading_system", "virology_status",
                       "gene_mutation_status", "sharable", "treatment_naive_at_collection", "treated_at_collection",
                       "treated_prior_to_collection", "response_to_treatment", "model_id"],
    "sharing": ["model_id", "accessibility", "europdx_access_modality", "date_submitted", "model_availability",
                "email", "name", "form_url", "database_url"],
    "pdx_model": ["model_id", "host_strain_name", "host_strain_nomenclature", "engraftment_site", "engraftment_type",
                  "sample_type", "sample_state", "passage_number", "publications", "supplier", "supplier_type",
                  "catalog_number", "vendor_link", "external_ids"],
    "model_validation": ["model_id", "validation_technique", "description", "passages_tested",
                         "validation_host_strain_nomenclature", "morphological_features", "SNP_analysis",
                         "STR_analysis", "tumour_status", "model_purity", "comments"],
    "cell_model": ["model_id", "model_name", "model_name_aliases", "type", "parent_id", "origin_patient_sample_id",
                   "growth_properties", "media_id", "growth_media", "plate_coating", "other_plate_coating",
                   "passage_number", "contaminated", "contamination_details", "supplements", "drug",
                   "drug_concentration", "publications", "supplier", "supplier_type", "catalog_number",
                   "vendor_link", "rrid", "external_ids", "comments"],
}


@pytest.fixture
def models(engine, tech, death):
    with session_scope(engine) as session:
        made = donor_with_material(session, tech, death=death)
        pdx = derived.create_model(session, actor=tech, data=ModelCreate(source_code=made["L01-viable_cryo"].code, kind="pdx", initiated_on=DAY0, host_strain_name="NSG", host_strain_nomenclature="NOD.Cg-Prkdcscid Il2rgtm1Wjl/SzJ", engraftment_site="mammary fat pad", engraftment_type="orthotopic", tumour_preparation="fragment"))
        org = derived.create_model(session, actor=tech, data=ModelCreate(source_code=made["L02-fresh"].code, kind="organoid", initiated_on=DAY0, medium="organoid medium", matrix="matrigel_bme", growth_properties="embedded_3d"))
        young = derived.create_model(session, actor=tech, data=ModelCreate(source_code=made["L02-fresh"].code, kind="organoid", initiated_on=DAY0))
        for model in (pdx, org):
            derived.set_status(session, actor=tech, model_code=model.code, status="growing", on=DAY0)
            derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=DAY0))
            derived.record_passage(session, actor=tech, data=PassageCreate(model_code=model.code, passaged_on=DAY0 + timedelta(days=30), parent_label="P0"))
            derived.record_model_qc(session, actor=tech, data=ModelQCCreate(model_code=model.code, passage_label="P1", tested_on=DAY0 + timedelta(days=40), identity_method="STR", identity_match_pct=94, mycoplasma="negative", histology_concordant=True, not_mouse_or_ebv_origin=True))
            derived.set_status(session, actor=tech, model_code=model.code, status="established", on=DAY0 + timedelta(days=45))
        return pdx.code, org.code, young.code


def test_sheets_carry_the_dictionary_columns_and_rows(engine, models, tmp_path):
    pdx, org, _young = models
    with session_scope(engine) as session:
        export, _paths = cm.export_models(session, tmp_path)
    assert list(cm.load_dictionary("2.1").schemas) == list(EXPECTED)
    for sheet, columns in EXPECTED.items():
        assert list(pd.read_csv(tmp_path / f"{sheet}.csv").columns) == columns
    assert export.models == sorted([pdx, org])  # the model never established is left out
    book = pd.read_excel(tmp_path / cm.WORKBOOK, sheet_name=None, dtype=str)
    assert list(book) == list(EXPECTED)
    row = export.sheets["pdx_model"].iloc[0]
    assert (row.model_id, row.engraftment_type, row.sample_type, row.sample_state, row.passage_number) == (
        pdx, "orthotopic", "tissue fragment", "frozen", "all")
    assert row.supplier_type == "academic"
    cell = export.sheets["cell_model"].iloc[0]
    assert (cell.model_id, cell.model_name, cell.type, cell.growth_properties) == (org, org, "organoid", "embedded 3d culture")
    assert (cell.growth_media, cell.plate_coating, cell.other_plate_coating) == ("organoid medium", "matrigel", "none")
    assert (cell.contaminated, cell.media_id, cell.passage_number) == ("no", "Not provided", "Not provided")
    samples = export.sheets["patient_sample"].set_index("model_id")
    assert samples.loc[pdx, "tumour_type"] == "primary" and samples.loc[org, "tumour_type"] == "metastatic"
    assert cell.origin_patient_sample_id == samples.loc[org, "sample_id"]
    assert set(samples["collection_method"]) == {"rapid autopsy"}
    assert set(samples["collection_event"]) == {"collection event 1"} and set(samples["months_since_collection_1"]) == {"0"}
    sharing = export.sheets["sharing"].set_index("model_id")
    assert set(sharing.index) == {pdx, org} and set(sharing["accessibility"]) == {"academia"}
    assert set(sharing["model_availability"]) == {"available"}
    validation = export.sheets["model_validation"]
    str_row = validation[(validation.model_id == pdx) & (validation.validation_technique == "STR fingerprinting")].iloc[0]
    assert str_row.passages_tested == "1" and "94 %" in str_row.description and str_row.STR_analysis == "yes"
    assert str_row.validation_host_strain_nomenclature == "NOD.Cg-Prkdcscid Il2rgtm1Wjl/SzJ"
    organoid_rows = validation[validation.model_id == org]
    assert len(organoid_rows) > 0 and set(organoid_rows.validation_host_strain_nomenclature) == {""}
    assert export.sheets["patient"]["patient_id"].tolist() == ["RA-0001"]
    # The workbook keeps the template's layout: column A "Field", four '#' rows from the dictionary, then the data.
    cells = book["cell_model"]
    assert cells.columns[0] == "Field" and list(cells["Field"].iloc[:4]) == list(cm.TEMPLATE_ROWS)
    assert cells["model_name"].iloc[4] == org and cells["Field"].iloc[4:].isna().all()


def test_collection_date_never_gives_the_month_of_death(engine, models, death, tmp_path):
    with session_scope(engine) as session:
        export, paths = cm.export_models(session, tmp_path)
    assert set(export.sheets["patient_sample"]["collection_date"]) == {"Not provided"}
    month = death.strftime("%b %Y")
    assert not [p.name for p in paths if p.suffix == ".csv" and month in p.read_text()]


def test_a_culture_without_a_matrix_is_left_out_or_refused_when_named(engine, models, tmp_path):
    _pdx, _org, young = models
    with session_scope(engine) as session:
        export = cm.build_sheets(session, include_unestablished=True)
    assert young not in export.models
    assert [why for code, why in export.excluded if code == young] == [
        "plate_coating: no culture matrix is recorded; CancerModels.org requires one of laminin, matrigel, collagen, none"
    ]
    with pytest.raises(ValidationError, match=f"model {young}") as raised, session_scope(engine) as session:
        cm.build_sheets(session, model_codes=[young], include_unestablished=True)
    assert raised.value.field == "plate_coating"


def test_the_submitter_is_written_to_sharing_and_checked_against_the_dictionary(engine, models, tmp_path):
    submitter = cm.Submitter(name="Rapid Autopsy Programme", email="models@example.org",
                             accessibility="academia and industry")
    with session_scope(engine) as session:
        export = cm.build_sheets(session, submitter=submitter)
    sharing = export.sheets["sharing"]
    assert set(sharing["email"]) == {"models@example.org"} and set(sharing["name"]) == {"Rapid Autopsy Programme"}
    assert set(sharing["accessibility"]) == {"academia and industry"}
    for bad, field in ((cm.Submitter(email="models at example"), "email"),
                       (cm.Submitter(accessibility="everyone"), "accessibility"),
                       (cm.Submitter(name=" "), "name")):
        with pytest.raises(ValidationError) as raised, session_scope(engine) as session:
            cm.build_sheets(session, submitter=bad)
        assert raised.value.field == field


def test_free_text_is_fitted_to_the_dictionary_patterns():
    specs = {f.name: f for f in cm.load_dictionary("2.1").schemas["patient"]}
    diagnosis = specs["initial_diagnosis"]
    assert diagnosis.fit('Carcinome lobulaire « infiltrant » — sein (Ménétrier) "x"') == (
        "Carcinome lobulaire infiltrant sein (Menetrier) x")
    assert diagnosis.fit("Ductal carcinoma, NOS") == "Ductal carcinoma, NOS"
    assert len(diagnosis.fit("é" * 400)) == 250 and diagnosis.accepts(diagnosis.fit("é" * 400))
    assert specs["sex"].accepts("Not provided") and not specs["sex"].accepts("unknown")
    assert not specs["patient_id"].accepts("")  # required


def test_the_dictionary_version_is_a_setting_limited_to_the_shipped_dictionaries():
    assert Settings().cancermodels_dictionary_version == "2.1"
    with pytest.raises(pydantic.ValidationError, match=r"no CancerModels\.org dictionary '1\.0' ships"):
        Settings(cancermodels_dictionary_version="1.0")
    with pytest.raises(ValidationError, match="is not a dictionary version biobank ships"):
        cm.load_dictionary("9.9")
    assert cm.load_dictionary("2.1").version == "2.1"


def test_withdrawal_blocks_model_exports(engine, models, tech, death, tmp_path):
    pdx, _org, _young = models
    with session_scope(engine) as session:
        donors.withdraw_consent(session, actor=tech, donor_code="RA-0001", requested_by="donor",
                                withdrawn_at=death + timedelta(days=100), reason="changed mind")
    with pytest.raises(ConsentError, match="RA-0001"), session_scope(engine) as session:
        cm.export_models(session, tmp_path / "named", model_codes=[pdx])
    assert not (tmp_path / "named").exists()
    with session_scope(engine) as session:
        export = cm.build_sheets(session)
    assert export.models == [] and {code for code, _ in export.excluded} >= {pdx}
    assert all("withdrawn" in why for _, why in export.excluded)
