"""The command line: help for every command, JSON output, one-line errors with exit code 2."""

from __future__ import annotations

import json

import click
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from biobank.cli import app
from biobank.config import get_settings

runner = CliRunner()


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found.extend(_all_commands(command, path))
    return found


COMMANDS = _all_commands(get_command(app))  # type: ignore[arg-type]


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_has_help(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    command = get_command(app)
    for part in path:
        command = command.commands[part]  # type: ignore[attr-defined]
    assert (command.help or "").strip(), f"{' '.join(path)} has no help text"


def test_the_readme_mentions_every_top_level_command():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for path in COMMANDS:
        assert f"biobank {path[0]}" in readme, path


def test_workflow_through_the_cli(db_url, cli_login):
    assert runner.invoke(app, ["db", "current", "--json"]).exit_code == 0
    result = runner.invoke(app, ["users", "add", "alice", "--role", "admin", "--password", "a long password"])
    assert result.exit_code == 0, result.output
    cli_login("alice")
    result = runner.invoke(app, ["users", "add", "bob", "--role", "technician", "--user", "alice", "--password", "another long one"])
    assert result.exit_code == 0, result.output
    listed = json.loads(runner.invoke(app, ["users", "list", "--json"]).output)
    assert [(u["username"], u["role"]) for u in listed] == [("alice", "admin"), ("bob", "technician")]
    assert runner.invoke(app, ["users", "disable", "bob", "--user", "alice"]).exit_code == 0
    assert runner.invoke(app, ["users", "reset-password", "bob", "--user", "alice", "--password", "brand new secret"]).exit_code == 0


def test_the_first_account_must_be_an_admin(db_url):
    result = runner.invoke(app, ["users", "add", "bob", "--role", "viewer", "--password", "a long password"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: Role (viewer): the first account must be an admin")


def test_a_viewer_cannot_add_users(db_url, cli_login):
    runner.invoke(app, ["users", "add", "alice", "--role", "admin", "--password", "a long password"])
    cli_login("alice")
    runner.invoke(app, ["users", "add", "val", "--role", "viewer", "--user", "alice", "--password", "a long password"])
    cli_login("val")
    result = runner.invoke(app, ["users", "add", "eve", "--role", "admin", "--user", "val", "--password", "a long password"])
    assert result.exit_code == 2
    assert "role 'viewer'" in result.output and "Traceback" not in result.output


def test_demo_then_records_as_json(db_url, monkeypatch):
    monkeypatch.setenv("BIOBANK_DEMO_MODE", "true")
    get_settings.cache_clear()
    result = runner.invoke(app, ["demo", "--donors", "2", "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["donors"] == 2
    donors = json.loads(runner.invoke(app, ["donors", "list", "--json"]).output)
    assert [d["code"] for d in donors] == ["RA-0001", "RA-0002"]
    case = donors[0]["case"]
    summary = json.loads(runner.invoke(app, ["autopsy", "summary", case, "--json"]).output)
    assert summary["donor"] == "RA-0001" and summary["primary_specimens"] > 0
    assert summary["pmi_target_hours"] == 6.0
    table = runner.invoke(app, ["autopsy", "summary", case]).output
    assert "median_pmi_hours" in table
    code = "RA0001-L01A-SF1"
    shown = json.loads(runner.invoke(app, ["specimen", "show", code, "--json"]).output)
    assert shown["sprec"].startswith("TIS-A")
    assert shown["custody"][0]["kind"] == "collected"
    text = runner.invoke(app, ["specimen", "show", code]).output
    assert "custody history" in text and "lineage" in text
    again = runner.invoke(app, ["demo", "--if-empty"])
    assert again.exit_code == 0 and "not loaded" in again.output
    refused = runner.invoke(app, ["demo"])
    assert refused.exit_code == 2 and "empty database" in refused.output


@pytest.mark.parametrize(
    "args",
    [["specimen", "show", "NOPE"], ["autopsy", "summary", "NOPE"], ["donors", "show", "NOPE"]],
)
def test_unknown_codes_exit_2_with_one_line(db_url, args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and "not found" in result.output
    assert "Traceback" not in result.output


def test_an_unmigrated_database_is_a_clear_error(tmp_path, monkeypatch):
    from biobank.config import get_settings
    from biobank.db.engine import dispose_engines

    monkeypatch.setenv("BIOBANK_DATABASE_URL", f"sqlite:///{tmp_path / 'nothing.db'}")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["donors", "list"])
    finally:
        dispose_engines()
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "biobank db upgrade" in result.output
