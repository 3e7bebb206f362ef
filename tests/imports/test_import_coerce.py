"""Spreadsheet import, reading and coercion layer: biobank.imports.read and biobank.imports.coerce (no database)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import tracemalloc
from decimal import Decimal
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from biobank.domain.vocab import (
    DecalcificationAgent,
    Laterality,
    LesionKind,
    MaterialType,
    QuantityUnit,
    ReceptorStatus,
    Sex,
    StorageFormat,
)
from biobank.imports import coerce as c
from biobank.imports.coerce import CellError, Coerced, PercentCell, Quantity
from biobank.imports.read import ImportFormatError, SourceRow, iter_rows, normalise_header

LONDON = ZoneInfo("Europe/London")
ZONES = [LONDON, ZoneInfo("America/New_York"), ZoneInfo("Australia/Sydney"), ZoneInfo("Asia/Kolkata"), dt.UTC]
UTC = dt.UTC

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rows_of(data: bytes, filename: str | None = "upload.csv", **kwargs: object) -> list[SourceRow]:
    return list(iter_rows(data, filename=filename, **kwargs))


# ================================================================================================= reading files


def test_utf8_bom_file_reads_clean_headers(tmp_path):
    path = tmp_path / "specimens.csv"
    path.write_bytes(b"\xef\xbb\xbfSpecimen Code,Weight\r\nRA1-SF1,5 mg\r\n")
    rows = iter_rows(path)
    assert rows.encoding == "utf-8-sig"
    assert rows.headers == ("specimen_code", "weight")
    assert list(rows) == [SourceRow(2, {"specimen_code": "RA1-SF1", "weight": "5 mg"})]


def test_plain_utf8_file_reports_utf8(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes("site,note\nfémur,µL\n".encode())
    rows = iter_rows(path)
    assert rows.encoding == "utf-8"
    assert rows.notes == []
    assert next(rows).cells == {"site": "fémur", "note": "µL"}


def test_windows_1252_file_is_decoded_and_reported(tmp_path):
    path = tmp_path / "legacy.csv"
    path.write_bytes("Site;Temp\nFémur;−80 °C\nCrâne;4 °C\n".replace("−", "-").encode("cp1252"))
    rows = iter_rows(path)
    assert rows.encoding == "cp1252"
    assert rows.notes == ["read as Windows-1252 text (not UTF-8)"]
    assert [r.cells["site"] for r in rows] == ["Fémur", "Crâne"]


def test_bytes_undefined_in_windows_1252_fall_back_to_latin1(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"a,b\n\x81x,caf\xe9\n")
    rows = iter_rows(path)
    assert rows.encoding == "latin-1"
    assert next(rows).cells == {"a": "\x81x", "b": "café"}


def test_utf16_excel_unicode_text_is_read(tmp_path):
    path = tmp_path / "export.txt"
    path.write_bytes("Code\tWeight\nA1\t1,5\n".encode("utf-16"))
    rows = iter_rows(path)
    assert (rows.encoding, rows.delimiter) == ("utf-16", "\t")
    assert list(rows) == [SourceRow(2, {"code": "A1", "weight": "1,5"})]


def test_semicolon_csv_with_decimal_commas():
    rows = iter_rows(b"code;weight;date\nA1;1,5;17.07.2023\nA2;12,25;18.07.2023\n", filename="eu.csv")
    assert rows.delimiter == ";"
    assert [r.cells["weight"] for r in rows] == ["1,5", "12,25"]


def test_tab_and_comma_delimiters_are_detected_whatever_the_suffix():
    assert iter_rows(b"a\tb\n1\t2\n", filename="x.csv").delimiter == "\t"
    assert iter_rows(b"a,b\n1,2\n", filename="x.tsv").delimiter == ","
    assert iter_rows(b"a,b\n1,2\n", filename=None).delimiter == ","


def test_excel_sep_line_sets_the_delimiter_and_is_not_a_row():
    rows = iter_rows(b"sep=;\na;b,c\n1;2,5\n", filename="x.csv")
    assert rows.delimiter == ";"
    assert list(rows) == [SourceRow(2, {"a": "1", "b,c": "2,5"})]


def test_comments_and_blank_rows_are_skipped_but_counted():
    data = (
        b"# Specimen template v3\n"
        b'"# storage_format: one of snap_frozen, ffpe, ""oct"""\n'
        b"\n"
        b"Code,Weight\n"
        b"A1,5 mg\n"
        b",\n"
        b"   ,  \n"
        b"\n"
        b"A2,6 mg\n"
        b"#A3,7 mg\n"
    )
    rows = iter_rows(data, filename="t.csv")
    assert rows.header_row == 4
    assert [(r.number, r.cells["code"]) for r in rows] == [(5, "A1"), (9, "A2"), (10, "#A3")]


def test_a_comment_with_an_unbalanced_quote_does_not_swallow_the_header():
    rows = rows_of(b'# write "5 mg, not 5\ncode,weight\nA1,5 mg\n')
    assert rows == [SourceRow(3, {"code": "A1", "weight": "5 mg"})]


def test_a_column_headed_hash_is_a_header_not_a_comment():
    rows = iter_rows(b"# numbered list below\n#,Code\n1,A1\n", filename="x.csv")
    assert (rows.header_row, rows.headers) == (2, ("#", "code"))
    assert list(rows) == [SourceRow(3, {"#": "1", "code": "A1"})]


