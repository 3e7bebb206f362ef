"""Migration 0013 on a database that already holds plans: the ``model`` role joins plan_specimen's CHECK, and a
plan's ``Primary unsampled:`` description line moves into ``analysis_plan.primary_unsampled_reason`` and back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError

from tests.support.dbtools import alembic_config, empty_database, migrate

T = datetime(2026, 1, 5, 3, 0, tzinfo=UTC).replace(tzinfo=None)


def _engine(url: str, backend: str) -> Engine:
    return create_engine(make_url(url).set(drivername="postgresql+psycopg") if backend == "postgresql" else url)


def _seed(engine: Engine) -> None:
    """A donor with two specimens and three plans: one declaring its primary unsampled (with other description
    lines), one approved declaring it, one declaring nothing."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO user_account (id, username, role, is_active, created_at) "
                          "VALUES (1, 'pi', 'pi', true, :t)"), {"t": T})
        conn.execute(text("INSERT INTO donor (id, code, sex, status, created_at) "
                          "VALUES (1, 'RA-0001', 'female', 'deceased', :t)"), {"t": T})
        conn.execute(text("INSERT INTO autopsy (id, donor_id, case_code, death_at, start_at, status, created_at)"
                          " VALUES (1, 1, 'RAP-1', :t, :t, 'in_progress', :t)"), {"t": T})
        conn.execute(text("INSERT INTO sampling_site (id, donor_id, autopsy_id, code, kind, tissue_status, site_code,"
                          " laterality, excised_at, created_at) VALUES (1, 1, 1, 'N01', 'normal_tissue', 'normal',"
                          " 'LIVER', 'not_applicable', :t, :t)"), {"t": T})
        for i in (1, 2):
            conn.execute(text("INSERT INTO specimen (id, code, donor_id, sampling_site_id, lineage, material_type,"
                              " storage_format, collected_at, quantity, quantity_remaining, unit, freeze_thaw_count,"
                              " status, version, created_at) VALUES (:i, :c, 1, 1, 'primary', 'tissue', 'fresh', :t,"
                              " 100, 100, 'mg', 0, 'available', 1, :t)"), {"i": i, "c": f"RA0001-N01-FR{i}", "t": T})
        plans = [
            (1, "MIG-1", "draft", "Liver and lung.\nPrimary unsampled: resected 2016 elsewhere\nSecond line.", None),
            (2, "MIG-2", "approved", "Primary unsampled:   not found at   autopsy", 1),
            (3, "PHY-1", "draft", "Phylogeny only.", None),
        ]
        for pid, code, status, description, approver in plans:
            conn.execute(
                text("INSERT INTO analysis_plan (id, code, name, purpose, assay, status, unknown_primary, description,"
                     " approved_by_id, approved_at, created_at) VALUES (:i, :c, :c, 'migration_history', 'wgs', :s,"
                     " false, :d, :a, :at, :t)"),
                {"i": pid, "c": code, "s": status, "d": description, "a": approver,
                 "at": T if approver else None, "t": T},
            )
        conn.execute(text("INSERT INTO plan_donor (id, plan_id, donor_id, created_at) VALUES (1, 1, 1, :t)"), {"t": T})
        conn.execute(text("INSERT INTO plan_specimen (id, plan_id, donor_id, specimen_id, role, included, created_at)"
                          " VALUES (1, 1, 1, 1, 'normal_tissue', true, :t)"), {"t": T})


def _plans(engine: Engine, *, with_reason: bool) -> dict[str, tuple]:
    columns = "code, description" + (", primary_unsampled_reason" if with_reason else "")
    with engine.connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(text(f"SELECT {columns} FROM analysis_plan ORDER BY code"))}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_declaration_moves_into_its_column_and_back_and_model_joins_the_roles(backend, tmp_path):
    with empty_database(backend, tmp_path) as url:
        migrate(url, "0012")
        engine = _engine(url, backend)
        try:
            _seed(engine)
            before = _plans(engine, with_reason=False)
            migrate(url, "0013")
            assert _plans(engine, with_reason=True) == {
                "MIG-1": ("Liver and lung.\nSecond line.", "resected 2016 elsewhere"),
                "MIG-2": (None, "not found at autopsy"),
                "PHY-1": ("Phylogeny only.", None),
            }
            checks = {c["name"] for c in inspect(engine).get_check_constraints("analysis_plan")}
            assert "ck_analysis_plan_primary_unsampled_reason_not_blank" in checks
            with pytest.raises(DBAPIError, match="primary_unsampled_reason_not_blank"), engine.begin() as conn:
                conn.execute(text("UPDATE analysis_plan SET primary_unsampled_reason = '  ' WHERE code = 'PHY-1'"))
            # the model role is stored now; the rebuilt table kept its rows, indexes and the draft-only trigger
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO plan_specimen (id, plan_id, donor_id, specimen_id, role, included,"
                                  " created_at) VALUES (2, 1, 1, 2, 'model', true, :t)"), {"t": T})
                assert conn.execute(text("SELECT id, role FROM plan_specimen ORDER BY id")).all() == [
                    (1, "normal_tissue"), (2, "model")]
            with pytest.raises(DBAPIError, match="ck_plan_specimen_role"), engine.begin() as conn:
                conn.execute(text("UPDATE plan_specimen SET role = 'xenograft' WHERE id = 2"))
            with pytest.raises(DBAPIError, match="tg_plan_specimen_plan_is_draft"), engine.begin() as conn:
                conn.execute(text("INSERT INTO plan_specimen (id, plan_id, donor_id, specimen_id, role, included,"
                                  " created_at) VALUES (3, 2, 1, 1, 'tumour', true, :t)"), {"t": T})
            indexes = {i["name"] for i in inspect(engine).get_indexes("plan_specimen")}
            assert {"ix_plan_specimen_plan_id", "ix_plan_specimen_specimen_id", "ix_plan_specimen_donor_id"} <= indexes

            config = alembic_config()
            config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
            with pytest.raises(RuntimeError, match="role model"):
                command.downgrade(config, "0012")
            with engine.begin() as conn:
                conn.execute(text("UPDATE plan_specimen SET role = 'normal_tissue' WHERE id = 2"))
            command.downgrade(config, "0012")
            assert "primary_unsampled_reason" not in {c["name"] for c in inspect(engine).get_columns("analysis_plan")}
            after = _plans(engine, with_reason=False)
            assert after["PHY-1"] == before["PHY-1"]
            assert after["MIG-1"] == ("Liver and lung.\nSecond line.\nPrimary unsampled: resected 2016 elsewhere",)
            assert after["MIG-2"] == ("Primary unsampled: not found at autopsy",)
            with pytest.raises(DBAPIError, match="ck_plan_specimen_role"), engine.begin() as conn:
                conn.execute(text("UPDATE plan_specimen SET role = 'model' WHERE id = 2"))
        finally:
            engine.dispose()
