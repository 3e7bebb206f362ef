"""AppTest harness reused by every page test: a fresh app on a given database, caches cleared."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from biobank.config import get_settings
from biobank.db.engine import dispose_engines

APP = str(Path(__file__).resolve().parents[2] / "dashboards" / "app.py")


def make_app(db_url: str, *, page: str | None = None, timeout: float = 30) -> AppTest:
    """An AppTest of the whole navigation app on ``db_url``; ``page`` is a url_path to switch to."""
    os.environ["BIOBANK_DATABASE_URL"] = db_url
    get_settings.cache_clear()
    dispose_engines()
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=timeout)
    if page is not None:
        at.switch_page(str(Path(APP).parent / "views" / f"{page}.py"))
    return at


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def click(at: AppTest, label: str) -> None:
    """Press the one button labelled ``label``, run the page again and check it raised nothing."""
    [button] = [b for b in at.button if b.label == label]
    button.click().run()
    assert_no_exception(at)
