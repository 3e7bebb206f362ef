"""``--suggest-map``: a first mapping file from a collection log's headers and values, which the mapping parser
reads, with the obvious headers mapped, the units read from headers, lesion labels given kinds, and everything it
could not map listed (returned, and as comments in the file)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from openpyxl import Workbook
from typer.testing import CliRunner

from biobank.cli import app
from biobank.imports.mapping import load_mapping
from biobank.imports.suggest_map import guess_columns, header_unit, suggest_map

HEADER = ("Case,Patient,Date of death,Time of death,Fridge,Site,Lesion,Region,Preservation,Time into LN2,"
          "Weight (mg),Box,Position,Tech,Notes,Colour")
ROWS = [
    "RA001,P001,03/11/2026,22:10,23:30,Femur L,M1,A,LN2,02:15,40,LN2-T1/B04,A1,JS,decal EDTA 48 h,blue",
    "RA001,P001,03/11/2026,22:10,23:30,Rib 6 (R),M2,A,viable (DMSO),02:20,35,LN2-T1/B04,A2,JS,,red",
    "RA001,P001,03/11/2026,22:10,23:30,Liver seg 7,P,B,FFPE,02:30,50,RT-1/B01,1,JS,fixed 24 h,",
    "RA002,P002,14/11/2026,08:00,09:00,Blood,,,Whole blood EDTA,10:00,4 mL,LN2-T1/B05,A1,KB,,",
    "RA002,P002,14/11/2026,08:00,09:00,Spleen (normal),,,Fresh (organoid),10:05,20,LN2-T1/B05,A2,KB,,",
    "RA002,P002,14/11/2026,08:00,09:00,Xqzzt blorp,LN,A,Mystery,10:05,20,LN2-T1/B05,A3,KB,,",
]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "log.csv"
    path.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="latin-1")
    return path


def test_the_suggested_map_parses_and_maps_the_obvious_headers(log: Path, tmp_path: Path) -> None:
    text, _ = suggest_map(log)
    data = tomllib.loads(text)
    assert data["columns"] == {
        "Case": "case", "Patient": "donor", "Date of death": "death_date", "Time of death": "death_time",
        "Fridge": "refrigerated_time", "Site": "site", "Lesion": "lesion", "Region": "region",
        "Preservation": "preservation", "Time into LN2": "stabilised_time", "Weight (mg)": "quantity",
        "Box": "box", "Position": "position", "Tech": "collected_by", "Notes": "notes",
    }
    assert data["units"] == {"Weight (mg)": "mg"}
    assert data["values"]["lesion_kind"] == {"LN": "lymph_node", "M1": "metastasis", "M2": "metastasis",
                                             "P": "primary"}
    assert set(data["patterns"]) == {"decalcification", "fixation_hours"}
    assert data["options"]["date_order"] == "DMY"
    out = tmp_path / "map.toml"
    out.write_text(text, encoding="utf-8")
    mapping = load_mapping(out)  # the import's own parser accepts it as written
    assert mapping.header_of("collected_by") == "Tech"


def test_what_it_could_not_map_is_listed_and_commented(log: Path) -> None:
    text, unmapped = suggest_map(log)
    assert unmapped == ["column 'Colour'", "preservation 'Mystery'", "site 'Xqzzt blorp'"]
    assert '# "Colour"' in text and "TODO" in text
    site_line = next(line for line in text.splitlines() if "Xqzzt" in line and "TODO" in line)
    assert site_line.count("(") >= 3  # three candidates with their scores
    assert "# 'Femur L' read as FEMUR, left (score 100)" in text  # what the import will read, as a comment
    assert "'viable (DMSO)' read as viable_cryo, note 'DMSO'" in text


def test_missing_required_fields_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "short.xlsx"
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Autopsy ID", "Organ", "Comments"])
    sheet.append(["RA9", "Kidney R", "ok"])
    book.save(path)
    text, unmapped = suggest_map(path)
    assert tomllib.loads(text)["columns"] == {"Autopsy ID": "case", "Organ": "site", "Comments": "notes"}
    assert "field donor (required)" in unmapped and "field preservation (required)" in unmapped
    assert "field death_date or death_at (required)" in unmapped


@pytest.mark.parametrize(
    ("header", "field"),
    [("DOD", "death_date"), ("TOD", "death_time"), ("Date/time of death", "death_at"), ("Initials", "collected_by"),
     ("Technician", "collected_by"), ("Weight (mg)", "quantity"), ("Volume [mL]", "quantity"),
     ("Into fixative/LN2", "stabilised_time"), ("Body refrigerated", "refrigerated_time"), ("Remarks", "notes")],
)
def test_header_spellings(header: str, field: str) -> None:
    assert guess_columns([header])[header][0] == field


def test_units_in_headers() -> None:
    assert header_unit("Weight (mg)") == "mg" and header_unit("Volume [mL]") == "ml" and header_unit("Site") is None


def test_cli_writes_the_map_and_lists_what_is_unmapped(log: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "map.toml"
    result = runner.invoke(app, ["import", "collection_log", str(log), "--suggest-map", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "not mapped: column 'Colour'" in result.output
    assert tomllib.loads(out.read_text(encoding="utf-8"))["columns"]["Tech"] == "collected_by"
    printed = runner.invoke(app, ["import", "collection_log", str(log), "--suggest-map"])
    assert printed.exit_code == 0 and "[columns]" in printed.output
    wrong = runner.invoke(app, ["import", "specimens", str(log), "--suggest-map"])
    assert wrong.exit_code == 2 and "for collection_log" in wrong.output


def test_the_suggested_map_imports_the_wide_log_as_it_stands(engine, tmp_path: Path) -> None:
    """The issue's promise: --suggest-map, then an import (here a dry run on a small log, both databases)."""
    from sqlmodel import Session

    from biobank.imports.kinds.collection_log import run_collection_log
    from biobank.models import User
    from tests.support.collection_log import write_log

    log = write_log(tmp_path, cases=2)
    text, unmapped = suggest_map(log.path)
    assert unmapped == []
    path = tmp_path / "suggested.toml"
    path.write_text(text, encoding="utf-8")
    with Session(engine) as session:
        user = User(username="tech", role="technician")
        session.add(user)
        session.commit()
        report = run_collection_log(session, actor=user, source=log.path, mapping=load_mapping(path),
                                    dry_run=True, create_containers=True)
        assert report.ok, [e.message for e in report.errors][:5]
        session.rollback()
