"""Turn a database constraint violation into an error that names the rule, field and value."""

from __future__ import annotations

import re

from sqlalchemy.exc import IntegrityError

from biobank.domain.errors import BiobankError, ConflictError, ValidationError

#: Plain-language meaning of constraints whose name alone would puzzle a technician.
MEANINGS: dict[str, str] = {
    "uq_specimen_code": "a specimen with this code already exists",
    "uq_specimen_barcode": "a specimen with this barcode already exists",
    "uq_donor_code": "a donor with this code already exists",
    "uq_autopsy_case_code": "an autopsy with this case code already exists",
    "uq_autopsy_donor_id": "this donor already has an autopsy",
    "uq_lesion_donor_id_code": "this donor already has a lesion with this code",
    "uq_sampling_site_donor_id_code": "this donor already has a sampling site with this code",
    "uq_user_account_username": "a user with this name already exists",
    "uq_consent_withdrawal_donor_id": "this donor has already withdrawn consent",
    "ck_specimen_remaining_within_quantity": "quantity remaining must lie between 0 and the quantity",
    "ck_specimen_quantity_not_negative": "quantities are never negative",
    "ck_specimen_stabilised_after_collected": "a specimen cannot be stabilised before it was excised",
    "ck_autopsy_refrigerated_after_death": "the body cannot be refrigerated before death",
    "ck_autopsy_end_after_start": "the autopsy cannot end before it starts",
    "ck_autopsy_start_after_death": "the autopsy cannot start before death",
    # storage and distribution (issue 3)
    "uq_specimen_location_container_id_position": "this position already holds a specimen (one position, one specimen)",
    "uq_specimen_location_specimen_id": "this specimen is already stored somewhere; move it instead",
    "uq_container_code": "a container with this code already exists",
    "ix_checkout_one_open_per_specimen": "this specimen is already checked out",
    "uq_checkout_specimen_id": "this specimen is already checked out",
    "uq_distribution_order_code": "an order with this code already exists",
    "uq_distribution_item_order_id_specimen_id": "this order already holds this specimen",
    "ck_distribution_item_returned_within_quantity": "more cannot come back than was sent",
}

_UNIQUE_SQLITE = re.compile(r"UNIQUE constraint failed: (?P<cols>[\w., ]+)")
_CHECK_SQLITE = re.compile(r"CHECK constraint failed: (?P<name>\w+)")
_TRIGGER = re.compile(r"\b(?P<name>tg_\w+): (?P<message>[^\n]+)")


def constraint_name(exc: IntegrityError) -> str | None:
    """The violated constraint's name, from psycopg's diagnostics or SQLite's message."""
    diag = getattr(exc.orig, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return str(diag.constraint_name)
    text = str(exc.orig)
    if match := _CHECK_SQLITE.search(text):
        return match.group("name")
    if match := _UNIQUE_SQLITE.search(text):
        cols = [c.strip() for c in match.group("cols").split(",")]
        table = cols[0].split(".")[0]
        return "uq_" + table + "_" + "_".join(c.split(".")[1] for c in cols)
    return None


def translate_integrity_error(exc: IntegrityError) -> BiobankError:
    text = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
    if match := _TRIGGER.search(text):
        return ValidationError(f"{match.group('name')}: {match.group('message')}", field=match.group("name"))
    name = constraint_name(exc)
    if name is None:
        if "FOREIGN KEY" in text.upper():
            return ValidationError(
                f"refers to a row that does not exist or belongs to another donor ({text})"
            )
        return ConflictError(f"database refused the change: {text}")
    meaning = MEANINGS.get(name, "")
    message = f"{name}: {meaning}" if meaning else f"database rule {name} refused the change ({text})"
    if name.startswith(("uq_", "pk_")):
        return ConflictError(message, field=name)
    return ValidationError(message, field=name)