def test_multiline_quoted_cell_is_one_row():
    rows = rows_of(b'code,note\nA1,"line one\nline two"\nA2,x\n')
    assert [(r.number, r.cells["note"]) for r in rows] == [(2, "line one\nline two"), (3, "x")]


def test_headers_are_normalised():
    assert normalise_header("  Date of Death ") == "date_of_death"
    assert normalise_header("Storage-Format") == "storage_format"
    assert normalise_header("Time  -  Stabilised") == "time_stabilised"
    assert normalise_header("Quantity (mg)") == "quantity_(mg)"
    assert normalise_header(None) == ""


def test_duplicate_headers_are_an_error():
    with pytest.raises(ImportFormatError, match="columns 1 and 3"):
        iter_rows(b"Code,Weight,code\n1,2,3\n", filename="x.csv")


def test_short_rows_get_none_and_unnamed_cells_are_kept():
    rows = rows_of(b"a,,b,,\n1\n1,lost,2,,extra\n")
    assert rows[0].cells == {"a": "1", "b": None}
    assert rows[1].cells == {"a": "1", "b": "2", "column_2": "lost", "column_5": "extra"}


def test_header_labels_keep_the_spelling_for_messages():
    rows = iter_rows(b"Date of Death,PMI (h)\n", filename="x.csv")
    assert rows.header_labels == {"date_of_death": "Date of Death", "pmi_(h)": "PMI (h)"}
    assert list(rows) == []


def test_binary_file_object_is_read_from_its_position_and_left_open():
    upload = io.BytesIO(b"JUNKa,b\n1,2\n")
    upload.seek(4)
    rows = iter_rows(upload, filename="upload.csv")
    assert list(rows) == [SourceRow(2, {"a": "1", "b": "2"})]
    assert not upload.closed


def test_unseekable_upload_is_spooled():
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            chunk = self._data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    assert rows_of(Pipe(b"a\n1\n"), filename=None) == [SourceRow(2, {"a": "1"})]


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"", "x.csv", "empty"),
        (bytes(range(256)) * 4, "x.csv", "binary"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None, "binary"),
        (b"PK\x03\x04 definitely not a zip", "x.xlsx", "not a readable Excel workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 ole", "x.xls", ".xls"),
        (b"a,b\n1,2\n", "x.xlsx", "not an Excel workbook"),
        (b"a,b\n", "x.ods", "OpenDocument"),
        (b"%PDF-1.4", "x.pdf", "unsupported file type"),
        (b"# only a comment\n\n,,\n", "x.csv", "no header"),
        (b"\xef\xbb\xbfa,b\n\xff\xfe\n", "x.csv", "invalid bytes"),
        (b"\x01\x02\x03\x04\x05\x06 hello", "x.csv", "binary"),
    ],
)
def test_unreadable_files_raise_import_format_error(data, filename, message):
    with pytest.raises(ImportFormatError, match=message):
        rows_of(data, filename=filename)


def test_missing_path_raises_import_format_error(tmp_path):
    with pytest.raises(ImportFormatError, match="cannot open"):
        iter_rows(tmp_path / "nope.csv")


def test_very_long_line_is_refused_not_buffered():
    with pytest.raises(ImportFormatError, match="longer than"):
        rows_of(b"a,b\n" + b"x" * (1 << 20) + b"\n")


def test_large_csv_streams_in_bounded_memory(tmp_path):
    path = tmp_path / "big.csv"
    line = b"RA0001-L01A-SF1,snap_frozen,12.5 mg,17/07/2023 14:30\n"
    with path.open("wb") as handle:
        handle.write(b"code,format,quantity,collected\n")
        for _ in range(160):
            handle.write(line * 1000)  # ~8.5 MB
    tracemalloc.start()
    try:
        rows = iter_rows(path)
        taken = [next(rows) for _ in range(1000)]
        rows.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert taken[-1].number == 1001
    assert peak < 4 * 1024 * 1024


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.binary(max_size=200).map(lambda b: b"PK\x03\x04" + b),
        st.binary(max_size=200).map(lambda b: b"\xef\xbb\xbf" + b),
        st.binary(max_size=200).map(lambda b: b"\xff\xfe" + b),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    filename=st.sampled_from([None, "x.csv", "x.tsv", "x.txt", "x.xlsx", "x.xls", "x"]),
)
def test_arbitrary_bytes_raise_only_import_format_error(data, filename):
    try:
        for row in iter_rows(data, filename=filename):
            assert isinstance(row.number, int)
            assert isinstance(row.cells, dict)
    except ImportFormatError as exc:
        assert exc.message


_CELL_TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\x85") | st.just("\n"),
    max_size=12,
)
_CP1252_TEXT = st.text(st.sampled_from("abcXYZ019 ,;\t\"'#-.éüöäßàçÉ\n"), max_size=12)


@SLOW
@given(
    body=st.data(),
    delimiter=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
)
def test_written_csv_reads_back_cell_for_cell(body, delimiter, encoding):
    cells = _CP1252_TEXT if encoding == "cp1252" else _CELL_TEXT
    table = body.draw(st.lists(st.lists(cells, min_size=3, max_size=3), max_size=8))
    table = [row for row in table if any(cell.strip() for cell in row)]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["Code", "Storage Format", "Weight"])
    writer.writerows(table)
    rows = rows_of(buffer.getvalue().encode(encoding), filename="x.csv")
    assert [r.number for r in rows] == list(range(2, len(table) + 2))
    assert [list(r.cells.values()) for r in rows] == table


