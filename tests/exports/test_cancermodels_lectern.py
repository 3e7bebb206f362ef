"""The CancerModels.org export judged by CancerModels.org's own validator: the lectern client from npm (the engine
its submission service, PDCMFinder/pdcm-lectern-validator, runs), installed by ``make judges`` into
``tests/judges/lectern`` and driven by ``validate.js``, on the demo cohort's models with dictionary 2.1."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from biobank.db.engine import session_scope
from biobank.exports import cancermodels as cm

JUDGE = Path(__file__).resolve().parents[1] / "judges" / "lectern"
DICTIONARY = Path(cm.__file__).resolve().parents[1] / cm.dictionary_resource("2.1")
NODE = shutil.which("node")


def _judge_ready() -> str | None:
    """Why the judge cannot run here, or None."""
    if NODE is None:
        return "node is not installed: the CancerModels.org lectern judge needs Node.js (then run `make judges`)"
    for package in ("@overturebio-stack/lectern-client", "xlsx"):
        if not (JUDGE / "node_modules" / package / "package.json").is_file():
            return f"the lectern judge is not installed ({package} missing): `make judges` installs it"
    return None


pytestmark = pytest.mark.skipif(_judge_ready() is not None, reason=str(_judge_ready()))


def lectern(submission: Path) -> tuple[int, list[dict[str, Any]], str]:
    """Exit status, errors and summary of the lectern client on a workbook or a folder of CSV files."""
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(JUDGE / "validate.js"), str(DICTIONARY), str(submission)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode in (0, 1), f"the judge could not run on {submission} ({done.returncode}): {done.stderr}"
    errors = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, errors, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


def test_the_judge_finds_the_errors_of_the_old_export(tmp_path):
    """A dictionary-1.0-shaped submission (no sharing sheet, ``name`` for ``model_name``, cell-model fields
    missing): the judge is not a rubber stamp."""
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "patient.csv").write_text("patient_id,sex\nRA-0001,female\n")
    (folder / "patient_sample.csv").write_text(
        "patient_id,sample_id,age_in_years_at_collection,diagnosis,tumour_type,primary_site,collection_site,sharable,"
        "treatment_naive_at_collection,model_id\nRA-0001,RA0001-L02A-VC1,61,breast carcinoma,metastatic,Breast,Liver,"
        "no,Not provided,RA0001-L02A-ORG1\n"
    )
    (folder / "cell_model.csv").write_text(
        "model_id,name,type,growth_properties,comments\nRA0001-L02A-ORG1,RA0001-L02A-ORG1,organoid,"
        "embedded 3d culture,\"medium: x; matrix: matrigel\"\n"
    )
    status, errors, _ = lectern(folder)
    assert status == 1
    found = {(e["schema"], e["errorType"], e["fieldName"]) for e in errors}
    assert ("patient_sample", "INVALID_BY_FOREIGN_KEY", "model_id") in found  # no sharing sheet
    assert ("cell_model", "UNRECOGNIZED_FIELD", "name") in found
    for missing in ("model_name", "media_id", "growth_media", "plate_coating", "passage_number", "contaminated",
                    "supplier_type"):
        assert ("cell_model", "MISSING_REQUIRED_FIELD", missing) in found
    assert ("cell_model", "INVALID_BY_FOREIGN_KEY", "model_id") in found  # no model_validation row


@pytest.mark.demo(12)
def test_the_demo_cohorts_models_pass_the_cancermodels_validator(engine, tmp_path):
    """Every consenting donor's models of the demo cohort (established ones, and all statuses), as the workbook and
    as CSV files: the lectern client reports no error, and the errors the issue found are gone."""
    exports = {}
    with session_scope(engine) as session:
        for name, everything in (("established", False), ("all", True)):
            exports[name], _ = cm.export_models(session, tmp_path / name, include_unestablished=everything)
    for name, export in exports.items():
        for submission in (tmp_path / name / cm.WORKBOOK, tmp_path / name):
            status, errors, summary = lectern(submission)
            assert (status, errors) == (0, []), f"{submission}: {summary}\n" + "\n".join(map(json.dumps, errors))
            assert "CancerModels_Dictionary 2.1" in summary and ", 0 error(s)" in summary
        sheets = export.sheets
        pdx, cells = set(sheets["pdx_model"]["model_id"]), set(sheets["cell_model"]["model_id"])
        organoids = set(sheets["cell_model"].loc[sheets["cell_model"]["type"] == "organoid", "model_id"])
        assert pdx and organoids, f"{name}: the demo exports both kinds of model"
        assert set(sheets["sharing"]["model_id"]) == set(sheets["patient_sample"]["model_id"]) == pdx | cells
        assert "model_name" in sheets["cell_model"] and "name" not in sheets["cell_model"]
        validated = sheets["model_validation"]
        assert pdx | cells <= set(validated["model_id"]), "every model has a validation row"
        of_organoids = validated[validated["model_id"].isin(organoids)]
        assert not of_organoids.empty and not set(of_organoids["model_id"]) & pdx
        assert set(of_organoids["validation_host_strain_nomenclature"]) == {""}, "no mouse host for an organoid"
        assert set(sheets["patient_sample"]["collection_date"]) == {"Not provided"}
        # The workbook the judge read is the one written: same models in the same sheets.
        book = pd.read_excel(tmp_path / name / cm.WORKBOOK, sheet_name=None, dtype=str)
        assert set(book["sharing"]["model_id"].iloc[len(cm.TEMPLATE_ROWS):]) == pdx | cells
    assert set(exports["established"].models) < set(exports["all"].models)
    assert all("external_sharing" in why or "withdrawn" in why for _, why in exports["all"].excluded)
