"""Links that can be bookmarked and shared: every donor, case, specimen, box, order and plan has a URL.

A record's URL is its page's path with one query parameter naming it (``/specimen?specimen=RAP-1-L01-A-SF1``). A
page reads the parameter to open that record (:func:`wanted`) and writes it back when the user picks another one
(:func:`remember`), so the address bar always holds a link to what is on screen. Opened signed out, the link is kept
through sign-in: signed out, every page's path shows the sign-in form (:mod:`dashboards.app`).
"""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

#: The query parameter of each kind of record, and the page (url path) that opens it.
PAGES: dict[str, str] = {
    "donor": "donor",
    "case": "donor",
    "specimen": "specimen",
    "box": "storage",
    "order": "distribution",
    "plan": "planner",
}


def url(kind: str, code: str) -> str:
    """The relative URL that opens record ``code`` of ``kind`` (one of :data:`PAGES`)."""
    return f"/{PAGES[kind]}?{urlencode({kind: code})}"


def wanted(kind: str) -> str | None:
    """The record the URL asks for (``?kind=code``), or None."""
    value = st.query_params.get(kind)
    return value.strip() or None if isinstance(value, str) else None


def remember(kind: str, code: str | None) -> None:
    """Put the record on screen into the address bar (or take the parameter away when nothing is chosen)."""
    if code:
        if st.query_params.get(kind) != code:
            st.query_params[kind] = code
    elif kind in st.query_params:
        del st.query_params[kind]


def index_of(options: list[str], kind: str, default: int = 0) -> int:
    """The position of the URL's record among a select box's options (``default`` when absent or not offered)."""
    code = wanted(kind)
    if code is None:
        return default
    for i, option in enumerate(options):
        if option == code or option.upper() == code.upper():
            return i
    return default