def _workbook_bytes() -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Specimens"
    ws.append(["# Specimen template v3: one row per tube"])
    ws.append([])
    ws.append(["Specimen Code", "Collected", "Weight (mg)", "Cellularity", "Time", "Count", None, "Flag"])
    ws.append(["RA1-L01A-SF1", dt.datetime(2023, 7, 17, 14, 30), 12.5, 0.45, dt.time(9, 15), 3, None, True])
    ws.append([None] * 8)
    ws.append(["RA1-L01A-SF2", dt.date(2023, 7, 18), 45123, 0.3, None, 1e6, "stray", False])
    ws["D4"].number_format = "0%"
    ws["D6"].number_format = "0.0%"
    wb.create_sheet("Boxes").append(["Box", "Rows"])
    wb["Boxes"].append(["B1", 9])
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def test_xlsx_rows_keep_excel_types(tmp_path):
    path = tmp_path / "lab.xlsx"
    path.write_bytes(_workbook_bytes())
    rows = iter_rows(path)
    assert (rows.format, rows.sheet, rows.header_row, rows.encoding) == ("xlsx", "Specimens", 3, None)
    assert rows.headers == (
        "specimen_code",
        "collected",
        "weight_(mg)",
        "cellularity",
        "time",
        "count",
        "flag",
    )
    first, second = list(rows)
    assert first.number == 4
    assert first.cells["collected"] == dt.datetime(2023, 7, 17, 14, 30)
    assert first.cells["weight_(mg)"] == 12.5
    assert isinstance(first.cells["cellularity"], PercentCell)
    assert first.cells["time"] == dt.time(9, 15)
    assert first.cells["flag"] is True
    assert second.number == 6
    assert second.cells["column_7"] == "stray"
    assert second.cells["weight_(mg)"] == 45123
    assert not isinstance(second.cells["weight_(mg)"], PercentCell)


def test_xlsx_cells_coerce_to_the_values_shown_in_excel():
    first, second = rows_of(_workbook_bytes(), filename="lab.xlsx")
    assert c.percent(first.cells["cellularity"]) == Coerced(45.0)
    assert c.percent(second.cells["cellularity"]) == Coerced(30.0)
    assert c.date_time(first.cells["collected"], tz=LONDON).value == dt.datetime(
        2023, 7, 17, 13, 30, tzinfo=UTC
    )
    assert c.calendar_date(second.cells["collected"]).value == dt.date(2023, 7, 18)
    assert c.calendar_date(second.cells["weight_(mg)"]) == Coerced(
        dt.date(2023, 7, 16), "Excel serial 45123 read as 2023-07-16"
    )
    assert c.integer(second.cells["count"]).value == 1_000_000
    assert c.time_of_day(first.cells["time"]).value == dt.time(9, 15)
    assert c.boolean(second.cells["flag"]).value is False


def test_xlsx_sheet_by_name_and_unknown_sheet():
    data = _workbook_bytes()
    assert rows_of(data, filename="lab.xlsx", sheet="Boxes") == [SourceRow(2, {"box": "B1", "rows": 9})]
    with pytest.raises(ImportFormatError, match="'Specimens', 'Boxes'"):
        rows_of(data, filename="lab.xlsx", sheet="Freezers")


def test_workbook_named_csv_is_read_as_a_workbook():
    rows = iter_rows(_workbook_bytes(), filename="lab.csv")
    assert rows.format == "xlsx"
    assert "read as .xlsx" in rows.notes[0]


def test_sheet_with_only_comments_has_no_header():
    wb = openpyxl.Workbook()
    wb.active.append(["# nothing yet"])
    buffer = io.BytesIO()
    wb.save(buffer)
    with pytest.raises(ImportFormatError, match="no header row"):
        rows_of(buffer.getvalue(), filename="x.xlsx")


# ================================================================================================ the coercers

ANY_RAW = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(
        ["NA", "n/a", "-", "null", "#N/A", "#DIV/0!", "1,500", "03/04/2024", "5 mg", "-80", "x", "45%"]
    ),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.decimals(),
    st.datetimes(timezones=st.none() | st.just(UTC) | st.sampled_from(ZONES)),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.binary(max_size=10),
    st.builds(PercentCell, st.floats()),
)

ALL_COERCERS = [
    c.text,
    lambda raw: c.text(raw, collapse_whitespace=True, max_length=10),
    c.integer,
    lambda raw: c.integer(raw, minimum=0, maximum=100),
    c.decimal,
    c.percent,
    c.boolean,
    c.quantity,
    lambda raw: c.quantity(raw, default_unit="ml"),
    lambda raw: c.quantity(raw, default_unit=raw),
    c.calendar_date,
    lambda raw: c.calendar_date(raw, dayfirst=False),
    lambda raw: c.date_time(raw, tz=LONDON),
    lambda raw: c.date_time(raw, tz=ZoneInfo("Pacific/Kiritimati"), dayfirst=False),
    c.time_of_day,
    *(c.vocab(enum_cls) for enum_cls in c.SYNONYMS),
]


@settings(max_examples=250, deadline=None)
@given(raw=ANY_RAW)
def test_coercers_raise_nothing_but_cell_error(raw):
    for coerce in ALL_COERCERS:
        try:
            result = coerce(raw)
        except CellError as exc:
            assert exc.expected
            assert exc.message
            assert str(exc) == exc.message
        else:
            assert isinstance(result, Coerced)
            assert result.note is None or isinstance(result.note, str)


