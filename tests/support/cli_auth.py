"""Signing in for command-line tests, as ``biobank login`` would but without its password prompt (the fixture users
have no password): a personal token issued through the token service, then either stored in the token file of the
test's own config directory (``BIOBANK_CONFIG_DIR``), so ``--user NAME`` picks it as it would a real sign-in, or
handed to a child process as ``BIOBANK_TOKEN``.

In ``tests/cli`` the fixtures of ``tests/cli/conftest.py`` wrap these: ``cli_config_dir`` (autouse: every test gets
an empty config directory and no ``BIOBANK_TOKEN``/``BIOBANK_USER`` from the caller's shell) and ``cli_login``
(``cli_login("tech", "pi")``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from biobank.cli.credentials import TokenFile, database_key
from biobank.db.engine import make_engine, session_scope
from biobank.services import tokens
from biobank.services.auth import get_user

#: What the tests' tokens are called (``biobank tokens list`` shows it).
TOKEN_NAME = "tests"


def issue_cli_token(db_url: str, username: str, *, name: str = TOKEN_NAME) -> str:
    """A new personal token for ``username`` on the database at ``db_url`` (committed), for ``BIOBANK_TOKEN``."""
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as session:
            return tokens.issue_personal_token(session, user=get_user(session, username), name=name).token
    finally:
        engine.dispose()


def sign_in_cli(db_url: str, username: str, config_dir: Path | None = None) -> str:
    """``username`` signed in to ``db_url`` as after ``biobank login --user NAME``: a token issued and stored in the
    token file of ``config_dir`` (default: ``BIOBANK_CONFIG_DIR``). Returns the token."""
    token = issue_cli_token(db_url, username)
    TokenFile(config_dir).put(database_key(db_url), username, token)
    return token


def isolate_cli_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config directory of the test's own (``BIOBANK_CONFIG_DIR``), and no token or user from the caller's shell."""
    directory = tmp_path / "biobank-config"
    monkeypatch.setenv("BIOBANK_CONFIG_DIR", str(directory))
    monkeypatch.delenv("BIOBANK_TOKEN", raising=False)
    monkeypatch.delenv("BIOBANK_USER", raising=False)
    return directory


class CliLogin:
    """``cli_login("tech", "pi")`` signs each user in to the test's database; returns their tokens by name."""

    def __init__(self, db_url: str, config_dir: Path) -> None:
        self.db_url = db_url
        self.config_dir = config_dir

    def __call__(self, *usernames: str) -> dict[str, str]:
        return {name: sign_in_cli(self.db_url, name, self.config_dir) for name in usernames}
