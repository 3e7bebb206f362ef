"""Tables for any other pipeline: every entity as CSV, Parquet (pyarrow) and one Excel workbook, with a data
dictionary (``table,column,type,meaning,vocabulary``) written as ``data_dictionary.csv`` and as the workbook's
``dictionary`` sheet.

De-identified by default: absolute-time columns are dropped (date/datetime dtypes or values, and columns named
``*_at``, ``*_date``, ``date_*``, ``*_timestamp``; the frames carry hours after death or days before death instead),
and so are free-text note columns (``notes``, ``comments``, ...) unless ``keep_free_text``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

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
    frames: Mapping[str, pd.DataFrame], dictionary: pd.DataFrame | None, dropped: Mapping[str, Iterable[str]]
) -> pd.DataFrame:
    """The dictionary for the written columns: given rows first-class, missing rows added with an inferred type.

    Raises ValueError when the given dictionary lacks a column or names a table/column the frames do not have.
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
    rows = []
    for table, frame in frames.items():
        for column in frame.columns:
            given_row = by_key.get((table, str(column)), {})
            inferred = column_type(frame[column])
            rows.append(
                {
                    "table": table,
                    "column": str(column),
                    "type": given_row.get("type") if not isna(given_row.get("type")) else inferred,
                    "meaning": "" if isna(given_row.get("meaning")) else given_row.get("meaning", ""),
                    "vocabulary": ""
                    if isna(given_row.get("vocabulary"))
                    else given_row.get("vocabulary", ""),
                }
            )
    return pd.DataFrame(rows, columns=list(DICTIONARY_COLUMNS))


def _excel_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Excel cannot hold tz-aware datetimes: write them as naive UTC."""
    out = frame.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.DatetimeTZDtype):
            out[c] = out[c].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def write_tables(
    frames: Mapping[str, pd.DataFrame],
    folder: str | Path,
    formats: Iterable[str] = FORMATS,
    dictionary: pd.DataFrame | None = None,
    *,
    deidentified: bool = True,
    keep_free_text: bool = False,
    workbook: str = WORKBOOK_FILE,
) -> dict[str, list[Path]]:
    """Write every frame as ``<name>.csv`` / ``<name>.parquet`` and a sheet of one workbook, plus the dictionary.

    Table names are letters, digits and underscores (at most 31 characters: Excel's sheet limit), and
    ``dictionary`` is reserved. Returns ``{format: [paths]}`` with the dictionary CSV under ``"dictionary"``.
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
    dict_frame = build_dictionary(clean, dictionary, dropped)

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {f: [] for f in formats}
    for name, frame in clean.items():
        if "csv" in formats:
            p = out / f"{name}.csv"
            frame.to_csv(p, index=False, lineterminator="\n")
            written["csv"].append(p)
        if "parquet" in formats:
            p = out / f"{name}.parquet"
            frame.to_parquet(p, engine="pyarrow", index=False)
            written["parquet"].append(p)
    if "xlsx" in formats:
        p = out / workbook
        with pd.ExcelWriter(p, engine="openpyxl") as writer:
            for name, frame in clean.items():
                _excel_ready(frame).to_excel(writer, sheet_name=name, index=False)
            dict_frame.to_excel(writer, sheet_name=DICTIONARY_SHEET, index=False)
        written["xlsx"].append(p)
    p = out / DICTIONARY_FILE
    dict_frame.to_csv(p, index=False, lineterminator="\n")
    written["dictionary"] = [p]
    return written