@FAST
@given(day=st.dates(), time=st.times(), tz=st.sampled_from(ZONES))
def test_combine_raises_nothing_but_cell_error(day, time, tz):
    try:
        value = c.combine(day, time, tz)
    except CellError:
        return
    assert value.tzinfo is UTC


@pytest.mark.parametrize(
    "raw", [None, "", "   ", "NA", "na", "N/A", "n/a", "-", "null", "NULL", "none", "#N/A", "\u00a0"]
)
def test_empty_tokens_are_none_for_every_coercer(raw):
    for coerce in ALL_COERCERS:
        if raw == "-" and coerce is c.vocab(ReceptorStatus):
            continue  # a dash in a receptor column may mean negative: see the ambiguity test
        assert coerce(raw) == Coerced(None)
    assert c.is_empty(raw)


def test_excel_errors_are_cell_errors():
    with pytest.raises(CellError, match="formula"):
        c.decimal("#DIV/0!")


# ----------------------------------------------------------------------------------------------------- text


def test_text_trims_and_notes():
    assert c.text("  RA-0001 ") == Coerced("RA-0001", "trimmed spaces")
    assert c.text("RA-0001") == Coerced("RA-0001")
    assert c.text("a  b\n c") == Coerced("a  b\n c")
    assert c.text(" a  b\n c", collapse_whitespace=True) == Coerced(
        "a b c", "trimmed spaces; collapsed spaces"
    )


def test_text_from_numbers_and_dates_is_noted():
    assert c.text(1001.0) == Coerced("1001", "number read as text '1001'")
    assert c.text(dt.date(2023, 7, 17)).value == "2023-07-17"


def test_text_refuses_control_characters_and_overlong_values():
    with pytest.raises(CellError, match="control"):
        c.text("a\x00b")
    with pytest.raises(CellError, match="longer than 3"):
        c.text("abcd", max_length=3)


@FAST
@given(raw=st.text())
def test_text_is_trimmed_or_refused(raw):
    try:
        result = c.text(raw)
    except CellError:
        return
    assert result.value is None or (result.value == result.value.strip() and result.value in raw)


# -------------------------------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("raw", "value", "noted"),
    [
        ("12", 12.0, False),
        (" -3.5 ", -3.5, False),
        ("+2", 2.0, False),
        ("−2", -2.0, False),
        (".5", 0.5, False),
        ("1e6", 1e6, False),
        ("2.5E-3", 0.0025, False),
        ("1,5", 1.5, True),
        ("0,500", 0.5, True),
        (",5", 0.5, True),
        ("12,25", 12.25, True),
        ("1,234,567", 1234567.0, True),
        ("1,234.5", 1234.5, True),
        ("1.234.567", 1234567.0, True),
        ("1.234,5", 1234.5, True),
        ("1 234", 1234.0, True),
        ("1\u00a0234,5", 1234.5, True),
        ("1'234", 1234.0, True),
        (7, 7.0, False),
        (7.25, 7.25, False),
        (Decimal("0.1"), 0.1, False),
    ],
)
def test_decimal_accepts_local_spellings(raw, value, noted):
    result = c.decimal(raw)
    assert result.value == value
    assert (result.note is not None) == noted


@pytest.mark.parametrize("raw", ["1,500", "12,345", "-1,500"])
def test_one_comma_before_three_digits_is_ambiguous(raw):
    with pytest.raises(CellError, match="ambiguous"):
        c.decimal(raw)


@pytest.mark.parametrize(
    "raw", ["abc", "1.2.3,4,5", "inf", "1e400", "five", "<0.1", "~5", True, "1,5e3", "١٢"]
)
def test_decimal_rejects_non_numbers(raw):
    with pytest.raises(CellError):
        c.decimal(raw)


def test_integer_accepts_whole_floats_only():
    assert c.integer("12.0") == Coerced(12)
    assert c.integer(12.0) == Coerced(12)
    assert c.integer("1,234,567").value == 1234567
    with pytest.raises(CellError, match="whole number"):
        c.integer("12.5")
    with pytest.raises(CellError, match="maximum"):
        c.integer("5", maximum=4)
    with pytest.raises(CellError, match="minimum"):
        c.integer(-1, minimum=0)


def test_percent():
    assert c.percent("45%") == Coerced(45.0)
    assert c.percent(" 45 % ") == Coerced(45.0)
    assert c.percent("45") == Coerced(45.0)
    assert c.percent("12,5%").value == 12.5
    assert c.percent(PercentCell(0.45)) == Coerced(45.0)
    assert c.percent(PercentCell(0.125)).value == 12.5
    assert c.percent("0.45").note == "'0.45' read as 0.45 % (not 45 %)"
    for bad in ["101", "-1%", "%", "abc%"]:
        with pytest.raises(CellError):
            c.percent(bad)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("yes", True),
        ("Y", True),
        ("TRUE", True),
        ("1", True),
        ("x", True),
        ("X", True),
        (1, True),
        (True, True),
        ("no", False),
        ("n", False),
        ("False", False),
        ("0", False),
        (0.0, False),
    ],
)
def test_boolean(raw, value):
    assert c.boolean(raw).value is value


def test_boolean_notes_ticks_and_rejects_others():
    assert c.boolean("x").note == "'x' read as yes"
    for bad in ["maybe", 2, "2"]:
        with pytest.raises(CellError, match="yes/no"):
            c.boolean(bad)


