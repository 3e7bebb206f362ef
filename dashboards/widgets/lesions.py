"""Adding a lesion: one known from imaging before the autopsy (the Cases page, so its labels can be pre-printed) or
one found at the table (the live board). The next free code (L01, L02 ...) is given by the service."""

from __future__ import annotations

import streamlit as st
from sqlmodel import Session

from biobank.domain.sites import load_sites
from biobank.domain.vocab import Laterality, LesionKind
from biobank.models import User
from biobank.services import collection
from biobank.services.donors import get_donor
from biobank.services.inputs import LesionCreate
from dashboards.shell.actions import run_write


def add_lesion_form(donor_code: str, *, key: str, flash: str, title: str = "Add lesion") -> None:
    """The form (widgets keyed ``{key}_new_lesion_*``, so a refused submit keeps what was typed) and its write."""
    sites = {code: s.label for code, s in load_sites().items() if s.category not in {"blood"}}
    with st.form(f"{key}_add_lesion"):
        a, b, c = st.columns([3, 2, 2])
        site = a.selectbox("Site", list(sites), format_func=lambda code: f"{sites[code]} ({code})",
                           key=f"{key}_new_lesion_site")
        kind = b.selectbox("Kind", [k.value for k in LesionKind], index=1, format_func=lambda k: k.replace("_", " "),
                           key=f"{key}_new_lesion_kind")
        side = c.selectbox("Laterality", ["", *[v.value for v in Laterality]], key=f"{key}_new_lesion_side",
                           format_func=lambda v: v.replace("_", " ") or "(default)")
        d, e = st.columns([1, 3])
        # text, not a number widget: "abc" or "-3" reaches the service, which says what is wrong
        size = d.text_input("Size, mm (optional)", key=f"{key}_new_lesion_size")
        description = e.text_input("Description (optional)", key=f"{key}_new_lesion_description")
        add = st.form_submit_button(title, key=f"{key}_new_lesion_submit")
    if add:

        def write(session: Session, actor: User | None) -> str:
            code = collection.next_lesion_code(session, get_donor(session, donor_code))
            collection.add_lesion(session, actor=actor, data=LesionCreate.build(
                donor_code=donor_code, code=code, site_code=site, kind=kind, laterality=side or None,
                size_mm=size.strip() or None, description=description.strip() or None))
            return code

        run_write(write, flash=flash, success=lambda code: f"Lesion {code} added ({sites[site]}).")
