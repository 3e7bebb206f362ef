"""Bulk import: whole-file validation, one transaction, upsert by natural keys, and the demo round trip."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from biobank.db.engine import make_engine, session_scope
from biobank.domain.errors import PermissionDeniedError
from biobank.imports.engine import errors_csv, run_import
from biobank.models import User
from tests.conftest import DEATH
from tests.support.dbtools import Templates, fresh_database, snapshot
from tests.support.factories import collect, exported_demo, importer_of, make_case

BOOKKEEPING = {"created_at", "created_by_id", "updated_at", "updated_by_id", "version"}
TABLES = ("donor", "consent", "treatment_line", "autopsy", "lesion", "sampling_site", "specimen", "container",
          "specimen_location", "derived_model", "model_passage", "model_qc")


def do_import(engine: Engine, actor: User, kind: str, content: str | bytes, **options):  # type: ignore[no-untyped-def]
    data = content.encode("utf-8") if isinstance(content, str) else content
    with session_scope(engine) as session:
        return run_import(session, actor=actor, kind=kind, source=data, filename=f"{kind}.csv", **options)


def snapshot_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() for table in TABLES}


def rows_of(engine: Engine) -> dict[str, list[dict]]:
    out = {}
    with engine.connect() as conn:
        for table in TABLES:
            rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY id")).mappings()
            out[table] = [{k: v for k, v in row.items() if k not in BOOKKEEPING} for row in rows]
    # A location row goes when its specimen leaves (distribution), so the source's ids have holes the import
    # cannot reproduce: placements compare by specimen, without their surrogate id.
    out["specimen_location"] = sorted(({k: v for k, v in row.items() if k != "id"} for row in out["specimen_location"]),
                                      key=lambda row: row["specimen_id"])
    return out


def test_export_then_import_of_the_demo_cohort_gives_identical_rows_and_upsert_twice_changes_nothing(
    engine: Engine, backend: str, templates: Templates, tmp_path: Path
) -> None:
    with session_scope(engine) as session:
        files = exported_demo(session)
    assert {t: n for t, n in snapshot_counts(engine).items() if not n} == {}
    # the vials, and the DNA with its two aliquots, come out in their own files (imported after the passages)
    assert [len(files[name].splitlines()) - 1 for name in ("passage_specimens", "passage_descendants")] == [2, 3]
    with fresh_database(backend, templates, tmp_path) as url:
        target = make_engine(url)
        try:
            with session_scope(target) as session:
                importer = importer_of(session)
            for name, content in files.items():
                report = do_import(target, importer, name, content)
                assert report.ok, (name, report.errors[:3])
                assert report.notes == [], (name, report.notes[:3])
            got, want = rows_of(target), rows_of(engine)
            for table in TABLES:
                assert got[table] == want[table], table
            before = snapshot(target)
            for name, content in files.items():
                report = do_import(target, importer, name, content, mode="upsert")
                assert report.ok and report.inserted == report.updated == 0
                assert report.unchanged == report.rows
            assert snapshot(target) == before  # no audit rows either
        finally:
            target.dispose()


DONORS = "code,sex,age_at_death,primary_site_code,status\nRA-0101,F,61,breast,\nRA-0102,Male,70,,deceased\n"


def test_donors_import_reports_coercion_notes_and_audits_each_row(engine: Engine, tech: User) -> None:
    report = do_import(engine, tech, "donors", DONORS)
    assert report.ok and report.inserted == 2 and report.written
    assert {(n.row, n.column) for n in report.notes} >= {(2, "sex"), (3, "sex")}
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT code, sex, primary_site_code, status, created_by_id FROM donor ORDER BY code")).all()
        audits = conn.execute(text("SELECT count(*) FROM audit_log WHERE table_name = 'donor' AND action = 'insert'")).scalar()
    assert rows == [("RA-0101", "female", "BREAST", "enrolled", tech.id), ("RA-0102", "male", None, "deceased", tech.id)]
    assert audits == 2


def test_create_mode_refuses_an_existing_code_and_writes_nothing(engine: Engine, tech: User) -> None:
    do_import(engine, tech, "donors", DONORS)
    before = snapshot(engine)
    report = do_import(engine, tech, "donors", DONORS + "RA-0103,female,50,,\n")
    assert not report.ok and not report.written
    assert [(e.row, e.column) for e in report.errors] == [(2, "code"), (3, "code")]
    assert "upsert" in report.errors[0].message
    assert snapshot(engine) == before


def test_upsert_updates_only_changed_columns_with_an_audit_row(engine: Engine, tech: User) -> None:
    do_import(engine, tech, "donors", DONORS)
    report = do_import(engine, tech, "donors", "code,age_at_death\nRA-0101,62\nRA-0102,70\n", mode="upsert")
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT age_at_death, sex FROM donor WHERE code = 'RA-0101'")).one() == (62, "female")
        changes = conn.execute(text("SELECT changes FROM audit_log WHERE action = 'update'")).scalars().all()
    assert len(changes) == 1 and "age_at_death" in str(changes[0]) and "sex" not in str(changes[0])


def test_errors_name_row_column_value_and_expected_and_go_to_csv(engine: Engine, tech: User) -> None:
    content = "code,sex,age_at_death,hardy_scale\nRA-0201,female,sixty,2\nRA 0202,female,50,9\n,male,40,\n"
    before = snapshot(engine)
    report = do_import(engine, tech, "donors", content)
    assert snapshot(engine) == before
    found = {(e.row, e.column, e.value) for e in report.errors}
    assert (2, "age_at_death", "sixty") in found
    assert (3, "hardy_scale", "9") in found
    assert (4, "code", "") in found
    assert all(e.expected for e in report.errors if e.column != "code")
    parsed = list(csv.DictReader(io.StringIO(errors_csv(report))))
    assert {r["row"] for r in parsed} == {"2", "3", "4"}
    assert set(parsed[0]) == {"row", "column", "value", "expected", "message"}


def test_missing_required_column_is_one_clear_error(engine: Engine, tech: User) -> None:
    report = do_import(engine, tech, "lesions", "donor_code,code,kind\nRA-0001,L01,primary\n")
    assert [(e.column, e.row) for e in report.errors] == [("site_code", 1)]


def test_dry_run_validates_and_writes_nothing(engine: Engine, tech: User) -> None:
    before = snapshot(engine)
    report = do_import(engine, tech, "donors", DONORS, dry_run=True)
    assert report.ok and report.inserted == 2 and not report.written
    assert snapshot(engine) == before


def test_a_viewer_may_not_import(engine: Engine, viewer: User) -> None:
    with pytest.raises(PermissionDeniedError), session_scope(engine) as session:
        run_import(session, actor=viewer, kind="donors", source=DONORS.encode(), filename="d.csv")


SPECIMENS = """code,parent_code,donor_code,sampling_site,material_type,storage_format,quantity,quantity_remaining,collected_at,stabilised_at
X-1,,RA-0001,L02-A,,LN2,50 mg,20,2026-03-14 05:00,2026-03-14 05:05
X-1.1,X-1,,,,snap frozen,10 mg,,,
X-1-DNA1,X-1,,,gDNA,-80,5 µg,,,
"""


def test_aliquots_and_derivatives_may_name_a_parent_defined_earlier_in_the_file(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech)
    report = do_import(engine, tech, "specimens", SPECIMENS)
    assert report.ok, report.errors
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT s.code, s.lineage, s.material_type, s.quantity, s.unit, s.quantity_remaining, p.code, s.sampling_site_id"
            " FROM specimen s LEFT JOIN specimen p ON p.id = s.parent_id WHERE s.code LIKE 'X-%' ORDER BY s.id"
        )).all()
        events = conn.execute(text("SELECT count(*) FROM custody_event WHERE note = 'imported'")).scalar()
    assert [r[:7] for r in rows] == [
        ("X-1", "primary", "tissue", 50.0, "mg", 20.0, None),
        ("X-1.1", "aliquot", "tissue", 10.0, "mg", 10.0, "X-1"),
        ("X-1-DNA1", "derivative", "dna", 5000.0, "ng", 5000.0, "X-1"),
    ]
    assert len({r[7] for r in rows}) == 1
    assert events == 3
    notes = {(n.row, n.column) for n in report.notes}
    assert {(2, "storage_format"), (4, "storage_format"), (4, "quantity"), (4, "material_type")} <= notes


def test_rows_naming_unknown_parents_or_impossible_times_are_refused(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
        collect(session, tech)
    before = snapshot(engine)
    content = (
        "code,parent_code,donor_code,sampling_site,storage_format,quantity,collected_at,stabilised_at\n"
        "Y-1,NOPE,,,ffpe,1 block,,\n"
        "Y-2,,RA-0001,L02-A,snap_frozen,5 mg,2026-03-13 20:00,\n"  # before death (02:00 UTC on the 14th)
        "Y-3,,RA-0001,L02-A,snap_frozen,5 mg,2026-03-14 06:00,2026-03-14 05:00\n"  # stabilised before collected
        "Y-4,Y-5,,,snap_frozen,5 mg,,\n"  # parent defined later
        "Y-5,,RA-0001,L02-A,snap_frozen,5 mg,,\n"
    )
    report = do_import(engine, tech, "specimens", content)
    assert snapshot(engine) == before
    assert {(e.row, e.column) for e in report.errors} == {
        (2, "parent_code"), (3, "collected_at"), (4, "stabilised_at"), (5, "parent_code"),
    }
    assert DEATH.isoformat() in next(e for e in report.errors if e.row == 3).expected


def test_upsert_cannot_move_a_specimen_to_another_parent(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
        codes = collect(session, tech)
    do_import(engine, tech, "specimens", SPECIMENS)
    before = snapshot(engine)
    moved = SPECIMENS.replace("X-1.1,X-1,", f"X-1.1,{codes[0]},")
    report = do_import(engine, tech, "specimens", moved, mode="upsert")
    assert [e.column for e in report.errors] == ["parent_id"]
    assert snapshot(engine) == before


def test_sampling_sites_take_their_code_from_lesion_and_region(engine: Engine, tech: User) -> None:
    with session_scope(engine) as session:
        make_case(session, tech)
    content = (
        "donor_code,kind,lesion_code,region_label,site_code,excised_at,code\n"
        "RA-0001,tumour,L02,B,LIVER,2026-03-14 06:00,\n"
        "RA-0001,normal,,,LUNG,2026-03-14 06:10,N01\n"
        "RA-0001,tumour_region,L02,C,BRAIN,2026-03-14 06:20,\n"
    )
    report = do_import(engine, tech, "sampling_sites", content)
    assert [(e.row, e.column) for e in report.errors] == [(4, "site_code")]
    report = do_import(engine, tech, "sampling_sites", content.rsplit("RA-0001,tumour_region", 1)[0])
    assert report.ok
    with engine.connect() as conn:
        assert conn.execute(text("SELECT code, tissue_status FROM sampling_site ORDER BY id")).all() == [
            ("L02-B", "tumour"), ("N01", "normal")]


def test_latin1_excel_export_with_bom_free_semicolons_imports(engine: Engine, tech: User) -> None:
    content = "code;primary_diagnosis;sex\nRA-0301;Carcinome canalaire infiltrant du sein (Hôpital);Féminin\n"
    report = do_import(engine, tech, "donors", content.replace("Féminin", "female").encode("latin-1"))
    assert report.ok, report.errors
    with engine.connect() as conn:
        assert "Hôpital" in conn.execute(text("SELECT primary_diagnosis FROM donor")).scalar()
