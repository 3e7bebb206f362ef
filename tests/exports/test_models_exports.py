"""CancerModels.org submission sheets: the dictionary's columns, the right rows, consent enforced."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from biobank.db.engine import session_scope
from biobank.domain.errors import ConsentError
from biobank.exports import cancermodels as cm
from biobank.services import derived, donors
from biobank.services.inputs import ModelCreate, ModelQCCreate, PassageCreate
from tests.support.factories import donor_with_material

DAY0 = date(2026, 3, 14)

#: The CancerModels.org dictionary 1.0 fields, written out here so a change to the module cannot pass unnoticed.
EXPECTED = {
    "pdx_model": ["model_id", "host_strain_name", "host_strain_nomenclature", "engraftment_site", "engraftment_type",
                  "sample_type", "sample_state", "passage_number", "publications"],
    "cell_model": ["model_id", "name", "type", "growth_properties", "parent_id", "origin_patient_sample_id", "comments",
                   "supplier", "external_ids", "publications"],
    "model_validation": ["model_id", "validation_technique", "description", "passages_tested",
                         "validation_host_strain_nomenclature"],
    "patient_sample": ["patient_id", "sample_id", "collection_date", "collection_event", "months_since_collection_1",
                       "age_in_years_at_collection", "diagnosis", "tumour_type", "primary_site", "collection_site",
                       "stage", "staging_system", "grade", "grading_system", "virology_status", "sharable",
                       "treatment_naive_at_collection", "treated_at_collection", "treated_prior_to_collection",
                       "model_id"],
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
    for sheet, columns in EXPECTED.items():
        assert list(pd.read_csv(tmp_path / f"{sheet}.csv").columns) == columns
    assert export.models == sorted([pdx, org])  # the model never established is left out
    book = pd.read_excel(tmp_path / cm.WORKBOOK, sheet_name=None)
    assert set(book) == {"patient", "patient_sample", "pdx_model", "cell_model", "model_validation"}
    row = export.sheets["pdx_model"].iloc[0]
    assert (row.model_id, row.engraftment_type, row.sample_type, row.sample_state) == (pdx, "orthotopic", "tissue fragment", "frozen")
    cell = export.sheets["cell_model"].iloc[0]
    assert (cell.type, cell.growth_properties) == ("organoid", "embedded 3d culture")
    samples = export.sheets["patient_sample"].set_index("model_id")
    assert samples.loc[pdx, "tumour_type"] == "primary" and samples.loc[org, "tumour_type"] == "metastatic"
    assert samples["sample_id"].is_unique and cell.origin_patient_sample_id == samples.loc[org, "sample_id"]
    validation = export.sheets["model_validation"]
    str_row = validation[(validation.model_id == pdx) & (validation.validation_technique == "STR fingerprinting")].iloc[0]
    assert str_row.passages_tested == "1" and "94 %" in str_row.description
    assert str_row.validation_host_strain_nomenclature == "NOD.Cg-Prkdcscid Il2rgtm1Wjl/SzJ"
    assert export.sheets["patient"]["patient_id"].tolist() == ["RA-0001"]


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
