"""A lab's own vocabulary: qualifier phrases read as a format plus a note, a synonyms file that extends the built-in
spellings (and is refused naming the key when wrong), and the import coercion using it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from biobank.config import get_settings
from biobank.domain.errors import ValidationError
from biobank.domain.vocab import MaterialType, StorageFormat
from biobank.imports import coerce as c
from biobank.imports.coerce import CellError
from biobank.imports.vocabulary_ext import (
    Qualifier,
    Synonyms,
    SynonymsFileError,
    active_synonyms,
    load_synonyms,
    match_format,
)

F, M = StorageFormat, MaterialType

LAB_FILE = """
[formats]
"FF" = "snap_frozen"
"Dry ice" = "snap_frozen"

[materials]
"Lavender top" = "whole_blood"

[sites]
"Hepatic dome" = "liver"

[qualifiers]
"viable (DMSO 10%)" = { format = "viable_cryo", note = "10% DMSO" }
"Streck tube" = { format = "frozen", material = "whole_blood", note = "Streck" }
"RNAlater overnight" = "rnalater"
"""


@pytest.fixture
def lab_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "synonyms.toml"
    path.write_text(LAB_FILE, encoding="utf-8")
    monkeypatch.setenv("BIOBANK_SYNONYMS_FILE", str(path))
    get_settings.cache_clear()
    yield path
    monkeypatch.delenv("BIOBANK_SYNONYMS_FILE")
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("text", "fmt", "material", "note"),
    [
        ("viable (DMSO)", F.viable_cryo, None, "DMSO"),
        ("Whole blood EDTA", F.frozen, M.whole_blood, "EDTA"),
        ("Fresh (organoid)", F.fresh, None, "for organoid derivation"),
        ("Blood (EDTA)", F.frozen, M.whole_blood, "EDTA"),
        ("Fresh for PDX", F.fresh, None, "for PDX derivation"),
        ("Plasma", F.frozen, M.plasma, None),
        ("LN2", F.snap_frozen, None, None),
        ("snap-frozen", F.snap_frozen, None, None),
        ("ffpe", F.ffpe, None, None),
    ],
)
def test_qualifiers_map_to_a_format_a_material_and_a_note(
    text: str, fmt: StorageFormat, material: MaterialType | None, note: str | None
) -> None:
    found = match_format(text, synonyms=Synonyms())
    assert (found.storage_format, found.material_type, found.note) == (fmt, material, note)
    if text == fmt.value:
        assert found.reading is None  # written as the value: nothing to explain
    else:
        assert found.reading is not None and found.reading.startswith(f"'{text}' read as")


def test_a_format_written_exactly_needs_no_reading() -> None:
    assert match_format("snap_frozen", synonyms=Synonyms()).reading is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Mystery", "closest known"),
        ("Tissue", "material tissue but no storage format"),
        ("FF", "fresh frozen in some labs"),
        ("OCT (organoid)", "write one format"),
        ("", "empty"),
    ],
)
def test_unknown_or_ambiguous_text_is_refused_with_the_closest_values(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        match_format(text, synonyms=Synonyms())
    assert caught.value.field == "preservation"


def test_the_lab_file_extends_the_built_in_spellings(lab_file: Path) -> None:
    synonyms = load_synonyms(lab_file)
    assert synonyms.formats["Dry ice"] is F.snap_frozen and synonyms.sites["Hepatic dome"] == "LIVER"
    assert synonyms.qualifiers["RNAlater overnight"] == Qualifier(F.rnalater)
    assert active_synonyms() is synonyms  # cached per path and modification time
    assert match_format("FF").storage_format is F.snap_frozen  # the lab says what its FF means
    streck = match_format("streck tube")
    assert (streck.storage_format, streck.material_type, streck.note) == (F.frozen, M.whole_blood, "Streck")
    assert match_format("Viable (DMSO 10%)").note == "10% DMSO"
    assert match_format("Lavender top (EDTA)").material_type is M.whole_blood


def test_import_coercion_uses_the_lab_file(lab_file: Path) -> None:
    fmt = c.vocab(StorageFormat)("Dry ice")
    assert fmt.value is F.snap_frozen and "lab's synonyms" in (fmt.note or "")
    assert c.vocab(StorageFormat)("FF").value is F.snap_frozen
    assert c.vocab(MaterialType)("lavender top").value is M.whole_blood


def test_import_coercion_reads_qualified_formats_without_a_file() -> None:
    viable = c.vocab(StorageFormat)("viable (DMSO)")
    assert viable.value is F.viable_cryo and "DMSO" in (viable.note or "")
    with pytest.raises(CellError):
        c.vocab(StorageFormat)("FF")  # still ambiguous without the lab's word
    with pytest.raises(CellError):
        c.vocab(StorageFormat)("Whole blood EDTA")  # names a material: not a format alone


def test_no_setting_means_no_lab_synonyms() -> None:
    assert not active_synonyms()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[formats]\n"Dry ice" = "dry"\n', r'\[formats\."Dry ice"\] .dry. is not one of'),
        ('[colours]\n"x" = "y"\n', r"\[colours\] is not a section"),
        ('[sites]\n"Dome" = "LIVR"\n', r'\[sites\."Dome"\] .LIVR. is not an anatomical-site code: did you mean LIVER'),
        ('[qualifiers]\n"x" = { fmt = "fresh" }\n', r'\[qualifiers\."x"\.fmt\] is not a qualifier key'),
        ('[qualifiers]\n"x" = { note = "n" }\n', r'\[qualifiers\."x"\] needs format'),
        ('[materials]\n"x" = "blood"\n', r'\[materials\."x"\] .blood. is not one of'),
        ("[formats]\n\"a\" = \n", r"not valid TOML .*line 2"),
        ('formats = "x"\n', r"\[formats\] must be a table"),
    ],
)
def test_a_wrong_file_is_refused_naming_the_key_or_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SynonymsFileError, match=message) as caught:
        load_synonyms(path)
    assert "lab.toml" in caught.value.message


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SynonymsFileError, match="cannot be read"):
        load_synonyms(tmp_path / "absent.toml")


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text('[formats]\n"Dry ice" = "snap_frozen"\n', encoding="utf-8")
    assert "Dry ice" in load_synonyms(path).formats
    path.write_text('[formats]\n"Cold box" = "frozen"\n', encoding="utf-8")
    assert list(load_synonyms(path).formats) == ["Cold box"]