# ------------------------------------------------------------------------------------------------ vocabularies

SYNONYM_CASES = [
    (enum_cls, value, spelling)
    for enum_cls, groups in c.SYNONYM_GROUPS.items()
    for value, spellings in groups.items()
    for spelling in spellings
]


@pytest.mark.parametrize(("enum_cls", "value", "spelling"), SYNONYM_CASES)
def test_every_synonym_reads_as_its_value_in_any_case(enum_cls, value, spelling):
    coerce = c.vocab(enum_cls)
    for variant in {
        spelling,
        spelling.upper(),
        spelling.lower(),
        f"  {spelling} ",
        spelling.replace(" ", "_"),
    }:
        result = coerce(variant)
        assert result.value == enum_cls(value)
        assert result.note == f"'{variant.strip()}' read as {value}" or variant.strip() == value


@pytest.mark.parametrize("enum_cls", list(c.SYNONYMS))
def test_every_value_reads_as_itself_without_a_note(enum_cls):
    coerce = c.vocab(enum_cls)
    for member in enum_cls:
        assert coerce(member.value) == Coerced(member)
        assert coerce(member.value.replace("_", " ").title()).value == member
        assert coerce(member.value.replace("_", "-").upper()).value == member


@pytest.mark.parametrize(
    ("enum_cls", "raw", "value"),
    [
        (StorageFormat, "snap frozen", "snap_frozen"),
        (StorageFormat, "Snap-Frozen", "snap_frozen"),
        (StorageFormat, "LN2", "snap_frozen"),
        (StorageFormat, "flash frozen", "snap_frozen"),
        (StorageFormat, "fresh frozen", "snap_frozen"),
        (StorageFormat, "FFPE", "ffpe"),
        (StorageFormat, "formalin-fixed paraffin-embedded", "ffpe"),
        (StorageFormat, "Paraffin", "ffpe"),
        (StorageFormat, "OCT", "oct"),
        (StorageFormat, "O.C.T.", "oct"),
        (StorageFormat, "RNA later", "rnalater"),
        (StorageFormat, "RNAlater", "rnalater"),
        (StorageFormat, "viable", "viable_cryo"),
        (StorageFormat, "DMSO", "viable_cryo"),
        (StorageFormat, "cryopreserved", "viable_cryo"),
        (StorageFormat, "-80", "frozen"),
        (StorageFormat, -80, "frozen"),
        (StorageFormat, "frozen", "frozen"),
        (StorageFormat, "SF", "snap_frozen"),
        (StorageFormat, "VC", "viable_cryo"),
        (Sex, "M", "male"),
        (Sex, "f", "female"),
        (Sex, "Male", "male"),
        (Sex, "FEMALE", "female"),
        (Sex, "XX", "female"),
        (Sex, "XY", "male"),
        (MaterialType, "DNA", "dna"),
        (MaterialType, "gDNA", "dna"),
        (MaterialType, "RNA", "rna"),
        (MaterialType, "blood", "whole_blood"),
        (MaterialType, "Whole Blood", "whole_blood"),
        (MaterialType, "plasma", "plasma"),
        (MaterialType, "Buffy coat", "buffy_coat"),
        (MaterialType, "marrow", "bone_marrow"),
        (MaterialType, "Bone marrow aspirate", "bone_marrow"),
        (MaterialType, "slide", "section"),
        (MaterialType, "Section", "section"),
        (LesionKind, "met", "metastasis"),
        (LesionKind, "Mets", "metastasis"),
        (LesionKind, "metastatic", "metastasis"),
        (LesionKind, "Primary tumour", "primary"),
        (LesionKind, "LN", "lymph_node"),
        (LesionKind, "node", "lymph_node"),
        (DecalcificationAgent, "EDTA", "edta"),
        (DecalcificationAgent, "formic", "formic_acid"),
        (DecalcificationAgent, "HCl", "hydrochloric_acid"),
        (DecalcificationAgent, "nitric", "nitric_acid"),
        (QuantityUnit, "µL", "ul"),
        (QuantityUnit, "uL", "ul"),
        (QuantityUnit, "MG", "mg"),
        (QuantityUnit, "slides", "sections"),
        (ReceptorStatus, "+", "positive"),
        (ReceptorStatus, "−", "negative"),
        (ReceptorStatus, "pos", "positive"),
        (ReceptorStatus, "neg", "negative"),
        (ReceptorStatus, "Neg", "negative"),
        (Laterality, "L", "left"),
        (Laterality, "r", "right"),
        (Laterality, "Left", "left"),
        (Laterality, "bilateral", "bilateral"),
        (Laterality, "both", "bilateral"),
    ],
)
def test_spellings_named_in_the_import_brief(enum_cls, raw, value):
    assert c.vocab(enum_cls)(raw).value == enum_cls(value)


def test_vocab_note_says_how_the_value_was_read():
    assert c.vocab(StorageFormat)("Snap-Frozen") == Coerced(
        StorageFormat.snap_frozen, "'Snap-Frozen' read as snap_frozen"
    )


def test_unknown_vocab_value_lists_the_allowed_values():
    with pytest.raises(CellError) as caught:
        c.vocab(StorageFormat)("frozen at -20")
    assert "fresh, snap_frozen, oct, ffpe, rnalater, viable_cryo, frozen" in caught.value.message
    assert caught.value.expected.startswith("one of fresh")
    assert "storage format" in caught.value.message


