"""Cached reads of attachments (photos, reports) for the pages: the list of a record's or a donor's attachments, a
thumbnail, the full file.

Every loader takes the database URL first and the signed-in user's name second: what an attachment read returns
depends on the reader's role (consent forms and reports are for admins and PIs, a withdrawn donor's attachments for
admins only), so the name is part of the cache key and the service is asked as that user. Rows are plain dicts
(:func:`as_row`) so Streamlit can cache them.

A read the service refuses (a file whose hash no longer matches, a record hidden from the role) raises the project's
:class:`~biobank.domain.errors.BiobankError`; the widgets (:mod:`dashboards.widgets.attachments`) show it as a message.
"""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass
from typing import Any

import streamlit as st
from sqlmodel import Session, select

from biobank.models import User
from biobank.services import attachments as service
from dashboards.data.core import read_session

#: the kinds an attachment can be, in the service's order; photos are taken as this kind by default
KINDS: tuple[str, ...] = tuple(service.KINDS)
PHOTO_KIND = "gross_photo"
#: the kinds drawn as pictures (a thumbnail that opens the full image)
IMAGE_KINDS = frozenset({"gross_photo", "histology_image"})

#: the service's names for the records the pages attach to (the first of each alternative the service knows)
_ALTERNATIVES = {
    "donor": ("donor",),
    "case": ("case", "autopsy"),
    "lesion": ("lesion",),
    "site": ("site", "sampling_site", "region"),
    "specimen": ("specimen",),
}


def target(name: str) -> str:
    """The service's name for a kind of record (``"site"`` is the sampling site, a region)."""
    for candidate in _ALTERNATIVES.get(name, (name,)):
        if candidate in service.TARGETS:
            return candidate
    return name


def ref(kind: str, donor_code: str, code: str) -> str:
    """The code the service takes for a record: lesion and sampling-site codes are unique only within a donor, so
    they are named with it (``RA-0100:L01-A``)."""
    if kind in ("lesion", "site"):
        return service.target_code(target(kind), donor_code, code)
    return code


def short_code(code: str) -> str:
    """A record's own code, without any donor prefix the service puts on codes unique only within a donor
    (``RA-0100/L01-A`` → ``L01-A``)."""
    for separator in ("/", ":"):
        code = code.rsplit(separator, 1)[-1]
    return code


def as_row(info: Any) -> dict[str, Any]:
    """An :class:`AttachmentInfo` as a plain dict (cacheable, comparable)."""
    if is_dataclass(info) and not isinstance(info, type):
        row = asdict(info)
    elif hasattr(info, "model_dump"):
        row = info.model_dump()
    else:
        names = [f.name for f in fields(info)] if is_dataclass(info) else list(vars(info))
        row = {name: getattr(info, name) for name in names}
    row["target"] = str(row.get("target") or "")
    row["kind"] = str(row.get("kind") or "")
    row["state"] = str(row.get("state") or "")
    row["short_code"] = short_code(str(row.get("code") or ""))
    row["is_image"] = str(row.get("media_type") or "").startswith("image/")
    return row


def _actor(session: Session, username: str | None) -> User | None:
    if not username:
        return None
    return session.exec(select(User).where(User.username == username)).first()


@st.cache_data(ttl=30, show_spinner=False)
def attachments_of(url: str, username: str | None, kind: str, code: str) -> list[dict[str, Any]]:
    """The attachments of one record (``kind`` as :func:`target` takes it: donor, case, lesion, site, specimen)."""
    with read_session(url) as session:
        infos = service.list_attachments(session, actor=_actor(session, username), target=target(kind), code=code)
        return [as_row(info) for info in infos]


@st.cache_data(ttl=30, show_spinner=False)
def donor_attachments(url: str, username: str | None, donor_code: str) -> list[dict[str, Any]]:
    """Every attachment on the donor and its records (case, lesions, sites, specimens), each with its target."""
    with read_session(url) as session:
        infos = service.donor_attachments(session, actor=_actor(session, username), donor_code=donor_code)
        return [as_row(info) for info in infos]


@st.cache_data(ttl=300, show_spinner=False, max_entries=500)
def thumbnail(url: str, username: str | None, attachment_id: int) -> bytes:
    """The thumbnail of an image attachment (the hash checked on the way)."""
    with read_session(url) as session:
        _info, data = service.read_attachment(
            session, actor=_actor(session, username), attachment_id=attachment_id, thumbnail=True
        )
        return data


@st.cache_data(ttl=60, show_spinner=False, max_entries=20)
def full_file(url: str, username: str | None, attachment_id: int) -> bytes:
    """The whole file of an attachment (the hash checked on the way)."""
    with read_session(url) as session:
        _info, data = service.read_attachment(
            session, actor=_actor(session, username), attachment_id=attachment_id, thumbnail=False
        )
        return data


def photos_by_site(attachments: list[dict[str, Any]], sites: Any, specimens: Any = None) -> dict[str, list[dict[str, Any]]]:
    """The donor's image attachments grouped by sampling site code: a site's own, its lesion's (on every site of the
    lesion), and its specimens'. ``sites`` is the donor view's site table (``sampling_site``, ``lesion``);
    ``specimens`` its specimen table (``code``, ``sampling_site``), if any."""
    by_site: dict[str, list[dict[str, Any]]] = {}
    if sites is None or len(sites) == 0:
        return by_site
    site_codes = [str(c) for c in sites["sampling_site"]]
    lesion_of = dict(zip(site_codes, [None if v is None else str(v) for v in sites["lesion"]], strict=False)) \
        if "lesion" in sites else {}
    site_of_specimen: dict[str, str] = {}
    if specimens is not None and len(specimens) and {"code", "sampling_site"} <= set(specimens.columns):
        site_of_specimen = dict(zip(specimens["code"].astype(str), specimens["sampling_site"].astype(str), strict=False))
    site_target, lesion_target, specimen_target = target("site"), target("lesion"), target("specimen")
    for row in attachments:
        if not row["is_image"]:
            continue
        code = row["short_code"]
        if row["target"] == site_target and code in site_codes:
            wanted = [code]
        elif row["target"] == lesion_target:
            wanted = [s for s in site_codes if lesion_of.get(s) == code]
        elif row["target"] == specimen_target and str(row["code"]) in site_of_specimen:
            wanted = [site_of_specimen[str(row["code"])]]
        else:
            wanted = []
        for site in wanted:
            by_site.setdefault(site, []).append(row)
    return by_site
