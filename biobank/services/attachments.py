"""Attachments (issue 22): photos and documents on records, with their integrity and their privacy.

- **Who attaches**: whoever may enter data (``Action.enter``: technicians and administrators); a retraction is a
  correction (``Action.correct``), audited with its reason. Nothing is deleted.
- **What may be attached**: by content, never by name (:mod:`biobank.attachments.media`): JPEG, PNG, TIFF, WebP
  images (decoded first, then re-encoded from their pixels, so EXIF with GPS, device and time is gone; the original
  is kept only when ``attachment_keep_original`` says so, and is never read back by this module) and PDF documents,
  up to ``attachment_max_bytes``.
- **Where**: the bytes in a content-addressed store (:mod:`biobank.attachments.store`), written before the row and
  taken back when the attach or its transaction fails; the row holds the SHA-256, checked on every read.
- **Who sees what**: any signed-in user sees photos and other material; consent forms and pathology reports are
  identified material, for administrators and PIs only; a donor whose consent is withdrawn has every attachment
  hidden from everyone but administrators (:func:`biobank.queries.core.hidden_donors`); a retracted attachment is
  listed (with its state) to administrators only. Exports carry no attachments.

A record is named by its code: a donor, case, specimen, model, distribution order or plan by its own code; a lesion
or a sampling site by the donor's code and its own (``RA-0001:L01``, ``RA-0001:L01-A``; the compact form that starts
specimen codes, ``RA0001-L01``, ``RA0001-L01A``, works too); a passage by the model's code and its label
(``MOD-1:P2``). :func:`target_code` builds the first form.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, func
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from biobank.attachments import media
from biobank.attachments.store import FileStore, StoreIntegrityError, default_directory
from biobank.config import get_settings
from biobank.domain.errors import ConflictError, NotFoundError, PermissionDeniedError, invalid
from biobank.models import (
    AnalysisPlan,
    Attachment,
    Autopsy,
    DerivedModel,
    DistributionOrder,
    Donor,
    Lesion,
    ModelPassage,
    SamplingSite,
    Specimen,
    User,
)
from biobank.models.attachments import AttachmentKind, AttachmentState, AttachmentTarget
from biobank.models.audit import act_as, audit_reason
from biobank.models.base import pk, utcnow
from biobank.queries.core import hidden_donors
from biobank.services.auth import Action, require
from biobank.services.checks import check_order, not_in_future, require_aware
from biobank.services.lookup import by_code, typed_code

TARGETS = ("donor", "case", "lesion", "sampling_site", "specimen", "model", "passage", "distribution", "plan")
KINDS = ("gross_photo", "histology_image", "pathology_report", "consent_form", "manifest", "other")
#: Identified material: visible to administrators and PIs only, never exported.
IDENTIFIED_KINDS = frozenset({"consent_form", "pathology_report"})
IDENTIFIED_ROLES = frozenset({"admin", "pi"})
#: The order in which a bare code is tried when no target is given (the CLI's ``biobank attach CODE``).
GUESS_ORDER = ("specimen", "sampling_site", "lesion", "case", "donor")

assert tuple(t.value for t in AttachmentTarget) == TARGETS
assert tuple(k.value for k in AttachmentKind) == KINDS

CAPTION_LENGTH = 500
TAKEN_BY_LENGTH = 120
FILENAME_LENGTH = 255


class AttachmentIntegrityError(StoreIntegrityError):
    """An attachment whose stored file is missing or no longer matches its SHA-256."""


@dataclass(frozen=True)
class AttachmentInfo:
    """An attachment as callers see it (never the original's hash: the original is not for reading)."""

    id: int
    target: str
    code: str
    kind: str
    caption: str | None
    taken_at: datetime | None
    taken_by: str | None
    filename: str
    media_type: str
    size_bytes: int
    sha256: str
    state: str
    created_at: datetime
    created_by: str | None
    has_thumbnail: bool
    #: the donor the record falls under (None for an order or a plan)
    donor_code: str | None = None
    retracted_at: datetime | None = None
    retraction_reason: str | None = None

    @property
    def is_image(self) -> bool:
        return self.media_type.startswith("image/")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Target:
    """A record resolved from its code."""

    target: str
    record_id: int
    code: str
    donor_id: int | None
    donor_code: str | None
    #: an attachment of this record cannot have been taken before this time (collection, excision, death)
    not_before: tuple[str, datetime | None] = ("", None)


def target_code(target: str, code: str, part: str | None = None) -> str:
    """The code of a record as attachments name it: ``target_code("lesion", "RA-0001", "L01")`` is
    ``RA-0001:L01``; a record with a code of its own is named by it."""
    return f"{code}:{part}" if part else code


# ------------------------------------------------------------------------------------------------ the store


def store_for(session: Session) -> FileStore:
    """The store of the database ``session`` works on (``attachments_dir``, or the default beside it)."""
    return FileStore(default_directory(session.get_bind().engine.url))


_NEW_FILES = "_attachment_files_created"


def _created(session: Session, store: FileStore, sha256: str) -> None:
    session.info.setdefault(_NEW_FILES, []).append((str(store.root), sha256))


@event.listens_for(OrmSession, "after_commit")
def _keep_files(session: OrmSession) -> None:
    session.info.pop(_NEW_FILES, None)


@event.listens_for(OrmSession, "after_transaction_end")
def _drop_files_of_a_lost_transaction(session: OrmSession, transaction: SessionTransaction) -> None:
    """Files written for rows that were never committed are taken back: a failed attach leaves no file."""
    if transaction.parent is not None or transaction.nested:
        return
    for root, sha256 in session.info.pop(_NEW_FILES, []):
        FileStore(root).remove(sha256)


# ------------------------------------------------------------------------------------------ finding records


def _split(code: str) -> tuple[str, str] | None:
    for separator in (":", "/"):
        if separator in code:
            head, _, tail = code.partition(separator)
            return head.strip(), tail.strip()
    return None


def _compact(column: Any) -> Any:
    return func.upper(func.replace(func.replace(column, "-", ""), "_", ""))


def _donor_by_compact(session: Session, compact: str) -> Donor | None:
    rows = session.exec(select(Donor).where(_compact(col(Donor.code)) == compact.upper().replace("_", "")).limit(2)).all()
    return rows[0] if len(rows) == 1 else None


def _donor_code(session: Session, donor_id: int | None) -> str | None:
    if donor_id is None:
        return None
    donor = session.get(Donor, donor_id)
    return donor.code if donor is not None else None


def _not_found(target: str, code: str) -> NotFoundError:
    label = target.replace("_", " ")
    return NotFoundError(f"{label} {code!r} not found", field="code", value=code)


def _donor_part(session: Session, target: str, code: str) -> tuple[Donor, str]:
    """A lesion's or site's donor and own code, from ``DONOR:L01`` or the compact ``RA0001-L01``."""
    parts = _split(code)
    if parts is not None:
        donor = session.exec(select(Donor).where(func.upper(Donor.code) == parts[0].upper())).first()
        if donor is None or not parts[1]:
            raise _not_found(target, code)
        return donor, parts[1]
    head, dash, tail = code.partition("-")
    donor = _donor_by_compact(session, head) if dash else None
    if donor is None or not tail:
        raise _not_found(target, code)
    return donor, tail


def resolve_target(session: Session, target: str, code: str) -> Target:
    """The record ``code`` names as a ``target``; NotFoundError naming ``code`` when there is none."""
    if target not in TARGETS:
        raise invalid("target", target, f"must be one of: {', '.join(TARGETS)}")
    typed = typed_code(code)
    if not typed:
        raise invalid("code", code, "is empty: give the record's code")
    try:
        return _resolve(session, target, typed)
    except NotFoundError:
        raise _not_found(target, typed) from None


def _resolve(session: Session, target: str, code: str) -> Target:
    if target == "donor":
        donor = by_code(session, Donor, Donor.code, code, what="donor", field="code")
        return Target(target, pk(donor), donor.code, pk(donor), donor.code)
    if target == "case":
        autopsy = by_code(session, Autopsy, Autopsy.case_code, code, what="case", field="code")
        return Target(target, pk(autopsy), autopsy.case_code, autopsy.donor_id, _donor_code(session, autopsy.donor_id),
                      ("the death", autopsy.death_at))
    if target == "lesion":
        donor, own = _donor_part(session, target, code)
        lesion = by_code(session, Lesion, Lesion.code, own, what="lesion", field="code",
                         where=[Lesion.donor_id == donor.id])
        return Target(target, pk(lesion), target_code(target, donor.code, lesion.code), pk(donor), donor.code)
    if target == "sampling_site":
        donor, own = _donor_part(session, target, code)
        where = [SamplingSite.donor_id == donor.id]
        site = session.exec(select(SamplingSite).where(
            *where, _compact(col(SamplingSite.code)) == own.upper().replace("-", "").replace("_", ""))).first()
        if site is None:
            raise _not_found(target, code)
        return Target(target, pk(site), target_code(target, donor.code, site.code), pk(donor), donor.code,
                      ("the excision", site.excised_at))
    if target == "specimen":
        specimen = by_code(session, Specimen, Specimen.code, code, what="specimen", field="code")
        return Target(target, pk(specimen), specimen.code, specimen.donor_id,
                      _donor_code(session, specimen.donor_id), ("the collection", specimen.collected_at))
    if target == "model":
        model = by_code(session, DerivedModel, DerivedModel.code, code, what="model", field="code")
        return Target(target, pk(model), model.code, model.donor_id, _donor_code(session, model.donor_id))
    if target == "passage":
        parts = _split(code)
        if parts is None:
            head, dash, tail = code.rpartition("-")
            parts = (head, tail) if dash else None
        if parts is None:
            raise _not_found(target, code)
        model = by_code(session, DerivedModel, DerivedModel.code, parts[0], what="model", field="code")
        passage = by_code(session, ModelPassage, ModelPassage.label, parts[1], what="passage", field="code",
                          where=[ModelPassage.model_id == model.id])
        return Target(target, pk(passage), target_code(target, model.code, passage.label), model.donor_id,
                      _donor_code(session, model.donor_id))
    if target == "distribution":
        order = by_code(session, DistributionOrder, DistributionOrder.code, code, what="order", field="code")
        return Target(target, pk(order), order.code, None, None)
    plan = by_code(session, AnalysisPlan, AnalysisPlan.code, code, what="plan", field="code")
    return Target(target, pk(plan), plan.code, None, None)


def find_target(session: Session, target: str | None, code: str) -> Target:
    """The record ``code`` names: of ``target`` when given, else guessed (:func:`guess_target`)."""
    return guess_target(session, code) if target is None else resolve_target(session, target, code)


def guess_target(session: Session, code: str, order: Iterable[str] = GUESS_ORDER) -> Target:
    """The first record ``code`` names, trying ``order`` (specimen, sampling site, lesion, case, donor)."""
    tried = list(order)
    for target in tried:
        try:
            return resolve_target(session, target, code)
        except NotFoundError:
            continue
    raise NotFoundError(f"no {', '.join(t.replace('_', ' ') for t in tried)} has the code {typed_code(code)!r}",
                        field="code", value=typed_code(code))


# ------------------------------------------------------------------------------------------------ visibility


def _reader(actor: User | None, doing: str) -> User:
    if actor is None:
        raise PermissionDeniedError(f"{doing}: no user is signed in", field="user")
    if not actor.is_active:
        raise PermissionDeniedError(f"{doing}: user {actor.username!r} is disabled")
    return actor


def _hidden_donor_ids(session: Session, role: str) -> set[int]:
    """The donors whose attachments ``role`` never sees: the consent rule of :func:`hidden_donors`."""
    codes = hidden_donors(session, role)
    if not codes:
        return set()
    return {int(i) for i in session.exec(select(Donor.id).where(col(Donor.code).in_(codes))).all() if i is not None}


def _visible(row: Attachment, role: str, hidden: set[int]) -> bool:
    if role == "admin":
        return True
    if row.state != AttachmentState.active.value or (row.donor_id is not None and row.donor_id in hidden):
        return False
    return row.kind not in IDENTIFIED_KINDS or role in IDENTIFIED_ROLES


def _infos(session: Session, rows: list[Attachment]) -> list[AttachmentInfo]:
    users = {pk(u): u.username for u in session.exec(select(User).where(
        col(User.id).in_({r.created_by_id for r in rows if r.created_by_id is not None}))).all()} if rows else {}
    donors = {pk(d): d.code for d in session.exec(select(Donor).where(
        col(Donor.id).in_({r.donor_id for r in rows if r.donor_id is not None}))).all()} if rows else {}
    return [AttachmentInfo(
        id=pk(r), target=r.target, code=r.target_code, kind=r.kind, caption=r.caption, taken_at=r.taken_at,
        taken_by=r.taken_by, filename=r.filename, media_type=r.media_type, size_bytes=r.size_bytes, sha256=r.sha256,
        state=r.state, created_at=r.created_at, created_by=users.get(r.created_by_id) if r.created_by_id else None,
        has_thumbnail=r.thumbnail_sha256 is not None, donor_code=donors.get(r.donor_id) if r.donor_id else None,
        retracted_at=r.retracted_at, retraction_reason=r.retraction_reason,
    ) for r in rows]


def _info(session: Session, row: Attachment) -> AttachmentInfo:
    return _infos(session, [row])[0]


# ------------------------------------------------------------------------------------------------ writing


def _text(field: str, value: str | None, length: int) -> str | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    if len(text) > length:
        raise invalid(field, text, f"is {len(text):,} characters long; at most {length}")
    if any(ord(c) < 32 and c not in "\t\n" for c in text):
        raise invalid(field, text, "holds control characters")
    return text


def _filename(value: str) -> str:
    name = Path(str(value or "").replace("\\", "/")).name.strip()
    if not name:
        raise invalid("file", value, "has no file name")
    if len(name) > FILENAME_LENGTH:
        raise invalid("file", name, f"has a name of {len(name):,} characters; at most {FILENAME_LENGTH}")
    if any(ord(c) < 32 for c in name):
        raise invalid("file", name, "has control characters in its name")
    return name


def attach(
    session: Session,
    *,
    actor: User | None,
    target: str,
    code: str,
    data: bytes,
    filename: str,
    kind: str,
    caption: str | None = None,
    taken_at: datetime | None = None,
    taken_by: str | None = None,
    store: FileStore | None = None,
) -> AttachmentInfo:
    """Attach ``data`` (a file called ``filename``) to the record ``code`` of ``target``; see the module's rules.
    Writes the file(s) first and takes them back when anything fails, here or at the commit."""
    actor = require(actor, Action.enter)
    if kind not in KINDS:
        raise invalid("kind", kind, f"must be one of: {', '.join(KINDS)}")
    name = _filename(filename)
    caption = _text("caption", caption, CAPTION_LENGTH)
    taken_by = _text("taken_by", taken_by, TAKEN_BY_LENGTH)
    record = resolve_target(session, target, code)
    if record.donor_id is not None and record.donor_id in _hidden_donor_ids(session, actor.role):
        raise _not_found(target, typed_code(code))
    if taken_at is not None:
        require_aware("taken_at", taken_at)
        not_in_future("taken_at", taken_at)
        check_order(record.not_before[0], record.not_before[1], "taken_at", taken_at)
    settings = get_settings()
    accepted = media.accept(bytes(data), name, max_bytes=settings.attachment_max_bytes,
                            thumbnail_px=settings.attachment_thumbnail_px)
    store = store or store_for(session)
    written: list[str] = []

    def put(content: bytes) -> str:
        digest, created = store.put(content)
        if created:
            written.append(digest)
            _created(session, store, digest)
        return digest

    try:
        sha256 = put(accepted.data)
        thumbnail = put(accepted.thumbnail) if accepted.thumbnail is not None else None
        original = None
        if settings.attachment_keep_original and accepted.media_type.startswith("image/") and accepted.data != data:
            original = put(bytes(data))
        row = Attachment(
            target=record.target, record_id=record.record_id, target_code=record.code, donor_id=record.donor_id,
            kind=kind, caption=caption, taken_at=taken_at, taken_by=taken_by, filename=name,
            media_type=accepted.media_type, size_bytes=len(accepted.data), sha256=sha256, thumbnail_sha256=thumbnail,
            original_sha256=original,
        )
        act_as(session, actor)
        session.add(row)
        session.flush()
    except BaseException:
        for digest in written:
            store.remove(digest)
        raise
    return _info(session, row)


def retract(session: Session, *, actor: User | None, attachment_id: int, reason: str) -> AttachmentInfo:
    """Mark an attachment retracted (nothing is deleted), audited with ``reason``."""
    actor = require(actor, Action.correct)
    row = _visible_row(session, actor, attachment_id, for_update=True)
    text = _text("reason", reason, 500)
    if text is None:
        raise invalid("reason", reason, "is empty: say why the attachment is retracted")
    if row.state == AttachmentState.retracted.value:
        raise ConflictError(f"attachment {attachment_id} is already retracted", field="attachment",
                            value=attachment_id)
    act_as(session, actor)
    with audit_reason(session, text):
        row.state = AttachmentState.retracted.value
        row.retracted_at = utcnow()
        row.retracted_by_id = pk(actor)
        row.retraction_reason = text
        session.add(row)
    return _info(session, row)


# ------------------------------------------------------------------------------------------------ reading


def _visible_row(session: Session, actor: User, attachment_id: Any, *, for_update: bool = False) -> Attachment:
    try:
        number = int(attachment_id)
    except (TypeError, ValueError):
        raise invalid("attachment", attachment_id, "is not an attachment number") from None
    statement = select(Attachment).where(Attachment.id == number)
    if for_update:
        statement = statement.with_for_update()
    row = session.exec(statement).first() if -(2**63) < number < 2**63 else None
    if row is None or not _visible(row, actor.role, _hidden_donor_ids(session, actor.role)):
        raise NotFoundError(f"attachment {number} not found", field="attachment", value=number)
    return row


def list_attachments(session: Session, *, actor: User | None, target: str, code: str) -> list[AttachmentInfo]:
    """The attachments of one record the actor may see, oldest first."""
    actor = _reader(actor, "attachments")
    record = resolve_target(session, target, code)
    rows = session.exec(select(Attachment).where(Attachment.target == record.target,
                                                 Attachment.record_id == record.record_id)
                        .order_by(col(Attachment.id))).all()
    hidden = _hidden_donor_ids(session, actor.role)
    return _infos(session, [r for r in rows if _visible(r, actor.role, hidden)])


def donor_attachments(session: Session, *, actor: User | None, donor_code: str) -> list[AttachmentInfo]:
    """Everything attached anywhere under a donor (the donor, the case, lesions, sites, specimens, models and
    passages) that the actor may see, oldest first, each with its target and code."""
    actor = _reader(actor, "attachments")
    record = resolve_target(session, "donor", donor_code)
    rows = session.exec(select(Attachment).where(Attachment.donor_id == record.donor_id)
                        .order_by(col(Attachment.id))).all()
    hidden = _hidden_donor_ids(session, actor.role)
    return _infos(session, [r for r in rows if _visible(r, actor.role, hidden)])


def read_attachment(
    session: Session, *, actor: User | None, attachment_id: int, thumbnail: bool = False,
    store: FileStore | None = None,
) -> tuple[AttachmentInfo, bytes]:
    """An attachment and its bytes (or its thumbnail's, a JPEG), checked against the SHA-256 on every read: a
    missing or changed file is an :class:`AttachmentIntegrityError` naming the attachment."""
    actor = _reader(actor, "read attachment")
    row = _visible_row(session, actor, attachment_id)
    digest = row.thumbnail_sha256 if thumbnail else row.sha256
    if digest is None:
        raise NotFoundError(f"attachment {row.id} ({row.filename}) has no thumbnail", field="thumbnail",
                            value=row.id)
    store = store or store_for(session)
    what = f"attachment {row.id} ({row.target_code}, {row.filename}{', thumbnail' if thumbnail else ''})"
    try:
        data = store.get(digest, what=what)
    except StoreIntegrityError as exc:
        raise AttachmentIntegrityError(str(exc), field="attachment", value=row.id) from None
    return _info(session, row), data


def verify_store(session: Session, *, store: FileStore | None = None) -> list[str]:
    """Every attachment's files (the file, its thumbnail, a kept original) present and matching their SHA-256:
    the problems found, empty when all is well."""
    store = store or store_for(session)
    problems: list[str] = []
    for row in session.exec(select(Attachment).order_by(col(Attachment.id))).all():
        for label, digest in (("", row.sha256), ("thumbnail of ", row.thumbnail_sha256),
                              ("original of ", row.original_sha256)):
            if digest is None:
                continue
            problem = store.check(digest)
            if problem is not None:
                reason = problem.split(": ", 1)[-1]
                problems.append(f"{label}attachment {row.id} ({row.target_code}, {row.filename}): {reason}")
    return problems


# ------------------------------------------------------------------------------------- files named by codes

#: What a code in a file name may be followed by.
_NAME_BREAKS = "-_ .+()"


def match_file_name(session: Session, name: str, order: Iterable[str] = ("specimen", "sampling_site")) -> Target | None:
    """The record a file's name starts with (``RA0001-L01A-SF1_before.jpg``: the specimen; ``RA0001-L02B.jpg``:
    region B of lesion L02), the longest code first; None when it names nothing. ``order``: the targets tried."""
    stem = Path(name).name
    if "." in stem:
        stem = stem.rsplit(".", 1)[0]
    cuts = sorted({len(stem)} | {i for i, c in enumerate(stem) if c in _NAME_BREAKS and i > 0}, reverse=True)
    targets = list(order)
    for cut in cuts:
        prefix = stem[:cut].strip()
        if not prefix or any(c in prefix for c in " ()+"):
            continue
        for target in targets:
            try:
                return resolve_target(session, target, prefix)
            except NotFoundError:
                continue
    return None
