"""Plans and exports on real database rows (the demo cohort, built through the services), on both databases."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from typer.testing import CliRunner

from biobank.cli import app
from biobank.db.engine import session_scope
from biobank.demo.cohort import load_demo
from biobank.domain.errors import ConflictError, ConsentError, PermissionDeniedError, ValidationError
from biobank.exports import service
from biobank.exports.formats import cbioportal, clonal, fhir, migration, phenopacket, sarek
from biobank.models import User
from biobank.queries import plans as plan_reads
from biobank.services import donors, planning
from biobank.services.plan_rules import PlanRulesError
from tests.support.cli_auth import issue_cli_token
from tests.support.dbtools import snapshot


@pytest.fixture
def demo(engine) -> dict[str, User]:
    """Two demo donors: RA-0001 complete with QC, RA-0002 still in progress."""
    with session_scope(engine) as session:
        load_demo(session, donors_count=2, seed=7)
    with Session(engine, expire_on_commit=False) as session:
        return {u.username: u for u in session.exec(select(User)).all()}


def make_plan(engine, users, code="WGS-1", **options) -> None:
    params = {"name": f"Multiregional WGS {code}", "purpose": "phylogeny", "assay": "wgs", "donor_codes": ["RA-0001"]}
    with session_scope(engine) as session:
        planning.create_plan(session, actor=users["pi"], code=code, **(params | options))


def test_pi_plans_a_demo_donor_approves_it_and_the_plan_exports_pass_the_tools_rules(engine, demo):
    make_plan(engine, demo, target_depth=60)
    with Session(engine) as session:
        detail = plan_reads.plan_detail(session, "WGS-1")
        assert detail["status"] == "draft" and detail["specimens"] >= 3
        assert all(row["reason"] for row in detail["specimens_detail"]), "every choice is explained"
        assert [r["role"] for r in detail["specimens_detail"]].count("germline_normal") == 1
    with session_scope(engine) as session:
        planning.approve_plan(session, actor=demo["pi"], plan_code="WGS-1")
    with Session(engine) as session:
        assert plan_reads.list_plans(session)[0]["approved_by"] == "pi"
        files = {t: service.export_files(session, actor=demo["pi"], target=t, plan_code="WGS-1", template=t == "sarek")
                 for t in service.TARGETS if t != "metient"}

    sheet = pd.read_csv(io.StringIO(files["sarek"]["samplesheet.csv"].decode()), dtype=str, keep_default_na=False)
    assert list(sheet.columns) == [*sarek.COLUMNS, "contamination"] and set(sheet["fastq_1"]) == {""}
    assert sarek.validate_sarek(sheet) == [] and sarek.sarek_steps(sheet) == [], "a template sarek cannot run yet"
    assert sorted(sheet["status"].unique()) == ["0", "1"]

    table = list(csv.reader(io.StringIO(files["clonal"]["RA-0001.tsv"].decode()), delimiter="\t"))
    assert tuple(table[0]) == clonal.COLUMNS
    assert all(0 < float(row[6]) <= 1 for row in table[1:])

    machina = pd.read_csv(io.BytesIO(files["machina"]["RA-0001.samples.tsv"]), sep="\t")
    assert tuple(machina.columns) == migration.MACHINA_SAMPLE_COLUMNS
    assert migration.validate_machina([migration.MachinaInput("RA-0001", machina, None)]) == []
    assert cbioportal.validate_cbioportal({k: v.decode() for k, v in files["cbioportal"].items()}) == []
    study = pd.read_csv(io.BytesIO(files["cbioportal"]["data_clinical_sample.txt"]), sep="\t", skiprows=4)
    assert set(study["SAMPLE_ID"]) == {row["specimen_code"] for row in detail["specimens_detail"]}, "the plan's analytes"
    assert phenopacket.validate_phenopacket(files["phenopackets"]["RA-0001.json"].decode()) == []
    assert fhir.validate_fhir(files["fhir"]["bundle.json"].decode()) == []
    dictionary = pd.read_csv(io.BytesIO(files["tables"]["data_dictionary.csv"]))
    assert list(dictionary.columns) == ["table", "column", "type", "meaning", "vocabulary"]
    assert dictionary["meaning"].notna().all() and dictionary["type"].notna().all(), "every column typed and explained"
    specimens = pd.read_csv(io.BytesIO(files["tables"]["specimens.csv"]))
    assert "collected_at" not in specimens.columns and "hours_after_death" in specimens.columns


def test_metient_export_of_chosen_specimens_passes_metients_rules(engine, demo):
    with Session(engine) as session:
        codes = session.execute(
            text("SELECT code FROM specimen WHERE code LIKE 'RA0001-L0%-SF1' AND lineage = 'primary' ORDER BY code")
        ).scalars().all()
        files = service.export_files(session, actor=demo["pi"], target="metient", specimen_codes=codes)
    frame = pd.read_csv(io.BytesIO(files["RA-0001.tsv"]), sep="\t")
    assert tuple(frame.columns) == migration.METIENT_COLUMNS
    assert migration.validate_metient(frame) == []
    assert set(frame["site_category"]) == {"primary", "metastasis"}


def test_sarek_fastq_folder_fills_lanes_and_reads(engine, demo, tmp_path: Path):
    make_plan(engine, demo)
    with Session(engine) as session:
        plain = service.export_files(session, actor=demo["pi"], target="sarek", plan_code="WGS-1",
                                     template=True)["samplesheet.csv"].decode()
        for row in csv.DictReader(io.StringIO(plain)):
            for read in (1, 2):
                (tmp_path / f"{row['sample']}_S1_L001_R{read}_001.fastq.gz").write_bytes(b"")
        filled = service.export_files(session, actor=demo["pi"], target="sarek", plan_code="WGS-1", fastq_dir=tmp_path)
    sheet = pd.read_csv(io.BytesIO(filled["samplesheet.csv"]), dtype=str, keep_default_na=False)
    assert list(sheet.columns)[:7] == list(sarek.COLUMNS)
    assert set(sheet["lane"]) == {"1"} and all(p.endswith("_R2_001.fastq.gz") for p in sheet["fastq_2"])


def test_approval_is_refused_while_errors_remain_and_changes_nothing(engine, demo):
    make_plan(engine, demo, use_suggestion=False)
    before = snapshot(engine)
    with pytest.raises(PlanRulesError) as refused, session_scope(engine) as session:
        planning.approve_plan(session, actor=demo["pi"], plan_code="WGS-1")
    assert {f.rule for f in refused.value.report.errors} >= {"one_germline_normal", "min_tumour_samples"}
    assert snapshot(engine) == before


@pytest.mark.parametrize("username", ["tech", "viewer", "admin"])
def test_only_a_pi_drafts_plans(engine, demo, username):
    before = snapshot(engine)
    with pytest.raises(PermissionDeniedError), session_scope(engine) as session:
        planning.create_plan(session, actor=demo[username], code="X-1", name="x", purpose="phylogeny", assay="wgs", donor_codes=["RA-0001"])
    assert snapshot(engine) == before


def test_an_approved_plan_is_frozen_in_the_service_and_the_database(engine, demo):
    make_plan(engine, demo)
    with session_scope(engine) as session:
        planning.approve_plan(session, actor=demo["pi"], plan_code="WGS-1")
    with pytest.raises(ConflictError), session_scope(engine) as session:
        planning.set_specimens(session, actor=demo["pi"], plan_code="WGS-1", selection=[])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO plan_specimen (plan_id, donor_id, specimen_id, role, included, created_at) "
            "SELECT 1, donor_id, id, 'tumour', true, '2026-01-01 00:00:00' FROM specimen WHERE code = 'RA0001-L01A-FF1'"
        ))


def test_toggling_specimens_keeps_rows_and_a_specimen_of_another_donor_is_refused(engine, demo):
    make_plan(engine, demo)
    with Session(engine) as session:
        chosen = [(r["specimen_code"], r["role"], r["reason"]) for r in plan_reads.plan_detail(session, "WGS-1")["specimens_detail"]]
    with session_scope(engine) as session:
        planning.set_specimens(session, actor=demo["pi"], plan_code="WGS-1", selection=chosen[:-1])
    with Session(engine) as session:
        assert plan_reads.plan_detail(session, "WGS-1")["specimens"] == len(chosen) - 1
        assert session.execute(text("SELECT count(*) FROM plan_specimen")).scalar_one() == len(chosen)
    before = snapshot(engine)
    with pytest.raises(ValidationError, match="not in plan"), session_scope(engine) as session:
        planning.set_specimens(session, actor=demo["pi"], plan_code="WGS-1", selection=[("RA0002-GB1-FZ1", "germline_normal", None)])
    assert snapshot(engine) == before


def test_a_withdrawn_donor_never_appears_in_any_export(engine, demo):
    make_plan(engine, demo)
    with session_scope(engine) as session:
        donors.withdraw_consent(session, actor=demo["admin"], donor_code="RA-0002", requested_by="next_of_kin",
                                withdrawn_at=datetime.now(UTC), reason="family request")
    with Session(engine) as session:
        for target in service.EXCHANGE_TARGETS:
            files = service.export_files(session, actor=demo["pi"], target=target)
            for name, content in files.items():
                assert b"RA-0002" not in content and b"RA0002" not in content, (target, name)
                if name in ("donors.csv", "data_clinical_patient.txt", "bundle.json"):
                    assert b"RA-0001" in content, (target, name)
        for target in service.TARGETS:
            with pytest.raises(ConsentError):
                service.export_files(session, actor=demo["pi"], target=target, donor_codes=["RA-0002"])
    with session_scope(engine) as session:
        donors.withdraw_consent(session, actor=demo["admin"], donor_code="RA-0001", requested_by="donor",
                                withdrawn_at=datetime.now(UTC), reason="changed mind")
    with Session(engine) as session, pytest.raises(PlanRulesError, match="genomic_consent"):
        service.export_files(session, actor=demo["pi"], target="sarek", plan_code="WGS-1")
    with pytest.raises(PlanRulesError, match="withdrawn"), session_scope(engine) as session:
        planning.approve_plan(session, actor=demo["pi"], plan_code="WGS-1")


def test_cli_check_exits_2_with_the_report_and_export_writes_the_sheet(engine, db_url, demo, tmp_path: Path):
    make_plan(engine, demo, code="EMPTY-1", use_suggestion=False)
    make_plan(engine, demo, code="WGS-1")
    runner = CliRunner()
    as_pi, as_tech = ({"BIOBANK_TOKEN": issue_cli_token(db_url, name)} for name in ("pi", "tech"))
    result = runner.invoke(app, ["plan", "check", "EMPTY-1", "--json"])
    assert result.exit_code == 2
    assert any(f["rule"] == "one_germline_normal" for f in json.loads(result.stdout)["findings"])
    result = runner.invoke(app, ["export", "sarek", "-o", str(tmp_path / "sheet.csv"), "--plan", "EMPTY-1", "--user", "pi"],
                           env=as_pi)
    assert result.exit_code == 2 and "min_tumour_samples" in result.output
    result = runner.invoke(app, ["export", "sarek", "-o", str(tmp_path / "sheet.csv"), "--plan", "WGS-1", "--user", "pi"],
                           env=as_pi)
    assert result.exit_code == 2 and not (tmp_path / "sheet.csv").exists()
    assert result.output.count("\n") == 1 and "--fastq-dir" in result.output and "--bam-dir" in result.output
    result = runner.invoke(app, ["export", "sarek", "-o", str(tmp_path / "sheet.csv"), "--plan", "WGS-1", "--template",
                                 "--user", "pi"], env=as_pi)
    assert result.exit_code == 0, result.output
    assert "TEMPLATE" in result.output and "Missing or unknown field in csv file header" in result.output
    sheet = (tmp_path / "sheet.csv").read_text()
    assert sheet.startswith("patient,sex,status,sample,lane,fastq_1,fastq_2")
    aligned = tmp_path / "aligned"
    aligned.mkdir()
    for row in csv.DictReader(io.StringIO(sheet)):
        for suffix in (".bam", ".bam.bai"):
            (aligned / f"{row['sample']}{suffix}").write_bytes(b"")
    result = runner.invoke(app, ["export", "sarek", "-o", str(tmp_path / "bam.csv"), "--plan", "WGS-1", "--bam-dir",
                                 str(aligned), "--user", "pi"], env=as_pi)
    assert result.exit_code == 0, result.output
    assert "--step variant_calling" in result.output
    assert (tmp_path / "bam.csv").read_text().startswith("patient,sex,status,sample,bam,bai,contamination")
    result = runner.invoke(app, ["plan", "approve", "WGS-1", "--user", "tech"], env=as_tech)
    assert result.exit_code == 2 and "technician" in result.output


def test_a_draft_can_name_its_primary_site_or_mark_it_unknown(engine):
    from biobank.db.engine import session_scope as scope
    from biobank.demo.cohort import load_demo
    from biobank.domain.errors import ValidationError as Invalid
    from biobank.services import planning as plans
    from biobank.services.auth import get_user

    with scope(engine) as session:
        load_demo(session, donors_count=2, seed=7)
    with scope(engine) as session:
        pi = get_user(session, "pi")
        plans.create_plan(session, actor=pi, code="MIG-1", name="Migration", purpose="migration_history", assay="wgs",
                          donor_codes=["RA-0001"])
        plan = plans.update_plan_settings(session, actor=pi, plan_code="MIG-1", primary_site_code="BREAST", target_depth=90)
        assert (plan.primary_site_code, plan.unknown_primary, plan.target_depth) == ("BREAST", False, 90)
        plan = plans.update_plan_settings(session, actor=pi, plan_code="MIG-1", unknown_primary=True)
        assert (plan.primary_site_code, plan.unknown_primary) == (None, True)
    with pytest.raises(Invalid, match="cannot be given together"), scope(engine) as session:
        pi = get_user(session, "pi")
        plans.update_plan_settings(session, actor=pi, plan_code="MIG-1", primary_site_code="BREAST", unknown_primary=True)
