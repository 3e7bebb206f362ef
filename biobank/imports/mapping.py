"""The mapping file of a lab's own collection log (``biobank import collection_log FILE --map MAP.toml``): which
header is which field, a unit per column, value maps, patterns over the notes and a few options. Read with
:func:`load_mapping` (TOML) or :func:`parse_mapping` (a dict); every problem is a
:class:`~biobank.domain.errors.ValidationError` naming the key. The format is documented in ``docs/collection-log.md``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticError

from biobank.domain.errors import ValidationError, invalid
from biobank.domain.vocab import LesionKind, QuantityUnit
from biobank.imports.read import normalise_header

#: Every field a column may be mapped to, with what it holds (the docs list the same).
FIELDS: dict[str, str] = {
    "case": "case (autopsy) code; required",
    "donor": "donor code (pseudonymous); required",
    "donor_sex": "donor sex (male, female, unknown...) for a new donor",
    "death_date": "date of death (with death_time), or a date and time",
    "death_time": "time of death (with death_date)",
    "death_at": "date and time of death in one column",
    "refrigerated_time": "body refrigeration: a time (anchored to the date of death) or a date and time",
    "autopsy_start": "autopsy start: a time or a date and time (estimated from the first sample when missing)",
    "autopsy_end": "autopsy end: a time or a date and time (estimated from the last sample when missing)",
    "prosector": "prosector of the case",
    "site": "site label as the prosector wrote it ('Femur L', 'Rib 6 (R)'); required",
    "laterality": "left, right, L, R, bilateral, midline (overrides a side read from the site label)",
    "lesion": "lesion label as written ('P', 'M1'); empty: normal tissue or blood",
    "lesion_kind": "lesion kind (primary, metastasis, lymph_node, local_recurrence); else [values.lesion_kind]",
    "region": "region label of the lesion ('A', 'B'); empty: 'A'",
    "preservation": "preservation as written ('LN2', 'FFPE', 'viable (DMSO)'); required",
    "excised_time": "excision: a time or a date and time (the earliest stabilisation of the site when missing)",
    "stabilised_time": "into fixative or LN2: a time or a date and time",
    "quantity": "amount; the unit in the cell ('4 mL'), in the header ('Weight (mg)') or in [units]",
    "unit": "unit of the quantity, as a column",
    "pieces": "number of pieces (tubes, blocks) this row stands for; default 1",
    "box": "container path ('LN2-T1/B04') or code of the box",
    "position": "position in the box ('A1', '12')",
    "collected_by": "initials or name of the person who collected the specimen",
    "notes": "free text (kept on the specimen; [patterns] pull fields out of it)",
}
REQUIRED_FIELDS = ("case", "donor", "site", "preservation")
#: Value maps the import applies (exact, case-insensitive) before matching.
VALUE_MAPS = ("preservation", "site", "lesion_kind", "laterality", "donor_sex", "material")
#: Patterns over the notes the import understands, with the named groups each must have.
PATTERNS: dict[str, tuple[str, ...]] = {"decalcification": ("agent", "hours"), "fixation_hours": ("hours",)}
DATE_ORDERS = ("DMY", "MDY", "YMD")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date_order: str = "DMY"
    timezone: str | None = None

    @field_validator("date_order")
    @classmethod
    def _order(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in DATE_ORDERS:
            raise ValueError(f"choose one of {', '.join(DATE_ORDERS)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone (such as 'Europe/London')") from None
        return value


class Mapping(BaseModel):
    """A validated mapping file. Headers are kept as written; :meth:`header_of` finds a field's header."""

    model_config = ConfigDict(extra="forbid")
    columns: dict[str, str]
    units: dict[str, str] = Field(default_factory=dict)
    values: dict[str, dict[str, str]] = Field(default_factory=dict)
    patterns: dict[str, str] = Field(default_factory=dict)
    options: _Options = Field(default_factory=_Options)

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for header, name in value.items():
            if not normalise_header(header):
                raise ValueError("a header is blank")
            if name not in FIELDS:
                raise ValueError(f"{header!r} = {name!r}: not a field; choose one of {', '.join(FIELDS)}")
            if name in seen:
                raise ValueError(f"{header!r} and {seen[name]!r} are both mapped to {name!r}")
            seen[name] = header
        return value

    @field_validator("units")
    @classmethod
    def _units(cls, value: dict[str, str]) -> dict[str, str]:
        from biobank.imports.coerce.numbers import UNIT_SPELLINGS, _unit_key

        for header, unit in value.items():
            if _unit_key(unit) not in UNIT_SPELLINGS:
                allowed = ", ".join(u.value for u in QuantityUnit)
                raise ValueError(f"{header!r} = {unit!r}: not a unit; allowed: {allowed} (also g, ml, µg)")
        return value

    @field_validator("values")
    @classmethod
    def _values(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for name, table in value.items():
            if name not in VALUE_MAPS:
                raise ValueError(f"[values.{name}]: not a value map; choose one of {', '.join(VALUE_MAPS)}")
            if name == "lesion_kind":
                for label, kind in table.items():
                    if kind not in {k.value for k in LesionKind}:
                        raise ValueError(f"[values.lesion_kind] {label!r} = {kind!r}: choose one of "
                                         f"{', '.join(k.value for k in LesionKind)}")
        return {name: {k.strip().casefold(): v.strip() for k, v in table.items()} for name, table in value.items()}

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            groups = PATTERNS.get(name)
            if groups is None:
                raise ValueError(f"{name!r}: not a pattern; choose one of {', '.join(PATTERNS)}")
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{name!r}: not a regular expression ({exc})") from None
            missing = [g for g in groups if g not in compiled.groupindex]
            if missing:
                raise ValueError(f"{name!r}: needs the named group(s) {', '.join(f'(?P<{g}>...)' for g in missing)}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> Mapping:
        mapped = set(self.columns.values())
        missing = [name for name in REQUIRED_FIELDS if name not in mapped]
        if missing:
            raise ValueError(f"[columns] maps no column to {', '.join(missing)} (required)")
        if "death_at" not in mapped and "death_date" not in mapped:
            raise ValueError("[columns] maps no column to death_date or death_at (the date of death anchors times)")
        if "death_at" in mapped and ({"death_date", "death_time"} & mapped):
            raise ValueError("[columns]: map either death_at or death_date (with death_time), not both")
        for header in self.units:
            if header not in self.columns:
                raise ValueError(f"[units] {header!r}: not a header in [columns]")
        return self

    # ------------------------------------------------------------------------------------------------ lookups

    def header_of(self, name: str) -> str | None:
        for header, field_name in self.columns.items():
            if field_name == name:
                return header
        return None

    def value_map(self, name: str, raw: str) -> str | None:
        """The mapped value for ``raw`` in ``[values.NAME]`` (exact, case-insensitive), or None."""
        return self.values.get(name, {}).get(raw.strip().casefold())

    @property
    def dayfirst(self) -> bool:
        return self.options.date_order != "MDY"


def parse_mapping(data: dict[str, Any]) -> Mapping:
    """A mapping from its TOML tables; a :class:`ValidationError` names the first wrong key."""
    try:
        return Mapping.model_validate(data)
    except PydanticError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if not first["loc"]:  # a rule over the whole file: which fields [columns] maps
            raise ValidationError(f"map: {message}", field="map.columns", reason=message) from None
        where = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            message = "not a key of a mapping file (tables: columns, units, values, patterns, options)"
        elif first["type"] == "missing":
            message = "is required"
        raise invalid(f"map.{where}", first.get("input") if first["type"] != "missing" else None,
                      message) from None


def load_mapping(source: Path | str | bytes) -> Mapping:
    """Read a mapping file (a path or its bytes)."""
    try:
        raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as exc:
        raise ValidationError(f"map={str(source)!r}: cannot be read ({exc.strerror})", field="map") from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ValidationError("map: the mapping file is not UTF-8 text", field="map") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"map: not a TOML file ({exc})", field="map") from None
    return parse_mapping(data)


__all__ = ["FIELDS", "REQUIRED_FIELDS", "Mapping", "load_mapping", "parse_mapping"]
