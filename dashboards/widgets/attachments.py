"""Attachments on the pages: a gallery of thumbnails that open the full image (:func:`gallery`), and the photo taken
at the table or a file uploaded (:func:`attach_photo`).

Reads go through :mod:`dashboards.data.attachments` as the signed-in user (what a role may see is the service's
rule); a read the service refuses, such as a file whose hash no longer matches, is one line on the page, never a
traceback. The upload goes through :func:`~dashboards.shell.actions.run_write`: one unit of work, the refusal (too
large, not an image, a corrupt file) shown in the service's words, which name the field, and nothing half-written.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import streamlit as st
from sqlmodel import Session

from biobank.config import get_settings
from biobank.domain.errors import BiobankError
from biobank.models import User
from biobank.services import attachments
from biobank.services.auth import Action, can
from dashboards.data import attachments as data_attachments
from dashboards.data import core as data
from dashboards.shell.actions import run_write, show_flash
from dashboards.shell.session import current_user, current_username

KIND_LABELS = {
    "gross_photo": "Gross photo",
    "histology_image": "Histology image",
    "pathology_report": "Pathology report",
    "consent_form": "Consent form",
    "manifest": "Manifest",
    "other": "Other",
}
CAMERA, UPLOAD = "Camera", "Upload a file"


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind.replace("_", " ").capitalize())


TARGET_LABELS = {"sampling_site": "region", "site": "region", "case": "case", "lesion": "lesion", "donor": "donor",
                 "specimen": "specimen"}


def describe(row: dict[str, Any], *, record: bool = False) -> str:
    """One line under a thumbnail: the kind (and with ``record`` the record it is on), the caption, when and by
    whom it was taken."""
    parts = [kind_label(row["kind"])]
    if record:
        parts[0] += f" of {TARGET_LABELS.get(row['target'], row['target'].replace('_', ' '))} {row['short_code']}"
    if row.get("caption"):
        parts.append(str(row["caption"]))
    taken = row.get("taken_at") or row.get("created_at")
    if isinstance(taken, datetime):
        moment = taken if taken.tzinfo else taken.replace(tzinfo=UTC)
        parts.append(moment.astimezone(get_settings().zone).strftime("%d %b %Y %H:%M"))
    if row.get("taken_by"):
        parts.append(f"by {row['taken_by']}")
    return " · ".join(parts)


def size_text(size: int | None) -> str:
    if size is None:
        return "—"
    return f"{size / 1024:.0f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"


def rows_or_message(load: Any, *args: Any) -> list[dict[str, Any]]:
    """``load(url, username, *args)`` (a :mod:`dashboards.data.attachments` loader); a refusal is one line on the
    page and no rows."""
    try:
        return list(load(data.url(), current_username(), *args))
    except BiobankError as exc:
        st.warning(f"Attachments: {exc}")
        return []


def gallery(rows: Sequence[dict[str, Any]], *, key: str, columns: int = 4, empty: str | None = "No attachments.",
            record: bool = False) -> None:
    """Thumbnails of the image attachments in ``rows`` (:mod:`dashboards.data.attachments` rows), each with an
    **Open** button that shows the full image below the gallery; other files (reports, forms) as a list with a
    download. Everything is inside a container keyed ``key`` (CSS class ``st-key-<key>``)."""
    url, username = data.url(), current_username()
    opened_key = f"{key}_opened"
    images = [r for r in rows if r["is_image"]]
    files = [r for r in rows if not r["is_image"]]
    with st.container(key=key):
        show_flash(f"{key}_flash")
        if not rows:
            if empty:
                st.caption(empty)
            return
        if images:
            grid = st.columns(columns)
            for i, row in enumerate(images):
                with grid[i % columns]:
                    _thumbnail(url, username, row, key=key, opened_key=opened_key, record=record)
        opened = next((r for r in images if r["id"] == st.session_state.get(opened_key)), None)
        if opened is not None:
            with st.container(border=True, key=f"{key}_full"):
                try:
                    content = data_attachments.full_file(url, username, int(opened["id"]))
                except BiobankError as exc:
                    st.error(f"{opened['filename']}: {exc}")
                else:
                    st.image(content, caption=f"{opened['filename']} · {describe(opened, record=True)}", width="stretch")
                    with st.container(horizontal=True):  # side by side where there is room, else one above the other
                        st.download_button("Download", content, opened["filename"], opened.get("media_type"),
                                           key=f"{key}_download_{opened['id']}", on_click="ignore")
                        st.button("Close", key=f"{key}_close", on_click=_set, args=(opened_key, None))
                    retract_form(opened, key=f"{key}_retract_{opened['id']}", flash=f"{key}_flash")
        for row in files:
            line = f"**{row['filename']}** · {describe(row, record=record)} · {size_text(row.get('size_bytes'))}"
            a, b = st.columns([5, 1])
            a.markdown(line)
            b.download_button("Download", _reader(url, username, int(row["id"])), row["filename"], row.get("media_type"),
                              key=f"{key}_download_{row['id']}", on_click="ignore")


def retract_form(row: dict[str, Any], *, key: str, flash: str) -> None:
    """For a user who may correct entries (technician, administrator): retract the attachment with a reason. Nothing
    is deleted; the attachment leaves the galleries and stays, retracted, in the administrators' list and the audit
    log."""
    with data.read_session() as session:
        may_correct = can(current_user(session), Action.correct)
    if not may_correct or row.get("state", "active") != "active":
        return
    with st.expander("Retract this file", icon=":material/block:"), st.form(key):
        reason = st.text_input("Reason", max_chars=500, key=f"{key}_reason",
                               placeholder="e.g. wrong region, photo of the wrong donor")
        if st.form_submit_button("Retract"):
            run_write(lambda s, u: attachments.retract(s, actor=u, attachment_id=int(row["id"]), reason=reason),
                      flash=flash, success=f"{row['filename']} retracted")


def _thumbnail(url: str, username: str | None, row: dict[str, Any], *, key: str, opened_key: str,
               record: bool = False) -> None:
    if row.get("has_thumbnail"):
        try:
            st.image(data_attachments.thumbnail(url, username, int(row["id"])), caption=describe(row, record=record), width="stretch")
        except BiobankError as exc:
            st.warning(f"{row['filename']}: {exc}")
            return
    else:
        st.caption(f"{row['filename']} (no thumbnail) · {describe(row, record=record)}")
    st.button("Open", key=f"{key}_open_{row['id']}", on_click=_set, args=(opened_key, row["id"]), type="tertiary",
              icon=":material/open_in_full:", help=f"Show {row['filename']} in full")


def _reader(url: str, username: str | None, attachment_id: int) -> Any:
    """The download's data, read when someone clicks (the hash checked then)."""

    def read() -> bytes:
        try:
            return data_attachments.full_file(url, username, attachment_id)
        except BiobankError:
            return b""

    return read


