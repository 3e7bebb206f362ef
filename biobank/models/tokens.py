"""Tokens that prove who runs the command line and, later, who calls the REST API.

A person signs in once with ``biobank login`` and gets a **personal** token; a pipeline, cron job or instrument gets
a **service** token that an administrator creates for a token-only service account. The table keeps only the token's
SHA-256 hash, its owner, an expiry and a revocation time; the rules live in :mod:`biobank.services.tokens`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, UniqueConstraint
from sqlmodel import Field, SQLModel

from biobank.db.engine import UTCDateTime
from biobank.models.base import utcnow


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    __table_args__ = (
        CheckConstraint("length(token_hash) = 64", name="token_hash_sha256"),
        CheckConstraint("expires_at > created_at", name="expires_after_start"),
        CheckConstraint("kind IN ('personal', 'service')", name="kind"),
        CheckConstraint("length(trim(name)) > 0", name="name_not_blank"),
        UniqueConstraint("user_id", "name"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    #: what the holder calls it ("laptop", "sequencing-pipeline"); unique per user
    name: str = Field(max_length=64)
    #: hex SHA-256 of the token; the token itself is shown once and never stored
    token_hash: str = Field(unique=True, max_length=64)
    #: personal (``biobank login``) or service (``biobank tokens create`` for a token-only account)
    kind: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: the administrator who created a service token (None for a personal one)
    created_by_id: int | None = Field(default=None, foreign_key="user_account.id")


class ApiIdempotencyKey(SQLModel, table=True):
    """The first successful response to a REST API write sent with an ``Idempotency-Key`` header, per user and key,
    so a client's retry (on any API worker, after a restart) is answered without writing again. Claimed in the
    write's own transaction (:mod:`biobank.api.common`); written with Core statements, outside the audit (the write it
    guards is audited); kept for ``BIOBANK_API_IDEMPOTENCY_HOURS``."""

    __tablename__ = "api_idempotency_key"
    __table_args__ = (
        CheckConstraint("length(fingerprint) = 64", name="fingerprint_sha256"),
        CheckConstraint("length(idempotency_key) > 0", name="key_not_empty"),
        UniqueConstraint("user_id", "idempotency_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", ondelete="CASCADE")
    #: the client's key, as sent
    idempotency_key: str = Field(max_length=200)
    #: hex SHA-256 of the method, path and body: the same key with another request is refused
    fingerprint: str = Field(max_length=64)
    #: the response's status and JSON body (None until the write that claimed the key has answered)
    status: int | None = Field(default=None)
    body: str | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
