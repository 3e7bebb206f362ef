"""A content-addressed store of files: each file is named by the SHA-256 of its bytes (``ab/cd/abcd...``), written to
a temporary name and renamed into place (a reader never sees half a file), never changed afterwards, and checked
against its name on every read. A directory today; the same small interface (:meth:`put`, :meth:`get`,
:meth:`exists`, :meth:`check`) can sit on an S3-compatible bucket later.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from biobank.config import get_settings
from biobank.domain.errors import BiobankError

SHA256 = re.compile(r"^[0-9a-f]{64}$")


class StoreIntegrityError(BiobankError):
    """A stored file that is missing or whose bytes no longer match their SHA-256."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def default_directory(url: str | URL) -> Path:
    """Where the store of the database at ``url`` lives: the ``attachments_dir`` setting; else beside a SQLite file
    (``<stem>-attachments``); else ``./attachments``."""
    configured = get_settings().attachments_dir
    if configured is not None:
        return Path(configured).expanduser()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(str(parsed.database)).expanduser()
        return path.parent / f"{path.stem}-attachments"
    return Path("attachments")


class FileStore:
    """Files by SHA-256 under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        if not SHA256.match(sha256):
            raise StoreIntegrityError(f"{sha256!r} is not a SHA-256", field="sha256", value=sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes) -> tuple[str, bool]:
        """Store ``data``; returns its SHA-256 and whether this call created the file (False: it was there)."""
        digest = sha256_of(data)
        target = self.path(digest)
        if target.is_file() and sha256_of(target.read_bytes()) == digest:
            return digest, False
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return digest, True

    def remove(self, sha256: str) -> None:
        """Take back a file this process has just put (a failed attach); never used on committed files."""
        self.path(sha256).unlink(missing_ok=True)

    def get(self, sha256: str, *, what: str = "file") -> bytes:
        """The bytes stored under ``sha256``, checked against it."""
        target = self.path(sha256)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise StoreIntegrityError(f"{what}: the stored file {sha256[:12]}… is missing from {self.root}",
                                      field="attachment", value=sha256) from None
        if sha256_of(data) != sha256:
            raise StoreIntegrityError(f"{what}: the stored file {sha256[:12]}… is corrupt (its SHA-256 no longer "
                                      "matches)", field="attachment", value=sha256)
        return data

    def check(self, sha256: str) -> str | None:
        """None when the file is there and sound; else what is wrong."""
        try:
            self.get(sha256)
        except StoreIntegrityError as exc:
            return str(exc)
        return None

    def files(self) -> Iterator[tuple[str, Path]]:
        """Every stored file (SHA-256, path), in name order."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("??/??/*")):
            if path.is_file() and SHA256.match(path.name):
                yield path.name, path
