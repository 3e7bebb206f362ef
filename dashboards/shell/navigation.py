"""The page registry: one line per page, grouped for the sidebar, with the roles that may open it.

A page module lives in ``dashboards/views/``. Add a page by appending a :class:`PageSpec` to ``PAGES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).resolve().parents[1] / "views"
ALL_ROLES = frozenset({"technician", "coordinator", "pi", "admin", "viewer"})


@dataclass(frozen=True)
class PageSpec:
    section: str
    module: str  # file name in dashboards/views without .py; also the url path
    title: str
    icon: str
    roles: frozenset[str] = ALL_ROLES
    default: bool = False


STAFF_WRITE = frozenset({"technician", "admin"})
REVIEW = frozenset({"pi", "admin"})

PAGES: list[PageSpec] = [
    PageSpec("Cohort", "home", "Home", ":material/home:", default=True),
    PageSpec("Cohort", "cohort", "Cohort overview", ":material/monitoring:", roles=REVIEW),
    PageSpec("Cohort", "donor", "Donor view", ":material/accessibility_new:"),
    PageSpec("Cohort", "enrolment", "Enrolment", ":material/how_to_reg:", roles=frozenset({"coordinator", "technician", "admin"})),
    PageSpec("Cohort", "specimen", "Specimen search", ":material/qr_code_scanner:"),
    PageSpec("Collection", "board", "Live autopsy board", ":material/timer:", roles=STAFF_WRITE),
    PageSpec("Collection", "cases", "Cases", ":material/event_note:", roles=frozenset({"coordinator", "technician", "admin", "pi"})),
    PageSpec("Material", "storage", "Storage", ":material/kitchen:"),
    PageSpec("Material", "specimens", "Specimen list", ":material/list_alt:"),
    PageSpec("Material", "processing", "Processing work list", ":material/science:", roles=STAFF_WRITE),
    PageSpec("Material", "distribution", "Distribution", ":material/local_shipping:"),
    PageSpec("Models", "derived", "Derived models", ":material/biotech:"),
    PageSpec("Analysis", "planner", "Planner", ":material/account_tree:"),
    PageSpec("Data", "import_data", "Import data", ":material/upload_file:", roles=STAFF_WRITE),
    PageSpec("Admin", "audit", "Audit log", ":material/history:", roles=frozenset({"admin"})),
    PageSpec("Admin", "users", "Users", ":material/manage_accounts:", roles=frozenset({"admin"})),
    PageSpec("Admin", "exports", "Exports", ":material/outbox:", roles=frozenset({"admin"})),
]


def build_pages(role: str | None = None) -> dict[str, list[st.Page]]:
    """The pages a role may open, by section (all pages when role is None: no sign-in configured yet)."""
    sections: dict[str, list[st.Page]] = {}
    for spec in PAGES:
        if role is not None and role not in spec.roles:
            continue
        page = st.Page(str(VIEWS / f"{spec.module}.py"), title=spec.title, icon=spec.icon, url_path=spec.module, default=spec.default)
        sections.setdefault(spec.section, []).append(page)
    return sections

