"""Cached reads for the Cases page (short TTL: the death call and the case's day happen while people wait). Every
write goes through ``run_write``, which clears these and the board's caches, so a case opened or started here shows
on the live board at its next run."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import streamlit as st

from biobank.domain.errors import BiobankError
from biobank.labels.service import planned_labels, render
from biobank.queries import cohort
from biobank.services import cases
from dashboards.data.core import read_session


@st.cache_data(ttl=10, show_spinner=False)
def case_rows(url: str) -> list[dict[str, Any]]:
    with read_session(url) as session:
        return cases.case_rows(session)


@st.cache_data(ttl=10, show_spinner=False)
def call_checklist(url: str, case: str) -> list[dict[str, Any]]:
    with read_session(url) as session:
        return [asdict(item) for item in cases.call_checklist(session, case)]


@st.cache_data(ttl=60, show_spinner=False)
def planned_label_sheet(url: str, case: str) -> tuple[bytes | None, int, str]:
    """The case's pre-printed label sheet (PDF) and how many labels it holds, or None and why there is none."""
    with read_session(url) as session:
        try:
            items = planned_labels(session, case)
        except BiobankError as exc:
            return None, 0, str(exc)
        if not items:
            return None, 0, "every planned region of the case is collected: nothing to pre-print"
        return render(items, "cryotube"), len(items), ""


@st.cache_data(ttl=10, show_spinner=False)
def lesions_of(url: str, donor: str) -> list[dict[str, Any]]:
    """The donor's lesions (code, site, laterality, kind, size, regions sampled so far)."""
    with read_session(url) as session:
        return [
            {k: row[k] for k in ("lesion", "site", "laterality", "kind", "size_mm", "regions")}
            for row in cohort.donor_lesions(session, donor)
        ]
