"""Tables for any other pipeline: every entity as CSV, Parquet (pyarrow) and one Excel workbook, with a data
dictionary (``table,column,type,meaning,vocabulary``) written as ``data_dictionary.csv`` and as the workbook's
``dictionary`` sheet.

De-identified by default: absolute-time columns are dropped (date/datetime dtypes or values, and columns named
``*_at``, ``*_date``, ``date_*``, ``*_timestamp``; the frames carry hours after death or days before death instead),
and so are free-text note columns (``notes``, ``comments``, ...) unless ``keep_free_text``.

Types come from the dictionary (``string``, ``integer``, ``number``, ``boolean``, ``datetime``, ``duration``,
``category``; a column the given dictionary does not type is inferred from its values): every column is converted to
its type before writing, so a column that is empty in this export is still typed (never Arrow ``null``), and a value
its type cannot hold is refused with the table, column and row named. Parquet is written with the Arrow schema the
dictionary gives (:data:`ARROW_TYPES`); the CSV reads back with ``pandas.read_csv`` and the dtypes of
:data:`PANDAS_TYPES`.

Timestamps are UTC everywhere: Parquet ``timestamp[us, tz=UTC]``, CSV ``YYYY-MM-DD hh:mm:ss+00:00``. Excel has no time
zones, so the workbook holds date-time cells with the UTC time, shown with a `` UTC`` suffix
(:data:`EXCEL_DATETIME_FORMAT`): the cells stay dates that sort and filter, and nobody reads them as local time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from biobank.exports.formats import require_columns
from biobank.exports.formats._common import isna

FORMATS = ("csv", "parquet", "xlsx")
DICTIONARY_COLUMNS: tuple[str, ...] = ("table", "column", "type", "meaning", "vocabulary")
DICTIONARY_SHEET = "dictionary"
DICTIONARY_FILE = "data_dictionary.csv"
WORKBOOK_FILE = "tables.xlsx"
#: Column names treated as free-text notes (dropped unless asked for).
FREE_TEXT_COLUMNS = frozenset(
    {"note", "notes", "comment", "comments", "free_text", "gross_description", "remarks"}
)
#: Arrow type of each dictionary type (the Parquet schema).
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "datetime": pa.timestamp("us", tz="UTC"),
    "duration": pa.duration("us"),
    "category": pa.dictionary(pa.int32(), pa.string()),
}
#: The dictionary types.
TYPES: tuple[str, ...] = tuple(ARROW_TYPES)
#: pandas dtype of each dictionary type (what the frames are converted to, and what reads the CSV back).
PANDAS_TYPES: dict[str, str] = {
    "string": "str",
    "integer": "Int64",
    "number": "float64",
    "boolean": "boolean",
    "datetime": "datetime64[us, UTC]",
    "duration": "timedelta64[us]",
    "category": "category",
}
#: Excel number format of timestamps: the UTC time, marked as such (Excel cells have no time zone).
EXCEL_DATETIME_FORMAT = 'yyyy-mm-dd hh:mm:ss "UTC"'
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,30}$")
#: Column names that hold absolute times by the project's naming (``collected_at``, ``birth_date``...).
_ABSOLUTE_TIME_NAME = re.compile(r"(?:^|_)(?:at|date|datetime|timestamp)$|^date_", re.IGNORECASE)


def column_type(series: pd.Series) -> str:
    """A plain type name for the dictionary."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "duration"
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    values = series.dropna()
    if len(values) and all(isinstance(v, bool) for v in values):
        return "boolean"
    return "string"


def _is_absolute_time(series: pd.Series) -> bool:
    if _ABSOLUTE_TIME_NAME.search(str(series.name)) or pd.api.types.is_datetime64_any_dtype(series.dtype):
        return True
    if series.dtype == object:
        values = [v for v in series if not isna(v)]
        return bool(values) and all(isinstance(v, dt.date | dt.datetime | pd.Timestamp) for v in values)
    return False


