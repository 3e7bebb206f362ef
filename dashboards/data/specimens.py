"""Reads for the specimen list (cached, keyed by database URL) and the printable PDFs every page can offer.

The PDF builders are plain functions of the URL and the record: a page passes one to ``st.download_button`` as a
callable (``data=lambda: box_map_pdf(url, code)``), so the document is made when someone clicks, not on every
rerun, and always shows the database as it is at that moment. They raise :class:`~biobank.domain.errors.BiobankError`
for an unknown record, as the library does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd
import streamlit as st

from biobank import printables
from biobank.queries import specimens as specimen_reads
from dashboards.data.core import read_session

# -- the specimen list ---------------------------------------------------------------------------------------------


@st.cache_data(ttl=60, show_spinner=False)
def specimen_list(
    url: str,
    *,
    donor: tuple[str, ...] = (),
    case: tuple[str, ...] = (),
    site: tuple[str, ...] = (),
    storage_format: tuple[str, ...] = (),
    status: tuple[str, ...] = (),
    box: str | None = None,
    plan: str | None = None,
    collected_from: date | None = None,
    collected_to: date | None = None,
    limit: int | None = specimen_reads.DEFAULT_LIMIT,
) -> pd.DataFrame:
    """The specimens matching the filters (:func:`biobank.queries.specimens.specimen_list`), one row each."""
    with read_session(url) as session:
        rows = specimen_reads.specimen_list(
            session, donor=donor, case=case, site=site, storage_format=storage_format, status=status, box=box,
            plan=plan, collected_from=collected_from, collected_to=collected_to, limit=limit,
        )
    return pd.DataFrame(rows, columns=list(specimen_reads.LIST_COLUMNS))


@st.cache_data(ttl=60, show_spinner=False)
def filter_choices(url: str) -> dict[str, list[str]]:
    """What each filter of the specimen list offers (donors, cases, sites, containers, plans)."""
    with read_session(url) as session:
        return specimen_reads.filter_choices(session)


# -- printables: made on click, on the lab's paper -----------------------------------------------------------------


def box_map_pdf(url: str, box_code: str) -> bytes:
    """A box drawn as its grid with each code in its cell, then its contents (the storage page's download)."""
    with read_session(url) as session:
        return printables.box_map_pdf(session, box_code)


def box_labels_pdf(url: str, box_code: str, fmt: str = "cryotube") -> bytes:
    """Labels for every specimen in a box, in position order."""
    with read_session(url) as session:
        return printables.labels_pdf(session, box=box_code, fmt=fmt)


def order_pick_list_pdf(url: str, order_code: str) -> bytes:
    """The pick list of a distribution order: its items by freezer, rack, box and position, quantity to take."""
    with read_session(url) as session:
        return printables.pick_list_pdf(session, order=order_code)


def order_manifest_pdf(url: str, order_code: str) -> bytes:
    """The shipment manifest of a distribution order (items, consent note, signature lines)."""
    with read_session(url) as session:
        return printables.manifest_pdf(session, order_code)


def plan_pick_list_pdf(url: str, plan_code: str) -> bytes:
    """The pick list of an analysis plan's included specimens, with each one's role."""
    with read_session(url) as session:
        return printables.pick_list_pdf(session, plan=plan_code)


def selection_pick_list_pdf(url: str, codes: Sequence[str]) -> bytes:
    """The pick list of any specimens (the specimen list's selection)."""
    with read_session(url) as session:
        return printables.pick_list_pdf(session, codes=list(codes))


def selection_labels_pdf(url: str, codes: Sequence[str], fmt: str = "cryotube") -> bytes:
    """Reprinted labels for any specimens, in the order given."""
    with read_session(url) as session:
        return printables.labels_pdf(session, codes=list(codes), fmt=fmt)