@pytest.mark.parametrize(
    ("enum_cls", "raw"),
    [
        (StorageFormat, "FF"),
        (StorageFormat, "ff"),
        (StorageFormat, "cryo"),
        (ReceptorStatus, "-"),
        (ReceptorStatus, " - "),
    ],
)
def test_ambiguous_spellings_are_errors_not_guesses(enum_cls, raw):
    with pytest.raises(CellError, match=r"may mean|means"):
        c.vocab(enum_cls)(raw)


def test_lab_synonyms_extend_and_override_the_table():
    coerce = c.vocab(StorageFormat, synonyms={"Kryo": "viable_cryo", "LN2": StorageFormat.frozen})
    assert coerce("kryo").value == StorageFormat.viable_cryo
    assert coerce("LN2").value == StorageFormat.frozen
    assert c.vocab(StorageFormat)("LN2").value == StorageFormat.snap_frozen


def test_synonym_tables_do_not_clash():
    for enum_cls, table in c.SYNONYMS.items():
        keys: dict[str, object] = {}
        for spelling, member in table.items():
            assert isinstance(member, enum_cls)
            key = c.vocab_key(spelling)
            assert keys.setdefault(key, member) == member, spelling
            if key in {c.vocab_key(m.value) for m in enum_cls}:
                assert key == c.vocab_key(member.value), spelling
        assert not set(map(c.vocab_key, c.AMBIGUOUS.get(enum_cls, {}))) & set(keys)


@pytest.mark.parametrize(
    "coerce",
    [c.decimal, c.quantity, c.calendar_date, c.time_of_day, lambda raw: c.date_time(raw, tz=LONDON)],
)
def test_huge_garbage_cells_fail_fast(coerce):
    with pytest.raises(CellError, match=r"too long|not a quantity"):
        coerce("1" * 100_000 + "x")


# ---------------------------------------------------------------------------------------------------- quantity


@pytest.mark.parametrize(
    ("raw", "value", "unit", "note"),
    [
        ("5 mg", 5.0, "mg", None),
        ("5mg", 5.0, "mg", None),
        ("200 ul", 200.0, "ul", None),
        ("200 µL", 200.0, "ul", None),
        ("200 μl", 200.0, "ul", None),
        ("200 uL", 200.0, "ul", None),
        ("0.2 ml", 200.0, "ul", "'0.2 ml' read as 200 ul"),
        ("0,2 mL", 200.0, "ul", "'0,2' read as 0.2 (decimal comma); '0,2 mL' read as 200 ul"),
        ("1.5 g", 1500.0, "mg", "'1.5 g' read as 1500 mg"),
        ("3 sections", 3.0, "sections", None),
        ("3 slides", 3.0, "sections", "'3 slides' read as 3 sections"),
        ("2 blocks", 2.0, "blocks", None),
        ("1e6 cells", 1e6, "cells", None),
        ("2.5 x 10^6 cells", 2.5e6, "cells", None),
        ("2×10^6 cells", 2e6, "cells", None),
        ("50 ng", 50.0, "ng", None),
        ("1 µg", 1000.0, "ng", "'1 µg' read as 1000 ng"),
        ("0 mg", 0.0, "mg", None),
    ],
)
def test_quantity_spellings(raw, value, unit, note):
    assert c.quantity(raw) == Coerced(Quantity(value, QuantityUnit(unit)), note)


def test_quantity_takes_the_unit_from_another_column():
    assert c.quantity("5", default_unit=QuantityUnit.mg).value == Quantity(5.0, QuantityUnit.mg)
    assert c.quantity(0.2, default_unit="mL") == Coerced(
        Quantity(200.0, QuantityUnit.ul), "'0.2 mL' read as 200 ul"
    )
    assert c.quantity("200 ul", default_unit="ml").value == Quantity(200.0, QuantityUnit.ul)
    with pytest.raises(CellError, match="no unit"):
        c.quantity("5", default_unit="")
    with pytest.raises(CellError, match="unit column says"):
        c.quantity("5 mg", default_unit="ul")
    with pytest.raises(CellError, match="unit in the unit column"):
        c.quantity("5", default_unit="spoons")


@pytest.mark.parametrize("raw", ["-5 mg", "−5 mg", -1, "-0.2 ml"])
def test_negative_quantities_are_errors(raw):
    with pytest.raises(CellError, match="negative"):
        c.quantity(raw, default_unit="mg")


@pytest.mark.parametrize("raw", ["5", 5, "mg", "5 spoons", "5 mg 3", "five mg"])
def test_quantity_needs_a_number_and_a_known_unit(raw):
    with pytest.raises(CellError):
        c.quantity(raw)


def test_quantity_can_be_restricted_to_some_units():
    assert c.quantity("5 ng", units={QuantityUnit.ng}).value == Quantity(5.0, QuantityUnit.ng)
    with pytest.raises(CellError, match="allowed here: ng"):
        c.quantity("5 mg", units={QuantityUnit.ng})


@FAST
@given(
    amount=st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False),
    spelling=st.sampled_from(sorted({*c.UNIT_SPELLINGS, "µL", "uL", "mL", "UL", "Mg", "µg", "μg", "Cells"})),
    separator=st.sampled_from(["", " ", "  ", "\u00a0"]),
    decimal_comma=st.booleans(),
)
def test_formatted_quantity_parses_back(amount, spelling, separator, decimal_comma):
    number = format(amount, "f")
    if decimal_comma and "." in number and len(number.split(".")[1]) != 3:
        number = number.replace(".", ",")
    unit, factor = c.UNIT_SPELLINGS[c._unit_key(spelling)]
    result = c.quantity(f"{number}{separator}{spelling}")
    assert result.value == Quantity(float(amount * factor), unit)
    assert (result.note is not None) == (
        factor != 1 or "," in number or c._unit_key(spelling) in c._RENAMED_UNITS
    )


