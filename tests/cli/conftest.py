"""Command-line tests sign in as people do: with a token (``tests/support/cli_auth.py``), never a bare name."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli_auth import CliLogin, isolate_cli_config


@pytest.fixture(autouse=True)
def cli_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every CLI test has a token file of its own (never the developer's ``~/.config/biobank``)."""
    return isolate_cli_config(tmp_path, monkeypatch)


@pytest.fixture
def cli_login(db_url: str, cli_config_dir: Path) -> CliLogin:
    """Signs users in to the test's database: ``cli_login("tech", "pi")``, then ``--user tech`` works."""
    return CliLogin(db_url, cli_config_dir)
