"""The token file ``biobank login`` writes: one personal token per database and user name, readable by its owner only.

It lives in ``$BIOBANK_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/biobank``, else ``~/.config/biobank``, as ``tokens.json``
(mode 0600, in a directory of mode 0700). A database is named by its URL without the password (a SQLite file by
its absolute path), so one person may be signed in to several databases, and as several accounts on one. A file
that others could read is refused, as ssh refuses such a key: the tokens in it act as the person.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from biobank.domain.errors import PermissionDeniedError, ValidationError

FILE_NAME = "tokens.json"
LOCK_NAME = ".tokens.lock"
FORMAT_VERSION = 1


def config_dir() -> Path:
    """The directory the token file lives in (read from the environment at each call)."""
    explicit = os.environ.get("BIOBANK_CONFIG_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "biobank"


def database_key(url: str) -> str:
    """How the token file names the database of ``url``: the URL without its password and driver; a SQLite file by
    its absolute path (the same file, whatever the working directory)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            database = str(Path(database).expanduser().resolve())
        return f"sqlite:///{database}"
    return parsed.set(drivername=backend, password=None).render_as_string(hide_password=False)


class TokenFile:
    """Read and write the token file; every write replaces the file atomically under a lock."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else config_dir()
        self.path = self.directory / FILE_NAME

    # reading -----------------------------------------------------------------------------------------------

    def load(self) -> dict[str, dict[str, str]]:
        """Tokens by database key, then user name; empty when there is no file yet."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ValidationError(f"token file {self.path}: {exc.strerror or exc}", field="token_file") from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            mode = stat.S_IMODE(info.st_mode)
            raise PermissionDeniedError(
                f"token file {self.path} may be read by others (mode {mode:04o}): run 'chmod 600 {self.path}'",
                field="token_file",
            )
        try:
            with self._os_errors():
                text = self.path.read_text(encoding="utf-8")
            data = json.loads(text)
            tokens = data["tokens"]
            if not isinstance(tokens, dict) or not all(
                isinstance(users, dict) and all(isinstance(v, str) for v in users.values()) for users in tokens.values()
            ):
                raise TypeError("tokens")
        except (ValueError, KeyError, TypeError):
            raise ValidationError(
                f"token file {self.path} is damaged: remove it and run 'biobank login' again", field="token_file"
            ) from None
        return tokens

    def tokens_for(self, database: str) -> dict[str, str]:
        """The stored tokens for ``database`` (a :func:`database_key`), by user name."""
        return dict(self.load().get(database, {}))

    # writing -----------------------------------------------------------------------------------------------

    def put(self, database: str, username: str, token: str) -> str | None:
        """Store ``token`` for ``username`` on ``database``; returns the token it replaced, if any."""
        with self._locked(), self._os_errors():
            tokens = self.load()
            previous = tokens.setdefault(database, {}).get(username)
            tokens[database][username] = token
            self._write(tokens)
        return previous

    def remove(self, database: str, username: str) -> str | None:
        """Forget ``username``'s token on ``database``; returns it (None if there was none)."""
        with self._locked(), self._os_errors():
            tokens = self.load()
            removed = tokens.get(database, {}).pop(username, None)
            if removed is not None:
                if not tokens[database]:
                    del tokens[database]
                self._write(tokens)
        return removed

    @contextlib.contextmanager
    def _os_errors(self) -> Iterator[None]:
        """A directory or file the person cannot write is a one-line error, not a traceback."""
        try:
            yield
        except OSError as exc:
            raise ValidationError(f"token file {self.path}: {exc.strerror or exc}", field="token_file") from None

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)  # also when it existed with a wider mode

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Two logins at once must not lose one another's token: read, change and write under an exclusive lock."""
        import fcntl

        with self._os_errors():
            self._ensure_directory()
            descriptor = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing releases the lock

    def _write(self, tokens: dict[str, dict[str, str]]) -> None:
        """Write a new file (created 0600, never wider) and rename it over the old one."""
        partial = self.directory / f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump({"version": FORMAT_VERSION, "tokens": tokens}, handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(partial, 0o600)  # the umask can only narrow the mode; keep it exact
            os.replace(partial, self.path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
