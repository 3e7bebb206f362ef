"""Each planning rule (DOMAIN.md §6) on a context that breaks it and on one that passes; severities by setting.

Pure frames, no database: the rules read the same columns :mod:`biobank.queries.exports` produces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from biobank.config import get_settings
from biobank.domain.errors import ValidationError
from biobank.services.plan_rules import RULE_NAMES, InputRequirements, PlanContext, run_rules, severities
from biobank.services.planning import suggest_from_frames


def donor(**overrides: Any) -> dict[str, Any]:
    row = {
        "donor_id": 1, "donor_code": "RA-0001", "sex": "female", "primary_site_code": "BREAST",
        "withdrawn": False, "genomic_sequencing": True, "research_use": True,
    }
    return row | overrides


def spec(sid: int, code: str, **overrides: Any) -> dict[str, Any]:
    row = {
        "specimen_id": sid, "specimen_code": code, "donor_id": 1, "donor_code": "RA-0001", "parent_id": None,
        "parent_code": None, "lineage": "derivative", "material_type": "dna", "storage_format": "frozen",
        "parent_storage_format": "snap_frozen", "status": "available", "sampling_site_id": sid,
        "site_kind": "tumour_region", "tissue_status": "tumour", "distance_to_tumour_mm": None,
        "lesion_code": "L01", "lesion_kind": "primary", "region_code": "L01-A", "site_code": "BREAST",
        "site_label": "Breast", "laterality": "left", "pmi_hours": 3.0, "tumour_cellularity_pct": 60.0,
        "cellularity_source": "parent", "quantity_remaining": 5000.0, "unit": "ng", "yield_ng": 5000.0,
        "a260_280": 1.9, "din": 8.0, "rin": None, "dv200_pct": None, "decalcification_agent": None,
        "decalcification_hours": None, "site_category_vocab": "breast", "model_code": None, "model_kind": None,
        "passage": None, "passage_number": None, "host": None, "model_source_code": None,
    }
    return row | overrides


def base_specimens() -> list[dict[str, Any]]:
    return [
        spec(1, "RA0001-GB1-FZ1-DNA1", site_kind="germline_blood", tissue_status="normal", lesion_code=None,
             lesion_kind=None, region_code="GB1", site_code="BLOOD", site_label="Blood", parent_storage_format="frozen",
             tumour_cellularity_pct=None, laterality="not_applicable"),
        spec(2, "RA0001-L01A-SF1-DNA1"),
        spec(3, "RA0001-L01B-SF1-DNA1", region_code="L01-B"),
        spec(4, "RA0001-L02A-SF1-DNA1", lesion_code="L02", lesion_kind="metastasis", region_code="L02-A",
             site_code="LIVER", site_label="Liver", laterality="not_applicable"),
        spec(5, "RA0001-L02B-SF1-DNA1", lesion_code="L02", lesion_kind="metastasis", region_code="L02-B",
             site_code="LIVER", site_label="Liver", laterality="not_applicable"),
    ]


ROLES = {1: "germline_normal", 2: "tumour", 3: "tumour", 4: "tumour", 5: "tumour"}


def context(
    specimens: list[dict[str, Any]] | None = None,
    donors: list[dict[str, Any]] | None = None,
    roles: dict[int, str] | None = None,
    **plan: Any,
) -> PlanContext:
    specimens = specimens if specimens is not None else base_specimens()
    roles = roles if roles is not None else ROLES
    return PlanContext(
        purpose=plan.get("purpose", "migration_history"),
        assay=plan.get("assay", "wgs"),
        donors=pd.DataFrame(donors or [donor()]),
        specimens=specimens,
        selection=pd.DataFrame({"specimen_id": list(roles), "role": list(roles.values())}),
        primary_site_code=plan.get("primary_site_code"),
        unknown_primary=plan.get("unknown_primary", False),
        pmi_limit_hours=8.0,
        target_depth=plan.get("target_depth"),
        primary_unsampled_reason=plan.get("primary_unsampled_reason"),
        lesions=plan.get("lesions", []),
        models=plan.get("models", []),
        requirements=InputRequirements(),
    )


def changed(sid: int, **overrides: Any) -> list[dict[str, Any]]:
    return [s | overrides if s["specimen_id"] == sid else s for s in base_specimens()]


def pdx_vial(sid: int = 6, region: str = "L02-A", **overrides: Any) -> dict[str, Any]:
    """Tissue of passage P4 of a PDX grown from region ``region`` of the liver metastasis."""
    return spec(sid, f"RA0001-{region.replace('-', '')}-PDX1-P4-SF1", lineage="derivative", material_type="tissue",
                storage_format="snap_frozen", parent_storage_format="viable_cryo", lesion_code="L02",
                lesion_kind="metastasis", region_code=region, site_code="LIVER", site_label="Liver",
                laterality="not_applicable", pmi_hours=7796.8, unit="mg", quantity_remaining=40.0,
                model_code=f"RA0001-{region.replace('-', '')}-PDX1", model_kind="pdx", passage="P4", passage_number=4,
                host="NSG", model_source_code=f"RA0001-{region.replace('-', '')}-VC1") | overrides


def with_model(
    role: str = "model", region: str = "L02-A", roles: dict[int, str] | None = None, **plan: Any
) -> PlanContext:
    """The base plan with the PDX vial in ``role`` (or ``roles`` for every specimen)."""
    return context([*base_specimens(), pdx_vial(region=region)], roles=roles or ROLES | {6: role}, **plan)


def with_assays(
    assays: dict[int, str], extra: list[dict[str, Any]] | None = None, role: str | None = None, **plan: Any
) -> PlanContext:
    """The base plan (plus ``extra`` specimens, in ``role``) with these samples' own assays (the others: the plan's)."""
    extra = extra or []
    roles = ROLES | {s["specimen_id"]: role or "tumour" for s in extra}
    ctx = context([*base_specimens(), *extra], roles=roles, **plan)
    own = pd.Series([assays.get(int(i)) for i in ctx.selection["specimen_id"]], index=ctx.selection.index, dtype=object)
    ctx.selection = ctx.selection.assign(assay=own)
    return ctx


def rules_fired(ctx: PlanContext) -> set[str]:
    return {f.rule for f in run_rules(ctx, overrides={}).findings}


def test_the_base_plan_passes_every_rule():
    assert run_rules(context(), overrides={}).findings == []


BREAKERS: dict[str, Callable[[], PlanContext]] = {
    "one_germline_normal": lambda: context(roles={2: "tumour", 3: "tumour", 4: "tumour", 5: "tumour"}),
    "min_tumour_samples": lambda: context(roles={1: "germline_normal", 2: "tumour"}),
    "min_regions_per_lesion": lambda: context(roles={1: "germline_normal", 2: "tumour", 4: "tumour", 5: "tumour"}),
    "primary_site_named": lambda: context(donors=[donor(primary_site_code=None)]),
    "metastatic_sites_sampled": lambda: context(roles={1: "germline_normal", 2: "tumour", 3: "tumour"}),
    "cellularity_recorded": lambda: context(changed(2, tumour_cellularity_pct=float("nan"))),
    "cellularity_minimum": lambda: context(changed(2, tumour_cellularity_pct=15.0)),
    "cellularity_low": lambda: context(changed(2, tumour_cellularity_pct=25.0)),
    "wgs_ffpe": lambda: context(changed(2, parent_storage_format="ffpe")),
    "acid_decalcified": lambda: context(changed(2, decalcification_agent="hydrochloric_acid")),
    "edta_hours_recorded": lambda: context(changed(2, decalcification_agent="edta")),
    "input_requirements": lambda: context(changed(2, quantity_remaining=400.0)),
    "nucleic_acid_qc": lambda: context(changed(2, a260_280=1.6)),
    "pmi_recorded": lambda: context(changed(2, pmi_hours=float("nan"))),
    "pmi_over_limit": lambda: context(changed(2, pmi_hours=9.5)),
    "adjacent_normal": lambda: context([*base_specimens(), spec(6, "RA0001-N01-SF1", site_kind="normal_tissue", tissue_status="adjacent_normal", distance_to_tumour_mm=12.0, lesion_code=None, lesion_kind=None, region_code="N01", tumour_cellularity_pct=None)], roles=ROLES | {6: "normal_tissue"}),
    "germline_normal_source": lambda: context(changed(1, site_kind="normal_tissue", tissue_status="adjacent_normal", distance_to_tumour_mm=12.0)),
    "primary_sampled": lambda: context(roles={1: "germline_normal", 4: "tumour", 5: "tumour"}),
    "local_recurrence_not_primary": lambda: context([s | {"lesion_kind": "local_recurrence"} if s["lesion_code"] == "L01" else s for s in base_specimens()]),
    "model_material_role": lambda: with_model(role="tumour"),
    "model_source_paired": lambda: with_model(region="L02-C"),
    "model_established": lambda: with_model(models=[{"model_code": "RA0001-L02A-PDX1", "status": "growing", "passage": "P4", "qc_passed": True}]),
    "model_samples_present": lambda: context(purpose="model_vs_tumour"),
    "safe_identifiers": lambda: context(changed(2, specimen_code="RA0001 L01A:SF1")),
    "sex_recorded": lambda: context(donors=[donor(sex="unknown")]),
    "one_assay_per_donor": lambda: with_assays({3: "panel"}),
    "dna_assay_material": lambda: context(changed(2, material_type="rna")),
    "rna_seq_material": lambda: with_assays({2: "rna_seq"}),
    "rna_seq_paired": lambda: with_assays({6: "rna_seq"}, extra=[spec(6, "RA0001-L01C-SF1-RNA1", material_type="rna", region_code="L01-C", rin=8.0, din=None)], role="tumour"),
    "genomic_consent": lambda: context(donors=[donor(genomic_sequencing=False)]),
    "specimen_available": lambda: context(changed(2, status="depleted")),
    "role_matches_site": lambda: context(roles={1: "tumour", 2: "tumour", 3: "tumour", 4: "tumour", 5: "germline_normal"}),
    "lesion_kind_known": lambda: context(changed(4, lesion_kind="unknown")),
}


def test_every_rule_has_a_breaking_fixture():
    assert set(BREAKERS) == set(RULE_NAMES)


@pytest.mark.parametrize("rule", sorted(BREAKERS))
def test_rule_fires_on_the_fixture_that_breaks_it(rule: str):
    assert rule in rules_fired(BREAKERS[rule]())


@pytest.mark.parametrize("rule", sorted(BREAKERS))
def test_rule_is_silent_on_the_passing_plan(rule: str):
    assert rule not in rules_fired(context())


def test_zero_cellularity_is_below_the_minimum_not_missing():
    assert "cellularity_minimum" in rules_fired(context(changed(2, tumour_cellularity_pct=0.0)))


def test_migration_rules_do_not_apply_to_a_phylogeny():
    ctx = context(donors=[donor(primary_site_code=None)], roles={1: "germline_normal", 2: "tumour", 3: "tumour"}, purpose="phylogeny")
    assert not {"primary_site_named", "metastatic_sites_sampled"} & rules_fired(ctx)


def test_unknown_primary_satisfies_the_primary_site_rule():
    assert "primary_site_named" not in rules_fired(context(donors=[donor(primary_site_code=None)], unknown_primary=True))


def test_withdrawn_consent_is_an_error():
    report = run_rules(context(donors=[donor(withdrawn=True)]), overrides={})
    assert [f.severity for f in report.findings if f.rule == "genomic_consent"] == ["error"]
    assert not report.ok


def test_a_setting_changes_a_rules_severity(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BIOBANK_PLAN_RULE_SEVERITY", '{"min_regions_per_lesion": "error", "sex_recorded": "off"}')
    get_settings.cache_clear()
    try:
        ctx = BREAKERS["min_regions_per_lesion"]()
        ctx.donors = pd.DataFrame([donor(sex="unknown")])
        report = run_rules(ctx)
        assert {f.rule: f.severity for f in report.findings} == {"min_regions_per_lesion": "error"}
        assert not report.ok
    finally:
        get_settings.cache_clear()


def test_an_unknown_rule_in_the_setting_is_refused():
    with pytest.raises(ValidationError, match="unknown rule"):
        severities({"min_region": "error"})
    with pytest.raises(ValidationError, match="expected one of"):
        severities({"sex_recorded": "fatal"})


def test_suggestion_prefers_frozen_dna_with_higher_cellularity_and_explains():
    specimens = [
        *base_specimens()[:1],
        spec(10, "RA0001-L01A-FF1", lineage="primary", material_type="tissue", storage_format="ffpe",
             parent_storage_format=None, tumour_cellularity_pct=90.0, unit="blocks", quantity_remaining=1.0),
        spec(11, "RA0001-L01A-SF1", lineage="primary", material_type="tissue", storage_format="snap_frozen",
             parent_storage_format=None, tumour_cellularity_pct=60.0, unit="mg", quantity_remaining=30.0),
        spec(12, "RA0001-L01A-SF1-DNA1", tumour_cellularity_pct=60.0),
        spec(13, "RA0001-L01B-SF2-DNA1", region_code="L01-B", tumour_cellularity_pct=10.0),
    ]
    suggestion = suggest_from_frames(pd.DataFrame([donor()]), pd.DataFrame(specimens), "wgs")
    chosen = {c.region_code: c for c in suggestion.choices}
    assert chosen["GB1"].role == "germline_normal" and "blood" in chosen["GB1"].reason
    assert chosen["L01-A"].specimen_code == "RA0001-L01A-SF1-DNA1"
    assert "DNA extract of snap-frozen tissue" in chosen["L01-A"].reason and "best of 3" in chosen["L01-A"].reason
    assert "L01-B" not in chosen and any("below 20" in s for s in suggestion.skipped)


def test_suggestion_falls_back_to_distant_normal_tissue_without_blood():
    specimens = [
        spec(20, "RA0001-N01-SF1", lineage="primary", material_type="tissue", storage_format="snap_frozen",
             parent_storage_format=None, site_kind="normal_tissue", tissue_status="adjacent_normal",
             distance_to_tumour_mm=10.0, lesion_code=None, region_code="N01", tumour_cellularity_pct=None),
        spec(21, "RA0001-N02-SF1", lineage="primary", material_type="tissue", storage_format="snap_frozen",
             parent_storage_format=None, site_kind="normal_tissue", tissue_status="normal",
             distance_to_tumour_mm=None, lesion_code=None, region_code="N02", site_label="Spleen",
             tumour_cellularity_pct=None),
        *base_specimens()[1:],
    ]
    suggestion = suggest_from_frames(pd.DataFrame([donor()]), pd.DataFrame(specimens), "wgs")
    germline = [c for c in suggestion.choices if c.role == "germline_normal"]
    assert [c.specimen_code for c in germline] == ["RA0001-N02-SF1"]
    assert "no germline blood" in germline[0].reason
