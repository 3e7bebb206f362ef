"""Dashboard sign-in sessions kept on the server, so a browser reload does not sign anyone out.

The browser holds a random token in a cookie; the table holds only the token's SHA-256 hash, so a copy of the
database (a backup, a read-only role) cannot be replayed as a sign-in. The rules (idle and absolute expiry,
revocation) live in :mod:`biobank.services.sessions`.

The rows are written with Core statements, outside the audit hook: a session is touched as the user works, and an
audit row per touch would bury the log. What a person did is still audited (``user_account.last_login_at`` at
sign-in, ``is_active`` when an account is disabled and its sessions revoked).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint
from sqlmodel import Field, SQLModel

from biobank.db.engine import UTCDateTime
from biobank.models.base import utcnow


class UserSession(SQLModel, table=True):
    __tablename__ = "user_session"
    __table_args__ = (
        CheckConstraint("length(token_hash) = 64", name="token_hash_sha256"),
        CheckConstraint("expires_at > created_at", name="expires_after_start"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", ondelete="CASCADE", index=True)
    #: hex SHA-256 of the token the browser holds; the token itself is never stored
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    #: last recorded activity, for the idle expiry (written at most once a minute)
    last_seen_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    #: the absolute expiry, however active the session is
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    #: set by sign-out and by disabling the account; a revoked session never resumes
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: the browser's User-Agent at sign-in (shortened), to tell a user's sessions apart
    user_agent: str | None = Field(default=None, max_length=200)
