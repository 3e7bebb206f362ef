"""Messages in the lab's words: fields by the labels their forms show, times in the lab's zone, the machine names kept
on the error for import reports and tests."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from biobank.config import get_settings
from biobank.domain.errors import ValidationError, invalid, shown
from biobank.domain.fields import FIELD_LABELS, field_label, form_label, unit_of
from biobank.domain.timing import lab_day, lab_time


@pytest.fixture(autouse=True)
def london(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BIOBANK_TIMEZONE", "Europe/London")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_time_reads_in_the_labs_zone():
    summer = datetime(2026, 7, 6, 20, 27, tzinfo=UTC)  # 21:27 in London (BST)
    assert lab_time(summer, get_settings().zone) == "06 Jul 2026 21:27"
    assert lab_time(summer, get_settings().zone, with_zone=True) == "06 Jul 2026 21:27 Europe/London"
    assert lab_day(date(2026, 12, 6)) == "06 Dec 2026"


def test_a_message_names_the_field_by_its_label_and_the_time_in_the_labs_zone():
    excised = datetime(2026, 12, 6, 21, 40, tzinfo=UTC)
    error = invalid("stabilised_at", datetime(2026, 12, 6, 21, 27, tzinfo=UTC), "cannot be before Excised (06 Dec 2026 21:40)")
    assert str(error) == "Stabilised (06 Dec 2026 21:27 Europe/London) cannot be before Excised (06 Dec 2026 21:40)"
    assert error.field == "stabilised_at"  # the machine name stays for import reports and tests
    assert error.value == datetime(2026, 12, 6, 21, 27, tzinfo=UTC)
    assert error.reason == "cannot be before Excised (06 Dec 2026 21:40)"
    assert excised  # the reason above is what check_order writes for this pair


def test_a_reason_that_is_not_a_continuation_follows_a_colon():
    assert str(invalid("code", "X1", "lesion codes look like 'L01'")) == "Code (X1): lesion codes look like 'L01'"
    assert str(invalid("reason", "", "a correction needs a reason")) == "Reason: a correction needs a reason"


def test_numbers_read_with_separators_and_their_unit():
    assert str(invalid("quantity", 1e12, "is too much")) == "Quantity (1,000,000,000,000) is too much"
    assert str(invalid("size_mm", 600.0, "must be at most 500")) == "Size (600 mm) must be at most 500"
    assert str(invalid("tumour_cellularity_pct", 120, "must be at most 100")) == "Tumour cellularity (120 %) must be at most 100"
    assert shown(0.125) == "0.125"


def test_a_path_names_the_item_and_the_field():
    assert field_label("formats[2].stabilised_at") == "Format 2: Stabilised"
    assert field_label("portions[1]") == "Aliquot 1"
    message = str(invalid("formats[1].count", 999, "must be at most 50"))
    assert message == "Format 1: Pieces (999) must be at most 50"


def test_every_label_is_words_and_unknown_names_read_as_their_words():
    assert FIELD_LABELS["excised_at"] == "Excised"
    assert FIELD_LABELS["decalcification_hours"] == "Decalcification hours"
    assert field_label("site_code") == "Anatomical site"
    assert field_label("some_new_field") == "Some new field"
    assert field_label("latency_days") == "Latency"
    assert all(label and "_" not in label for label in FIELD_LABELS.values())


def test_a_form_label_carries_the_unit():
    assert form_label("size_mm") == "Size (mm)"
    assert form_label("target_depth") == "Target depth (x)"
    assert form_label("excised_at") == "Excised"
    assert unit_of("formats[1].quantity") is None
    assert unit_of("formats[1].decalcification_hours") is None


def test_the_error_is_still_a_validation_error_with_a_row():
    error = invalid("excised_at", None, "is required", row=7)
    assert isinstance(error, ValidationError)
    assert str(error) == "7: Excised is required" and error.row == 7
