"""Command-line tests here sign in as in tests/cli: a token file of the test's own, and ``cli_login``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli_auth import CliLogin, isolate_cli_config


@pytest.fixture(autouse=True)
def cli_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate_cli_config(tmp_path, monkeypatch)


@pytest.fixture
def cli_login(db_url: str, cli_config_dir: Path) -> CliLogin:
    return CliLogin(db_url, cli_config_dir)
