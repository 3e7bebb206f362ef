"""Values as JSON holds them: times as ISO 8601 text, decimals as floats, enums as their value, containers walked."""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any


def plain(value: Any) -> Any:
    """``value`` with every time, decimal and enum inside it made JSON-ready; anything else as it is."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