def _set(name: str, value: object) -> None:
    st.session_state[name] = value


def attach_photo(
    *,
    key: str,
    targets: Sequence[tuple[str, str, str, str]],
    flash: str,
    camera: bool = True,
    kinds: Sequence[str] = data_attachments.KINDS,
    default_kind: str = data_attachments.PHOTO_KIND,
) -> None:
    """Take a photo with the device camera (or upload a file) and attach it to one of ``targets``: tuples of
    (record kind as :func:`dashboards.data.attachments.target` takes it, code the service takes, label shown, caption
    to prefill). On a tablet: tap the shutter, tap **Attach photo**.

    Widgets are keyed ``{key}_*``; the file, kind and caption are cleared after a photo is attached.
    """
    if not targets:
        st.caption("Nothing to attach a photo to yet.")
        return
    counter = f"{key}_n"
    n = st.session_state.setdefault(counter, 0)
    by_label = {f"{kind}|{code}": (kind, code, label, caption) for kind, code, label, caption in targets}
    with st.container(key=key):
        # keyed by what is offered: when a region is recorded, the new choice (listed first) is the one chosen
        offered = hashlib.sha1("\n".join(by_label).encode()).hexdigest()[:8]
        chosen = st.selectbox("Photo of", list(by_label), format_func=lambda v: by_label[v][2],
                              key=f"{key}_target_{offered}")
        kind_name, code, label, prefill = by_label[chosen or next(iter(by_label))]
        source = UPLOAD
        if camera:
            source = st.segmented_control("Source", [CAMERA, UPLOAD], default=CAMERA, key=f"{key}_source",
                                          label_visibility="collapsed") or CAMERA
        scope = f"{chosen}_{n}"
        if source == CAMERA:
            shot = st.camera_input("Take a photo", key=f"{key}_camera_{scope}")
        else:
            # the browser refuses a file over the limit before sending it; the service checks again (and by content)
            limit_mb = max(1, math.ceil(get_settings().attachment_max_bytes / 1024 / 1024))
            shot = st.file_uploader("Photo or file", key=f"{key}_file_{scope}", max_upload_size=limit_mb,
                                    help="JPEG, PNG, TIFF or WebP photos; PDF reports. What a file is is read from "
                                         "its content, not its name.")
        a, b = st.columns([2, 3])
        kind = a.selectbox("Kind", list(kinds), index=list(kinds).index(default_kind) if default_kind in kinds else 0,
                           format_func=kind_label, key=f"{key}_kind_{scope}")
        digest = hashlib.sha1(prefill.encode()).hexdigest()[:8]  # a new prefill (the region label typed) shows
        caption = b.text_input("Caption", value=prefill, key=f"{key}_caption_{scope}_{digest}", max_chars=500)
        if not st.button("Attach photo", type="primary", key=f"{key}_submit_{scope}", icon=":material/add_a_photo:"):
            return
    if shot is None:
        st.error("file: take a photo or choose a file first.")
        return
    content, filename = shot.getvalue(), shot.name or "photo.jpg"
    taken_at = datetime.now(UTC) if source == CAMERA else None

    def attach(session: Session, actor: User | None) -> Any:
        return attachments.attach(
            session, actor=actor, target=data_attachments.target(kind_name), code=code, data=content,
            filename=filename, kind=kind or default_kind, caption=caption.strip() or None, taken_at=taken_at,
        )

    def fresh(_info: Any) -> None:
        st.session_state[counter] = n + 1  # an empty camera/uploader for the next photo

    run_write(attach, flash=flash, on_success=fresh,
              success=lambda info: f"{kind_label(str(info.kind))} {info.filename} attached to {label} "
                                   f"({size_text(info.size_bytes)}).")
