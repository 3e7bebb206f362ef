"""Stream the rows of a lab spreadsheet (CSV, TSV, TXT or .xlsx) as raw cells keyed by normalised header.

Nothing is coerced here (see :mod:`biobank.imports.coerce`): CSV cells are ``str``; Excel cells are what openpyxl
returns (``str``, ``int``, ``float``, ``bool``, ``datetime``, ``time``, ``timedelta`` or ``None``), except that a
number shown with a percent format arrives as :class:`~biobank.imports.coerce.PercentCell` (Excel stores 45 % as
0.45). Formulas give their cached value (``None`` when the file was never recalculated by Excel).

Rows are numbered as the spreadsheet shows them: the header is row 1 unless comment lines (first non-blank cell
starting with ``#``) or blank rows come before it; fully blank rows are skipped but still counted. A quoted CSV
field that spans lines is one row, as in Excel. An Excel ``sep=;`` first line sets the delimiter and is not counted.

Every way a file can be unreadable (wrong type, binary garbage, broken workbook, undecodable text) raises
:class:`ImportFormatError`; nothing else escapes for bad content. Files are read in a bounded amount of memory: CSV
is decoded incrementally (one extra streaming pass checks the encoding first), and workbooks are opened read-only.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from biobank.imports.coerce import PercentCell

#: Suffixes read as delimited text, with the delimiter preferred when detection is undecided.
TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}
EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
DELIMITERS = (",", ";", "\t")
MAX_LINE_CHARS = 1 << 20
_CHUNK = 1 << 20
_SAMPLE = 64 * 1024
_SPOOL = 8 << 20
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SEP_LINE = re.compile(r"sep=([,;\t|])")
_ENCODING_LABELS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with byte-order mark",
    "utf-16": "UTF-16",
    "cp1252": "Windows-1252",
    "latin-1": "Latin-1",
}


class ImportFormatError(Exception):
    """The file cannot be read as a spreadsheet; ``message`` is meant for the person who uploaded it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SourceRow(NamedTuple):
    """One data row: its number as the spreadsheet shows it, and header -> raw cell.

    Every named column is a key (``None`` when the row is short). A non-blank cell under a blank header or beyond
    the last header appears as ``column_<n>`` (1-based column number) so that it is not lost silently.
    """

    number: int
    cells: dict[str, Any]


_HEADER_SEPARATORS = re.compile(r"[\s\-‐‑‒–—]+")


def normalise_header(value: object) -> str:
    """``' Date of Death '`` -> ``date_of_death``: strip, lower-case, spaces and hyphens to ``_``."""
    text = "" if value is None else str(value)
    text = _HEADER_SEPARATORS.sub("_", text.strip(" \t\r\n\u00a0\ufeff\u200b").lower())
    return re.sub(r"_+", "_", text).strip("_")


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _blank_row(values: list[Any]) -> bool:
    first = values[0] if values else None
    if first.__class__ is str and first and not first[0].isspace():  # the usual row: its first cell filled
        return False
    return all(_blank(value) for value in values)


