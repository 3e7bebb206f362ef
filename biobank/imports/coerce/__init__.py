"""Pure cell coercers for spreadsheet imports: one raw cell in, a typed value (and maybe a note) out.

Every coercer takes the raw cell as :mod:`biobank.imports.read` yields it and returns ``Coerced(value, note)``, or
raises :class:`CellError`. Nothing here touches a database or guesses silently: when a value is read in a way the
user might not expect, the ``note`` says how. Callers use the package as one namespace
(``from biobank.imports import coerce as c``; ``c.quantity(...)``); the rules live by concern:

- :mod:`~biobank.imports.coerce.cells`: the result and error types, Excel percent cells, what counts as empty;
- :mod:`~biobank.imports.coerce.strings`: free text and codes;
- :mod:`~biobank.imports.coerce.numbers`: numbers (decimal commas, thousands separators), percentages, quantities
  and their units;
- :mod:`~biobank.imports.coerce.vocabulary`: yes/no and the enum vocabularies with their synonyms;
- :mod:`~biobank.imports.coerce.dates`: dates, times of day and moments in the lab's zone.
"""

from biobank.imports.coerce import numbers as _numbers
from biobank.imports.coerce.cells import (
    EMPTY_TOKENS,
    EXCEL_ERRORS,
    CellError,
    Coerced,
    Coercer,
    PercentCell,
    is_empty,
)
from biobank.imports.coerce.dates import (
    DATE_EXPECTED,
    DATETIME_EXPECTED,
    EXCEL_EPOCH,
    EXCEL_SERIAL_MAX,
    EXCEL_SERIAL_MIN,
    TIME_EXPECTED,
    calendar_date,
    combine,
    date_time,
    localise,
    time_of_day,
)
from biobank.imports.coerce.numbers import (
    QUANTITY_EXPECTED,
    UNIT_SPELLINGS,
    Quantity,
    decimal,
    integer,
    percent,
    quantity,
)
from biobank.imports.coerce.strings import text
from biobank.imports.coerce.vocabulary import (
    AMBIGUOUS,
    SYNONYM_GROUPS,
    SYNONYMS,
    VocabCoercer,
    boolean,
    vocab,
    vocab_key,
)

# The unit table's internals, which its tests read through the package.
_RENAMED_UNITS = _numbers._RENAMED_UNITS
_unit_key = _numbers._unit_key

__all__ = [
    "AMBIGUOUS",
    "DATETIME_EXPECTED",
    "DATE_EXPECTED",
    "EMPTY_TOKENS",
    "EXCEL_EPOCH",
    "EXCEL_ERRORS",
    "EXCEL_SERIAL_MAX",
    "EXCEL_SERIAL_MIN",
    "QUANTITY_EXPECTED",
    "SYNONYMS",
    "SYNONYM_GROUPS",
    "TIME_EXPECTED",
    "UNIT_SPELLINGS",
    "CellError",
    "Coerced",
    "Coercer",
    "PercentCell",
    "Quantity",
    "VocabCoercer",
    "boolean",
    "calendar_date",
    "combine",
    "date_time",
    "decimal",
    "integer",
    "is_empty",
    "localise",
    "percent",
    "quantity",
    "text",
    "time_of_day",
    "vocab",
    "vocab_key",
]
