"""Command-line tests here sign in as in tests/cli: a token file of the test's own, and ``cli_login``."""

from tests.cli.conftest import cli_config_dir, cli_login

__all__ = ["cli_config_dir", "cli_login"]
