"""The tables export of the demo cohort read by its real readers: pyarrow (the Parquet schema), openpyxl (the
workbook's cells) and pandas (the CSV); every column typed and explained by the data dictionary, model material
marked; the demo is built once per module, on both databases."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlmodel import Session, select

from biobank.db.engine import make_engine, session_scope
from biobank.exports import service
from biobank.exports.formats import tables
from biobank.models import User
from tests.support.dbtools import BACKENDS, Templates, fresh_database

PDX = "RA0004-L06A-PDX1-P4-SF1"
ORGANOID = "RA0004-L04A-ORG1-P5-VC1"
MODEL_COLUMNS = ("model_code", "model_kind", "passage", "passage_number", "host", "model_source_code")


@pytest.fixture(scope="module", params=BACKENDS)
def exported(request, templates: Templates, tmp_path_factory) -> Iterator[dict[str, Path]]:
    """Five demo donors (RA-0004 with an organoid and a PDX) exported as tables, de-identified and identified."""
    folder = tmp_path_factory.mktemp("tables")
    with fresh_database(request.param, templates, folder, demo_donors=5) as url:
        engine = make_engine(url)
        with Session(engine, expire_on_commit=False) as session:
            pi = session.exec(select(User).where(User.username == "pi")).one()
        out = {}
        for name, identified in (("deidentified", False), ("identified", True)):
            with session_scope(engine) as session:
                files = service.export_files(session, actor=pi, target="tables", identified=identified)
            out[name] = folder / name
            service.write_files(files, "tables", out[name])
        engine.dispose()
        yield out


def _dictionary(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / tables.DICTIONARY_FILE, keep_default_na=False, dtype=str)


def _types(folder: Path) -> dict[str, dict[str, str]]:
    d = _dictionary(folder)
    return {t: dict(zip(rows["column"], rows["type"], strict=True)) for t, rows in d.groupby("table")}


@pytest.mark.parametrize("which", ["deidentified", "identified"])
def test_every_parquet_column_has_its_dictionary_type_and_none_is_null(exported, which):
    folder = exported[which]
    types = _types(folder)
    assert set(types) == {p.stem for p in folder.glob("*.parquet")}
    for path in sorted(folder.glob("*.parquet")):
        schema = pq.read_schema(path)
        assert schema.names == list(types[path.stem]), path.name
        for field in schema:
            assert not pa.types.is_null(field.type), f"{path.stem}.{field.name} is typed null"
            assert field.type == tables.ARROW_TYPES[types[path.stem][field.name]], f"{path.stem}.{field.name}"
    specimens = pq.read_schema(folder / "specimens.parquet")
    assert specimens.field("dv200_pct").type == pa.float64(), "DV200 is a number, even when no one measured it"
    lesions = pq.read_table(folder / "lesions.parquet")
    assert lesions.schema.field("pr_status").type == pa.string()
    if which == "identified":
        assert specimens.field("collected_at").type == pa.timestamp("us", tz="UTC")


def test_the_csv_reads_back_with_the_dictionary_types(exported):
    folder = exported["identified"]
    for table, types in _types(folder).items():
        dates = [c for c, t in types.items() if t == "datetime"]
        dtypes = {c: tables.PANDAS_TYPES[t] for c, t in types.items() if t != "datetime"}
        csv = pd.read_csv(folder / f"{table}.csv", dtype=dtypes, parse_dates=dates, keep_default_na=True)
        parquet = pd.read_parquet(folder / f"{table}.parquet")
        assert list(csv.columns) == list(types), table
        for c in dates:
            assert str(csv[c].dt.tz) == "UTC", f"{table}.{c}: the CSV timestamp carries its offset"
            csv[c] = csv[c].astype(tables.PANDAS_TYPES["datetime"])
        pd.testing.assert_frame_equal(csv, parquet, check_exact=False, obj=table)
    assert pd.read_csv(folder / "specimens.csv")["dv200_pct"].dtype == "float64"


def test_excel_cells_are_typed_and_timestamps_say_utc(exported):
    book = openpyxl.load_workbook(exported["identified"] / tables.WORKBOOK_FILE)
    types = _types(exported["identified"])
    parquet = pd.read_parquet(exported["identified"] / "specimens.parquet")
    for table in ("donors", "specimens"):
        sheet = book[table]
        header = [cell.value for cell in sheet[1]]
        column = "death_at" if table == "donors" else "collected_at"
        cells = [row[header.index(column)] for row in sheet.iter_rows(min_row=2) if row[header.index(column)].value]
        assert cells, f"{table}.{column} has timestamps"
        assert all(cell.is_date and "UTC" in cell.number_format for cell in cells), f"{table}.{column}"
    sheet = book["specimens"]
    header = [cell.value for cell in sheet[1]]
    first = next(sheet.iter_rows(min_row=2, max_row=2))
    expected = parquet["collected_at"].iloc[0].tz_convert("UTC").tz_localize(None).to_pydatetime()
    assert first[header.index("collected_at")].value == expected, "the cell holds the UTC time"
    for column, kind in types["specimens"].items():
        values = [row[header.index(column)] for row in sheet.iter_rows(min_row=2) if row[header.index(column)].value
                  is not None]
        want = {"integer": "n", "number": "n", "boolean": "b", "string": "s", "datetime": "d"}[kind]
        assert all(cell.data_type == want for cell in values), f"specimens.{column} cells are {kind}"


def test_every_column_of_every_table_has_a_type_and_meaning_in_both_dictionaries(exported):
    for folder in exported.values():
        csv = _dictionary(folder)
        sheet = openpyxl.load_workbook(folder / tables.WORKBOOK_FILE)[tables.DICTIONARY_SHEET]
        rows = list(sheet.iter_rows(values_only=True))
        assert list(rows[0]) == list(tables.DICTIONARY_COLUMNS)
        excel = pd.DataFrame(rows[1:], columns=rows[0]).fillna("")
        for name, dictionary in (("csv", csv), ("excel", excel)):
            written = {(p.stem, c) for p in folder.glob("*.csv") if p.name != tables.DICTIONARY_FILE
                       for c in pd.read_csv(p, nrows=0).columns}
            described = set(zip(dictionary["table"], dictionary["column"], strict=True))
            assert described == written, name
            assert (dictionary["type"].isin(tables.TYPES)).all(), name
            blank = dictionary.loc[dictionary["meaning"].str.strip() == "", ["table", "column"]]
            assert blank.empty, f"{name} dictionary: no meaning for {blank.values.tolist()}"
    csv = _dictionary(exported["identified"]).set_index(["table", "column"])
    assert "UTC" in csv.loc[("specimens", "collected_at"), "meaning"]
    for column in MODEL_COLUMNS:
        assert csv.loc[("specimens", column), "meaning"], column


def test_model_columns_mark_the_organoid_and_pdx_specimens_in_every_format(exported):
    folder = exported["deidentified"]
    book = openpyxl.load_workbook(folder / tables.WORKBOOK_FILE)["specimens"]
    rows = list(book.iter_rows(values_only=True))
    readers = {
        "parquet": pd.read_parquet(folder / "specimens.parquet"),
        "csv": pd.read_csv(io.StringIO((folder / "specimens.csv").read_text())),
        "excel": pd.DataFrame(rows[1:], columns=rows[0]),
    }
    for name, frame in readers.items():
        frame = frame.set_index("specimen_code")
        assert set(MODEL_COLUMNS) <= set(frame.columns), name
        pdx, organoid = frame.loc[PDX], frame.loc[ORGANOID]
        assert (pdx["model_code"], pdx["model_kind"], pdx["passage"], int(pdx["passage_number"])) == (
            "RA0004-L06A-PDX1", "pdx", "P4", 4,
        ), name
        assert pdx["host"] == "NSG" and pdx["model_source_code"] == "RA0004-L06A-VC1", name
        assert (organoid["model_kind"], organoid["passage"], int(organoid["passage_number"])) == (
            "organoid", "P5", 5,
        ), name
        assert organoid["model_source_code"] == "RA0004-L04A-VC1" and pd.isna(organoid["host"]), name
        patient = frame.loc["RA0004-L06A-VC1"]
        assert all(pd.isna(patient[c]) for c in MODEL_COLUMNS), f"{name}: the patient's own vial is not a model"
        grown = frame["model_code"].notna()
        assert frame.loc[grown, ["model_kind", "passage", "passage_number", "model_source_code"]].notna().all().all()