# ----------------------------------------------------------------------------------------------- dates and times


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("2024-03-17", dt.date(2024, 3, 17)),
        ("20240317", dt.date(2024, 3, 17)),
        ("17/03/2024", dt.date(2024, 3, 17)),
        ("17.03.2024", dt.date(2024, 3, 17)),
        ("17-03-2024", dt.date(2024, 3, 17)),
        ("7/3/2024", dt.date(2024, 3, 7)),
        ("2024/03/17", dt.date(2024, 3, 17)),
        ("2024.3.7", dt.date(2024, 3, 7)),
        ("17 Mar 2024", dt.date(2024, 3, 17)),
        ("17-Mar-2024", dt.date(2024, 3, 17)),
        ("17 March 2024", dt.date(2024, 3, 17)),
        ("1st Sept 2024", dt.date(2024, 9, 1)),
        ("March 17, 2024", dt.date(2024, 3, 17)),
        ("17/03/2024 14:30", dt.date(2024, 3, 17)),
        (dt.datetime(2024, 3, 17), dt.date(2024, 3, 17)),
        (dt.date(2024, 3, 17), dt.date(2024, 3, 17)),
        (45368, dt.date(2024, 3, 17)),
        ("45368", dt.date(2024, 3, 17)),
    ],
)
def test_calendar_date_formats(raw, value):
    assert c.calendar_date(raw).value == value


def test_ambiguous_day_month_is_read_day_first_and_noted():
    assert c.calendar_date("03/04/2024") == Coerced(
        dt.date(2024, 4, 3), "'03/04/2024' read day-first as 2024-04-03"
    )
    assert c.calendar_date("03/04/2024", dayfirst=False) == Coerced(
        dt.date(2024, 3, 4), "'03/04/2024' read month-first as 2024-03-04"
    )
    assert c.calendar_date("13/04/2024") == Coerced(dt.date(2024, 4, 13))
    assert c.calendar_date("04/04/2024") == Coerced(dt.date(2024, 4, 4))


def test_month_first_value_in_a_day_first_file_is_an_error():
    with pytest.raises(CellError, match=r"no month 13.*month-first"):
        c.calendar_date("04/13/2024")
    assert c.calendar_date("04/13/2024", dayfirst=False).value == dt.date(2024, 4, 13)


def test_excel_serial_date_is_noted():
    assert c.calendar_date(45123) == Coerced(dt.date(2023, 7, 16), "Excel serial 45123 read as 2023-07-16")
    assert c.calendar_date(45123.75).value == dt.date(2023, 7, 16)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("2019", "year alone"),
        (2019, "year alone"),
        (12, "Excel serial"),
        ("03/04/24", "four digits"),
        ("31/02/2024", "not a valid date"),
        ("2024-02-30", "not a valid date"),
        ("17 Mrz 2024", "not an English month"),
        ("next tuesday", "not a date"),
        ("17 Mar", "not a date"),
        ("Mar 2024", "not a date"),
        ("2024-03", "not a date"),
        ("2024-W11-1", "not a date"),
        (True, "not a date"),
        (dt.time(9, 0), "not a date"),
    ],
)
def test_calendar_date_refuses_to_guess(raw, message):
    with pytest.raises(CellError, match=message):
        c.calendar_date(raw)


def test_date_time_localises_in_the_lab_zone():
    summer = c.date_time("17/07/2023 14:30", tz=LONDON)
    assert summer == Coerced(dt.datetime(2023, 7, 17, 13, 30, tzinfo=UTC))
    winter = c.date_time("2023-01-17 14:30", tz=LONDON)
    assert winter.value == dt.datetime(2023, 1, 17, 14, 30, tzinfo=UTC)
    assert c.date_time(dt.datetime(2023, 7, 17, 14, 30), tz=LONDON).value == summer.value


def test_explicit_offset_wins_over_the_lab_zone():
    result = c.date_time("2023-07-17T14:30+02:00", tz=LONDON)
    assert result.value == dt.datetime(2023, 7, 17, 12, 30, tzinfo=UTC)
    assert result.note == "offset +02:00 in the cell used, not Europe/London (+01:00)"
    assert c.date_time("2023-07-17T13:30Z", tz=LONDON).value == dt.datetime(2023, 7, 17, 13, 30, tzinfo=UTC)
    assert c.date_time("2023-07-17T14:30+01:00", tz=LONDON).note is None
    aware = dt.datetime(2023, 7, 17, 14, 30, tzinfo=ZoneInfo("America/New_York"))
    assert c.date_time(aware, tz=LONDON).value == dt.datetime(2023, 7, 17, 18, 30, tzinfo=UTC)


def test_excel_serial_with_fraction_is_a_time_of_day():
    result = c.date_time(45123.75, tz=LONDON)
    assert result.value == dt.datetime(2023, 7, 16, 17, 0, tzinfo=UTC)
    assert result.note == "Excel serial 45123.75 read as 2023-07-16 18:00:00"


