"""Turning what a person typed into the values a service takes (the service still validates everything)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from biobank.domain.errors import invalid

#: Fields the board offers to correct: label, and how the typed value is read.
CORRECTION_FIELDS: dict[str, tuple[str, str]] = {
    "quantity": ("Quantity", "number"),
    "quantity_remaining": ("Quantity remaining", "number"),
    "unit": ("Unit", "text"),
    "storage_format": ("Storage format", "text"),
    "material_type": ("Material type", "text"),
    "collected_at": ("Excision time", "time"),
    "stabilised_at": ("Stabilisation time", "time"),
    "fixation_end_at": ("Fixation end time", "time"),
    "fixative": ("Fixative", "text"),
    "decalcification_agent": ("Decalcification agent", "text"),
    "decalcification_hours": ("Decalcification hours", "number"),
    "barcode": ("Barcode", "text"),
    "notes": ("Notes", "text"),
}


def parse_correction(field: str, text: str, zone: ZoneInfo) -> Any:
    """The typed value as the field's type; an empty value clears an optional field (None)."""
    if field not in CORRECTION_FIELDS:
        raise invalid("field", field, f"one of {', '.join(CORRECTION_FIELDS)}")
    kind = CORRECTION_FIELDS[field][1]
    value = (text or "").strip()
    if not value:
        return None
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            raise invalid(field, value, "must be a number") from None
    if kind == "time":
        try:
            parsed = datetime.fromisoformat(value.replace("T", " "))
        except ValueError:
            raise invalid(field, value, "write the time as YYYY-MM-DD HH:MM") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone)
        return parsed.astimezone(UTC)
    return value