class SourceRows(Iterator[SourceRow]):
    """The rows of one sheet or text file, with what was detected about it; close it (or exhaust it) when done."""

    format: str
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    header_row: int = 0
    headers: tuple[str, ...] = ()
    header_labels: dict[str, str]

    def __init__(self, source: Any, *, filename: str | None = None, sheet: str | None = None) -> None:
        self.header_labels = {}
        self.notes: list[str] = []
        self._closers: list[Callable[[], object]] = []
        self._wrapper: io.TextIOWrapper | None = None
        self._closed = False
        self._names: list[str | None] = []
        self._plain_names = False
        try:
            stream, name = self._open(source)
            self.filename = filename or name
            self._rows = self._start(stream, sheet)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------------ plumbing

    def __iter__(self) -> SourceRows:
        return self

    def __next__(self) -> SourceRow:
        if self._closed:
            raise StopIteration
        try:
            return next(self._rows)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the file; safe to call twice."""
        self._closed = True
        rows = getattr(self, "_rows", None)
        if rows is not None and hasattr(rows, "close"):
            rows.close()
        self._detach()
        while self._closers:
            closer = self._closers.pop()
            with contextlib.suppress(Exception):  # closing must not hide the error that led here
                closer()

    def __enter__(self) -> SourceRows:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open(self, source: Any) -> tuple[IO[bytes], str | None]:
        """A seekable binary stream positioned at the start of the data, and the file name if known."""
        if isinstance(source, bytes | bytearray | memoryview):
            return io.BytesIO(bytes(source)), None
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            try:
                handle = path.open("rb")
            except (OSError, ValueError) as exc:
                raise ImportFormatError(
                    f"cannot open {path.name}: {getattr(exc, 'strerror', None) or exc}"
                ) from exc
            self._closers.append(handle.close)
            return handle, path.name
        if isinstance(source, io.TextIOBase):
            raise TypeError("iter_rows() needs a binary file (open it with 'rb')")
        if hasattr(source, "read"):
            name = getattr(source, "name", None)
            name = Path(name).name if isinstance(name, str) else None
            try:
                if source.seekable():
                    reader = io.BufferedReader(_Window(source))
                    self._closers.append(reader.close)
                    return reader, name
                spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL)  # noqa: SIM115 (closed by close())
                self._closers.append(spool.close)
                while chunk := source.read(_CHUNK):
                    spool.write(chunk)
                spool.seek(0)
                return spool, name
            except OSError as exc:
                raise ImportFormatError(f"cannot read the upload: {exc}") from exc
        raise TypeError(f"iter_rows() reads a path, bytes or a binary file, not {type(source).__name__}")

    def _start(self, stream: IO[bytes], sheet: str | None) -> Iterator[SourceRow]:
        suffix = Path(self.filename).suffix.lower() if self.filename else ""
        try:
            head = stream.read(8)
            stream.seek(0)
        except (OSError, ValueError) as exc:
            raise ImportFormatError(f"cannot read the file: {exc}") from exc
        if not head:
            raise ImportFormatError("the file is empty")
        if head.startswith(_ZIP_MAGIC):
            if suffix in TEXT_SUFFIXES:
                self.notes.append(f"the file is named {suffix} but is an Excel workbook; read as .xlsx")
            self.format = "xlsx"
            return self._start_xlsx(stream, sheet)
        if head.startswith(_OLE_MAGIC):
            raise ImportFormatError(
                "this is an old-style .xls workbook or a password-protected file: save it as .xlsx or CSV"
            )
        if suffix in EXCEL_SUFFIXES:
            raise ImportFormatError(f"the file is named {suffix} but is not an Excel workbook")
        if suffix == ".xls":
            raise ImportFormatError("old-style .xls files cannot be read: save it as .xlsx or CSV")
        if suffix == ".ods":
            raise ImportFormatError("OpenDocument spreadsheets cannot be read: save it as .xlsx or CSV")
        if suffix and suffix not in TEXT_SUFFIXES:
            raise ImportFormatError(f"unsupported file type {suffix}: use .xlsx, .csv, .tsv or .txt")
        self.format = "csv"
        if sheet is not None:
            self.notes.append(f"sheet {sheet!r} ignored: a text file has one table")
        return self._start_csv(stream, TEXT_SUFFIXES.get(suffix, ","))

    # -------------------------------------------------------------------------------------------------- header

    def _set_header(self, values: list[Any], row: int) -> None:
        names: list[str | None] = []
        seen: dict[str, int] = {}
        for index, value in enumerate(values, start=1):
            label = "" if value is None else str(value).strip()
            name = normalise_header(label)
            if not name:
                names.append(None)
                continue
            if name in seen:
                raise ImportFormatError(
                    f"columns {seen[name]} and {index} in the header (row {row}) both read as '{name}': rename one"
                )
            seen[name] = index
            names.append(name)
            self.header_labels[name] = label
        while names and names[-1] is None:
            names.pop()
        if not names:
            raise ImportFormatError("no header row found")
        self._names = names
        self._plain_names = None not in names
        self.headers = tuple(n for n in names if n is not None)
        self.header_row = row

    def _row(self, number: int, values: list[Any] | tuple[Any, ...]) -> SourceRow:
        if len(values) == len(self._names) and self._plain_names:  # the usual row: one cell per named column
            return SourceRow(number, dict(zip(self.headers, values, strict=True)))
        cells: dict[str, Any] = dict.fromkeys(self.headers)
        for index, value in enumerate(values):
            name = self._names[index] if index < len(self._names) else None
            if name is not None:
                cells[name] = value
            elif not _blank(value):
                cells[f"column_{index + 1}"] = value
        return SourceRow(number, cells)

    # ----------------------------------------------------------------------------------------------------- csv

    def _start_csv(self, stream: IO[bytes], preferred: str) -> Iterator[SourceRow]:
        sample = stream.read(_SAMPLE)
        stream.seek(0)
        is_utf16 = sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        if not is_utf16 and b"\x00" in sample:
            raise ImportFormatError("this is not a text or spreadsheet file (it contains binary data)")
        self.encoding = _detect_encoding(stream, sample)
        if self.encoding not in {"utf-8", "utf-8-sig"}:
            self.notes.append(f"read as {_ENCODING_LABELS[self.encoding]} text (not UTF-8)")
        text = self._text(stream)
        sample_text = text.read(_SAMPLE)
        controls = len(_CONTROL.findall(sample_text))
        if controls > max(2, len(sample_text) // 100):
            raise ImportFormatError("this is not a text or spreadsheet file (it contains binary data)")
        text = self._text(stream)
        lines = sample_text.splitlines()
        if len(sample_text) >= _SAMPLE and lines:
            lines.pop()  # probably cut short
        self.delimiter = _choose_delimiter(lines, preferred)
        return self._begin(self._csv_records(text))

    def _text(self, stream: IO[bytes]) -> io.TextIOWrapper:
        """A fresh decoder over the stream; detached (not closed) afterwards, so the caller's file stays open."""
        self._detach()
        stream.seek(0)
        self._wrapper = io.TextIOWrapper(stream, encoding=self.encoding, newline="")
        return self._wrapper

    def _detach(self) -> None:
        """Drop the text decoder without closing the binary stream under it (which may be the caller's)."""
        if self._wrapper is not None:
            with contextlib.suppress(Exception):
                self._wrapper.detach()
            self._wrapper = None

    def _csv_records(self, text: io.TextIOWrapper) -> Iterator[tuple[int, list[str]]]:
        """(row number, fields) from the header on; blank and comment lines before it are counted, not parsed."""
        delimiter = self.delimiter or ","
        lines = _limited_lines(text)
        row = 0
        header_line: str | None = None
        first_line = True
        reader: Any = None
        try:
            for line in lines:
                if first_line:
                    first_line = False
                    if m := _SEP_LINE.fullmatch(line.rstrip("\r\n")):
                        self.delimiter = delimiter = m[1]
                        continue
                row += 1
                if not _skippable_line(line, delimiter):
                    header_line = line
                    break
            if header_line is None:
                return
            reader = csv.reader(_chain_first(header_line, lines), delimiter=delimiter)
            yield from enumerate(reader, start=row)
        except csv.Error as exc:
            where = row + reader.line_num - 1 if reader is not None else row
            raise ImportFormatError(f"row {where}: cannot split into columns ({exc})") from exc
        except (UnicodeError, OSError) as exc:
            raise ImportFormatError(f"cannot read the text: {exc}") from exc

    def _begin(self, records: Iterator[tuple[int, Any]]) -> Iterator[SourceRow]:
        """Read up to and including the header now, so that ``headers`` is known before the first row."""
        for number, values in records:
            if _blank_row(values):
                continue
            filled = [v for v in values if not _blank(v)]
            if _is_comment(filled[0], len(filled) > 1):
                continue
            self._set_header(values, number)
            return self._data(records)
        where = f" in sheet {self.sheet!r}" if self.sheet else ""
        raise ImportFormatError(f"no header row found{where} (only blank or comment lines)")

    def _data(self, records: Iterator[tuple[int, Any]]) -> Iterator[SourceRow]:
        for number, values in records:
            if not _blank_row(values):
                yield self._row(number, values)

    # ---------------------------------------------------------------------------------------------------- xlsx

    def _start_xlsx(self, stream: IO[bytes], sheet: str | None) -> Iterator[SourceRow]:
        import openpyxl

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                workbook = openpyxl.load_workbook(stream, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a damaged zip or XML
            raise ImportFormatError(f"this is not a readable Excel workbook ({type(exc).__name__})") from exc
        self._closers.append(workbook.close)
        if sheet is None:
            if not workbook.worksheets:
                raise ImportFormatError("the workbook has no worksheet")
            worksheet = workbook.worksheets[0]
        elif sheet in workbook.sheetnames and hasattr(workbook[sheet], "iter_rows"):
            worksheet = workbook[sheet]
        else:
            names = ", ".join(repr(ws.title) for ws in workbook.worksheets)
            raise ImportFormatError(f"no worksheet named {sheet!r}; the workbook has {names}")
        self.sheet = worksheet.title
        if hasattr(worksheet, "reset_dimensions"):
            worksheet.reset_dimensions()  # the stored size is wrong in files from some tools
        return self._begin(self._xlsx_records(worksheet))

    def _xlsx_records(self, worksheet: Any) -> Iterator[tuple[int, list[Any]]]:
        rows = worksheet.iter_rows()
        number = 0
        while True:
            try:
                cells = next(rows, None)
            except Exception as exc:  # damaged sheet XML surfaces only while streaming
                raise ImportFormatError(
                    f"row {number + 1} of sheet {self.sheet!r} cannot be read ({type(exc).__name__})"
                ) from exc
            if cells is None:
                return
            number += 1
            yield number, [_excel_value(cell) for cell in cells]


def iter_rows(source: Any, *, filename: str | None = None, sheet: str | None = None) -> SourceRows:
    """Stream the data rows of a CSV/TSV/TXT or .xlsx file.

    ``source`` is a path, the file's bytes, or a binary file object (an upload); ``filename`` gives the type when
    ``source`` has no name (the content decides in the end: a zip is a workbook). ``sheet`` picks a worksheet by
    name; the default is the first. The returned iterator also tells what was detected (``format``, ``encoding``,
    ``delimiter``, ``sheet``, ``headers``, ``header_labels``, ``header_row``, ``notes``). Raises
    :class:`ImportFormatError` at once for a file that cannot be opened, and while iterating for damage found later.
    """
    return SourceRows(source, filename=filename, sheet=sheet)


def estimate_rows(content: bytes, *, filename: str | None = None, sheet: str | None = None) -> int | None:
    """About how many data rows a file holds, cheaply (for a progress bar's total; never for counting): the lines of
    a text file less its header, a worksheet's stored size; None when it cannot tell."""
    if not content:
        return 0
    if content.startswith(_ZIP_MAGIC):
        import openpyxl

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
            try:
                worksheet = workbook[sheet] if sheet in workbook.sheetnames else workbook.worksheets[0]
                rows = getattr(worksheet, "max_row", None)
            finally:
                workbook.close()
        except Exception:  # a damaged workbook: the import itself says what is wrong
            return None
        return max(int(rows) - 1, 0) if rows else None
    if content.startswith(_OLE_MAGIC):
        return None
    lines = content.count(b"\n") + (0 if content.endswith(b"\n") else 1)
    return max(lines - 1, 0)


# ------------------------------------------------------------------------------------------------------ helpers


class _Window(io.RawIOBase):
    """A caller's seekable binary file seen from its current position, never closed by us."""

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__()
        self._inner = inner
        self._origin = inner.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            return self._inner.seek(self._origin + offset) - self._origin
        return self._inner.seek(offset, whence) - self._origin

    def tell(self) -> int:
        return self._inner.tell() - self._origin

    def close(self) -> None:  # leave the caller's file open
        super().close()


def _detect_encoding(stream: IO[bytes], sample: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252, else Latin-1; UTF-16 only with a BOM."""
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        if not _decodes(stream, "utf-16"):
            raise ImportFormatError("the file starts as UTF-16 text but contains invalid bytes")
        return "utf-16"
    if sample.startswith(codecs.BOM_UTF8):
        if not _decodes(stream, "utf-8-sig"):
            raise ImportFormatError(
                "the file starts as UTF-8 text but contains invalid bytes: save it again as UTF-8"
            )
        return "utf-8-sig"
    for encoding in ("utf-8", "cp1252"):
        if _decodes(stream, encoding):
            return encoding
    return "latin-1"


def _decodes(stream: IO[bytes], encoding: str) -> bool:
    """Whether the whole stream decodes, checked chunk by chunk so that a large file is never held in memory."""
    stream.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        while chunk := stream.read(_CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        stream.seek(0)
    return True


def _limited_lines(text: io.TextIOWrapper) -> Iterator[str]:
    """Physical lines, refusing one so long that it could only be binary data or a broken export."""
    while line := text.readline(MAX_LINE_CHARS):
        if len(line) >= MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
            raise ImportFormatError(f"a line is longer than {MAX_LINE_CHARS} characters: this is not a table")
        yield line


def _chain_first(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _skippable_line(line: str, delimiters: str) -> bool:
    """Blank (or only delimiters) or a comment line; the split ignores quoting, which is enough to tell."""
    cells = [cell.strip().strip('"').strip() for cell in re.split(f"[{re.escape(delimiters)}]", line)]
    filled = [cell for cell in cells if cell]
    return not filled or _is_comment(filled[0], len(filled) > 1)


def _is_comment(first: object, more: bool) -> bool:
    """A row whose first non-blank cell starts with ``#``; a lone ``#`` heading other columns is a header."""
    if not isinstance(first, str):
        return False
    first = first.strip()
    return first.startswith("#") and (first != "#" or not more)


def _choose_delimiter(lines: list[str], preferred: str) -> str:
    """The delimiter that splits the header into most columns and the data rows into as many; ties -> preferred."""
    if lines and (m := _SEP_LINE.fullmatch(lines[0])):
        return m[1]
    candidates = [line for line in lines if not _skippable_line(line, ",;\t")]
    if not candidates:
        return preferred
    header, data = candidates[0], candidates[1:51]
    order = [preferred, *(d for d in DELIMITERS if d != preferred)]

    def width(line: str, delimiter: str) -> int:
        try:
            return len(next(csv.reader([line], delimiter=delimiter), []))
        except csv.Error:
            return 0

    def score(rank_delimiter: tuple[int, str]) -> tuple[bool, float, int, int]:
        rank, delimiter = rank_delimiter
        columns = width(header, delimiter)
        agree = sum(width(line, delimiter) == columns for line in data) / len(data) if data else 1.0
        return columns > 1, agree, columns, -rank

    return max(enumerate(order), key=score)[1]


def _excel_value(cell: Any) -> Any:
    value = getattr(cell, "value", None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        number_format = getattr(cell, "number_format", None) or ""
        if "%" in number_format:
            return PercentCell(value)
    return value