def deidentify(frame: pd.DataFrame, *, keep_free_text: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """The frame without absolute-time columns (and free-text notes); also the names dropped."""
    drop = [c for c in frame.columns if _is_absolute_time(frame[c])]
    if not keep_free_text:
        drop += [c for c in frame.columns if str(c).lower() in FREE_TEXT_COLUMNS and c not in drop]
    return frame.drop(columns=drop), [str(c) for c in drop]


def build_dictionary(
    frames: Mapping[str, pd.DataFrame],
    dictionary: pd.DataFrame | None,
    dropped: Mapping[str, Iterable[str]],
    *,
    complete: bool = False,
) -> pd.DataFrame:
    """The dictionary for the written columns: given rows first-class, missing rows added with an inferred type.

    Raises ValueError when the given dictionary lacks a column, names a table/column the frames do not have, or
    gives a type that is not one of :data:`TYPES`; with ``complete``, also when a written column has no type or no
    meaning in it (every one named).
    """
    given = pd.DataFrame(columns=list(DICTIONARY_COLUMNS)) if dictionary is None else dictionary
    require_columns(given, DICTIONARY_COLUMNS, frame_name="dictionary", export="tables")
    by_key: dict[tuple[str, str], dict[str, object]] = {}
    for row in given[list(DICTIONARY_COLUMNS)].to_dict(orient="records"):
        by_key[(str(row["table"]), str(row["column"]))] = {str(k): v for k, v in row.items()}
    written = {(t, str(c)) for t, f in frames.items() for c in f.columns}
    gone = {(t, c) for t, cols in dropped.items() for c in cols}
    unknown = sorted(k for k in by_key if k not in written and k not in gone)
    if unknown:
        raise ValueError(
            "dictionary names columns the tables do not have: " + ", ".join(f"{t}.{c}" for t, c in unknown)
        )
    bad_types = sorted(
        f"{t}.{c} ({row['type']!r})"
        for (t, c), row in by_key.items()
        if _given(row.get("type")) and row.get("type") not in TYPES
    )
    if bad_types:
        raise ValueError(f"dictionary types must be one of {', '.join(TYPES)}: " + ", ".join(bad_types))
    if complete:
        lacking = [
            f"{t}.{c}"
            for t, frame in frames.items()
            for c in map(str, frame.columns)
            if not _given(by_key.get((t, c), {}).get("type"))
            or not _given(by_key.get((t, c), {}).get("meaning"))
        ]
        if lacking:
            raise ValueError("the data dictionary gives no type or meaning for " + ", ".join(lacking))
    rows = []
    for table, frame in frames.items():
        for column in frame.columns:
            given_row = by_key.get((table, str(column)), {})
            rows.append(
                {
                    "table": table,
                    "column": str(column),
                    "type": given_row["type"]
                    if _given(given_row.get("type"))
                    else column_type(frame[column]),
                    "meaning": str(given_row["meaning"]) if _given(given_row.get("meaning")) else "",
                    "vocabulary": str(given_row["vocabulary"]) if _given(given_row.get("vocabulary")) else "",
                }
            )
    return pd.DataFrame(rows, columns=list(DICTIONARY_COLUMNS))


def _given(value: object) -> bool:
    return not isna(value) and bool(str(value).strip())


def _refuse(table: str, column: str, series: pd.Series, ok: pd.Series, kind: str) -> None:
    """Raise ValueError naming the first row whose value is not a ``kind`` (rows are 1-based data rows)."""
    bad = [position for position, good in enumerate(ok.tolist()) if not good]
    if bad:
        value = series.iloc[bad[0]]
        shown = repr(value) if isinstance(value, str) else str(value)
        raise ValueError(
            f"{table}.{column} row {bad[0] + 1}: {shown} is not {kind} (the data dictionary types it so)"
        )


def _as_type(series: pd.Series, kind: str, *, table: str, column: str) -> pd.Series:
    """The column converted to its dictionary type; ValueError names the first value that cannot be."""
    present = ~series.isna()
    if kind == "string":
        return pd.Series([None if isna(v) else str(v) for v in series], index=series.index, dtype="str")
    if kind in ("integer", "number"):
        values = pd.to_numeric(series.astype(object).where(present, None), errors="coerce")
        _refuse(table, column, series, ~present | values.notna(), "a number")
        values = values.astype("float64")
        if kind == "number":
            return values
        whole = values.isna() | (values == values.round())
        _refuse(table, column, series, whole, "a whole number")
        return values.astype("Int64")
    if kind == "boolean":
        truth = {True: True, False: False, "true": True, "false": False, "True": True, "False": False}
        ok = pd.Series(
            [isna(v) or (isinstance(v, bool | str) and v in truth) or v in (0, 1) for v in series],
            index=series.index,
        )
        _refuse(table, column, series, ok, "true or false")
        return pd.Series(
            [pd.NA if isna(v) else truth.get(v, bool(v)) for v in series], index=series.index, dtype="boolean"
        )
    if kind == "datetime":
        if pd.api.types.is_datetime64_any_dtype(series.dtype) and not isinstance(
            series.dtype, pd.DatetimeTZDtype
        ):
            raise ValueError(f"{table}.{column}: timestamps without a time zone (give them in UTC)")
        naive = pd.Series(
            [isinstance(v, dt.datetime) and v.tzinfo is None for v in series], index=series.index, dtype=bool
        )
        _refuse(table, column, series, ~naive, "a timestamp with a time zone")
        values = pd.to_datetime(series.astype(object).where(present, None), errors="coerce", utc=True)
        _refuse(table, column, series, ~present | values.notna(), "a timestamp")
        return values.astype("datetime64[us, UTC]")
    if kind == "duration":
        values = pd.to_timedelta(series.astype(object).where(present, None), errors="coerce")
        _refuse(table, column, series, ~present | values.notna(), "a duration")
        return values.astype("timedelta64[us]")
    return series.astype("category")


def typed_frame(table: str, frame: pd.DataFrame, types: Mapping[str, str]) -> pd.DataFrame:
    """``frame`` with each column converted to its type in ``types`` (``{column: dictionary type}``)."""
    return pd.DataFrame(
        {c: _as_type(frame[c], types[str(c)], table=table, column=str(c)) for c in frame.columns},
        index=frame.index,
        columns=frame.columns,
    )


def arrow_schema(frame: pd.DataFrame, types: Mapping[str, str]) -> pa.Schema:
    """The Parquet schema of a typed frame: each column's Arrow type from its dictionary type."""
    return pa.schema([pa.field(str(c), ARROW_TYPES[types[str(c)]], nullable=True) for c in frame.columns])


def _excel_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Excel cannot hold tz-aware datetimes: write the UTC time (the cells' number format says UTC)."""
    out = frame.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype):
            out[c] = out[c].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def _mark_utc(sheet: Any, frame: pd.DataFrame) -> None:
    """Show every timestamp cell of the sheet with the UTC marker (:data:`EXCEL_DATETIME_FORMAT`)."""
    for position, column in enumerate(frame.columns, start=1):
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            for (cell,) in sheet.iter_rows(min_row=2, min_col=position, max_col=position):
                cell.number_format = EXCEL_DATETIME_FORMAT


def write_tables(
    frames: Mapping[str, pd.DataFrame],
    folder: str | Path,
    formats: Iterable[str] = FORMATS,
    dictionary: pd.DataFrame | None = None,
    *,
    deidentified: bool = True,
    keep_free_text: bool = False,
    workbook: str = WORKBOOK_FILE,
    complete_dictionary: bool = False,
) -> dict[str, list[Path]]:
    """Write every frame as ``<name>.csv`` / ``<name>.parquet`` and a sheet of one workbook, plus the dictionary.

    Table names are letters, digits and underscores (at most 31 characters: Excel's sheet limit), and
    ``dictionary`` is reserved. Every column is written as its dictionary type (see the module docstring);
    ``complete_dictionary`` refuses a column the given dictionary does not type or explain. Returns
    ``{format: [paths]}`` with the dictionary CSV under ``"dictionary"``.
    """
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown table format(s): {', '.join(unknown)} (known: {', '.join(FORMATS)})")
    bad = [n for n in frames if not _TABLE_NAME.match(n) or n.lower() == DICTIONARY_SHEET]
    if bad:
        raise ValueError(f"table names must be letters, digits, _ (≤31 characters, not 'dictionary'): {bad}")
    for name, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"table {name!r} is not a DataFrame")

    clean: dict[str, pd.DataFrame] = {}
    dropped: dict[str, list[str]] = {}
    for name, frame in frames.items():
        if deidentified:
            clean[name], dropped[name] = deidentify(frame, keep_free_text=keep_free_text)
        else:
            clean[name], dropped[name] = frame, []
    dict_frame = build_dictionary(clean, dictionary, dropped, complete=complete_dictionary)
    types = {
        table: dict(zip(rows["column"], rows["type"], strict=True))
        for table, rows in dict_frame.groupby("table", sort=False)
    }
    typed = {name: typed_frame(name, frame, types.get(name, {})) for name, frame in clean.items()}

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {f: [] for f in formats}
    for name, frame in typed.items():
        if "csv" in formats:
            p = out / f"{name}.csv"
            frame.to_csv(p, index=False, lineterminator="\n")
            written["csv"].append(p)
        if "parquet" in formats:
            p = out / f"{name}.parquet"
            schema = arrow_schema(frame, types.get(name, {}))
            pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), p)
            written["parquet"].append(p)
    if "xlsx" in formats:
        p = out / workbook
        with pd.ExcelWriter(p, engine="openpyxl") as writer:
            for name, frame in typed.items():
                _excel_ready(frame).to_excel(writer, sheet_name=name, index=False)
                _mark_utc(writer.sheets[name], frame)
            dict_frame.to_excel(writer, sheet_name=DICTIONARY_SHEET, index=False)
        written["xlsx"].append(p)
    p = out / DICTIONARY_FILE
    dict_frame.to_csv(p, index=False, lineterminator="\n")
    written["dictionary"] = [p]
    return written