def test_daylight_saving_gaps_and_overlaps_are_errors():
    with pytest.raises(CellError, match="happens twice"):
        c.date_time("2024-10-27 01:30", tz=LONDON)
    with pytest.raises(CellError, match="does not exist"):
        c.date_time("31/03/2024 01:30", tz=LONDON)
    assert c.date_time("2024-10-27T01:30+01:00", tz=LONDON).value == dt.datetime(
        2024, 10, 27, 0, 30, tzinfo=UTC
    )
    with pytest.raises(CellError, match="happens twice"):
        c.combine(dt.date(2024, 10, 27), dt.time(1, 30), LONDON)


@pytest.mark.parametrize("raw", ["17/07/2023", dt.date(2023, 7, 17), "14:30", dt.time(14, 30), "yesterday"])
def test_date_time_needs_both_date_and_time(raw):
    with pytest.raises(CellError):
        c.date_time(raw, tz=LONDON)


@pytest.mark.parametrize(
    ("raw", "value", "noted"),
    [
        ("14:30", dt.time(14, 30), False),
        ("9:05", dt.time(9, 5), False),
        ("14:30:15", dt.time(14, 30, 15), False),
        ("2:30 PM", dt.time(14, 30), False),
        ("12:10 am", dt.time(0, 10), False),
        ("1430", dt.time(14, 30), True),
        ("0315", dt.time(3, 15), True),
        (dt.time(9, 15), dt.time(9, 15), False),
        (dt.timedelta(hours=9, minutes=15), dt.time(9, 15), False),
        (0.5, dt.time(12, 0), True),
    ],
)
def test_time_of_day(raw, value, noted):
    result = c.time_of_day(raw)
    assert result.value == value
    assert (result.note is not None) == noted


@pytest.mark.parametrize("raw", ["24:00", "14:60", "13:00 pm", "2460", "noon", 14, 1.5])
def test_time_of_day_rejects_impossible_times(raw):
    with pytest.raises(CellError):
        c.time_of_day(raw)


def test_combine_date_and_time_columns():
    day = c.calendar_date("17/07/2023").value
    time = c.time_of_day("14:30").value
    assert c.combine(day, time, LONDON) == dt.datetime(2023, 7, 17, 13, 30, tzinfo=UTC)


_MONTH_ABBR = ["", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_MONTH_NAME = ["", "January", "February", "March", "April", "May", "June", "July", "August", "September"]
_MONTH_NAME += ["October", "November", "December"]


def _spellings(local: dt.datetime, aware: dt.datetime) -> list[tuple[object, bool]]:
    """(raw cell, dayfirst) for every supported way of writing ``local`` (a naive wall time)."""
    t = local.strftime("%H:%M:%S")
    hour12 = (local.hour % 12) or 12
    ampm = "PM" if local.hour >= 12 else "AM"
    serial = (local - c.EXCEL_EPOCH) / dt.timedelta(days=1)
    return [
        (local.strftime("%Y-%m-%d ") + t, True),
        (local.strftime("%Y-%m-%dT") + t, True),
        (aware.isoformat(), True),
        (aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), True),
        (local.strftime("%d/%m/%Y ") + t, True),
        (local.strftime("%d.%m.%Y ") + t, True),
        (local.strftime("%d-%m-%Y ") + t, True),
        (local.strftime("%m/%d/%Y ") + t, False),
        (local.strftime("%Y/%m/%d ") + t, True),
        (f"{local.day} {_MONTH_ABBR[local.month]} {local.year} {t}", True),
        (f"{local.day}-{_MONTH_ABBR[local.month]}-{local.year} {t}", True),
        (f"{_MONTH_NAME[local.month]} {local.day}, {local.year} {t}", True),
        (local.strftime("%d/%m/%Y ") + f"{hour12}:{local:%M:%S} {ampm}", True),
        (serial, True),
        (repr(serial), True),
        (local, True),
        (aware, True),
    ]


@SLOW
@given(
    local=st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(2100, 12, 31)).map(
        lambda d: d.replace(microsecond=0)
    ),
    tz=st.sampled_from(ZONES),
)
def test_formatted_datetime_parses_back_to_the_same_instant(local, tz):
    from dateutil.tz import datetime_ambiguous, datetime_exists

    assume(datetime_exists(local, tz) and not datetime_ambiguous(local, tz))
    aware = local.replace(tzinfo=tz)
    expected = aware.astimezone(UTC)
    for raw, dayfirst in _spellings(local, aware):
        result = c.date_time(raw, tz=tz, dayfirst=dayfirst)
        assert result.value == expected, raw
        assert result.value.tzinfo is UTC


@FAST
@given(day=st.dates(min_value=dt.date(1910, 1, 1), max_value=dt.date(2200, 12, 31)))
def test_formatted_date_parses_back(day):
    serial = (day - c.EXCEL_EPOCH.date()).days
    spellings = [
        (day.isoformat(), True),
        (day.strftime("%d/%m/%Y"), True),
        (day.strftime("%d.%m.%Y"), True),
        (day.strftime("%m/%d/%Y"), False),
        (day.strftime("%Y/%m/%d"), True),
        (f"{day.day} {_MONTH_ABBR[day.month]} {day.year}", True),
        (f"{_MONTH_NAME[day.month]} {day.day}, {day.year}", True),
        (serial, True),
        (str(serial), True),
        (float(serial), True),
    ]
    for raw, dayfirst in spellings:
        assert c.calendar_date(raw, dayfirst=dayfirst).value == day, raw
