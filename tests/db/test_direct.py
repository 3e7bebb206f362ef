"""The bare driver connection of ``biobank specimen show`` (``biobank.db.direct``): it reads the database URL exactly
as the settings do (environment in any letter case, then ``.env``, then the default), opens only what it opens as
the engine would (anything else goes through the engine), reads in one transaction that writes nothing, and a
database it cannot use is one line from the command line, never a traceback."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from biobank.cli import app
from biobank.config import Settings
from biobank.db import direct

runner = CliRunner()


@pytest.fixture
def bare_environment(monkeypatch, tmp_path):
    """No BIOBANK_ variable in the environment, in a working directory of its own."""
    import os

    for name in list(os.environ):
        if name.lower().startswith("biobank_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("environment", "dotenv", "expected"),
    [
        ({}, None, "sqlite:///biobank.db"),
        ({"BIOBANK_DATABASE_URL": "sqlite:///from-env.db"}, None, "sqlite:///from-env.db"),
        ({"biobank_database_url": "sqlite:///lower-case.db"}, None, "sqlite:///lower-case.db"),
        ({}, "BIOBANK_DATABASE_URL=postgresql+psycopg://lab@db/biobank\n", "postgresql+psycopg://lab@db/biobank"),
        ({}, "# a comment\nbiobank_database_url='sqlite:///quoted.db'\nBIOBANK_TIMEZONE=UTC\n", "sqlite:///quoted.db"),
        ({"BIOBANK_DATABASE_URL": "sqlite:///env-wins.db"}, "BIOBANK_DATABASE_URL=sqlite:///dotenv.db\n",
         "sqlite:///env-wins.db"),
        ({"BIOBANK_DATABASE_URL": ""}, None, ""),
    ],
)
def test_the_url_is_the_one_the_settings_read(bare_environment, monkeypatch, environment, dotenv, expected):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if dotenv is not None:
        (bare_environment / ".env").write_text(dotenv)
    assert direct.configured_url() == expected
    assert Settings().database_url == expected


def test_its_defaults_are_the_settings_defaults(bare_environment):
    settings = Settings()
    assert (settings.database_url, settings.sqlite_busy_timeout_ms) == (direct.DEFAULT_URL, direct.DEFAULT_BUSY_TIMEOUT_MS)


def test_it_opens_what_the_engine_would_open_the_same_way_and_nothing_else(bare_environment, monkeypatch):
    database = bare_environment / "lab.db"
    sqlite3.connect(database).close()
    opened = direct.connect(f"sqlite:///{database}")
    assert isinstance(opened, sqlite3.Connection)
    opened.close()
    # left to the engine: a file that does not exist (no empty file made by a read), memory, URI options, other
    # drivers, and a busy timeout set in the environment (the engine applies it)
    for url in (f"sqlite:///{bare_environment / 'missing.db'}", "sqlite://", "sqlite:///:memory:",
                f"sqlite:///file:{database}?mode=ro&uri=true", "mysql://lab@db/biobank"):
        assert direct.connect(url) is None, url
    assert not (bare_environment / "missing.db").exists()
    monkeypatch.setenv("BIOBANK_SQLITE_BUSY_TIMEOUT_MS", "100")
    assert direct.connect(f"sqlite:///{database}") is None


def test_a_read_takes_no_write_lock_and_writes_nothing(db_url):
    with direct.reading(db_url) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT count(*) FROM specimen")
        before = cursor.fetchone()[0]
        cursor.close()
        if db_url.startswith("sqlite"):  # a writer does not wait for the read (deferred, not IMMEDIATE)
            writer = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("ROLLBACK")
            writer.close()
        assert connection.__class__.__module__.split(".")[0] in ("sqlite3", "psycopg")
    with direct.reading(db_url) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT count(*) FROM specimen")
        assert cursor.fetchone()[0] == before


def test_a_database_it_cannot_use_is_one_line(bare_environment, monkeypatch):
    empty = bare_environment / "empty.db"
    sqlite3.connect(empty).close()
    monkeypatch.setenv("BIOBANK_DATABASE_URL", f"sqlite:///{empty}")
    shown = runner.invoke(app, ["specimen", "show", "RA0001-L02A-SF1"])
    assert shown.exit_code == 2
    assert shown.output == "error: database: no such table: specimen (run 'biobank db upgrade' first?)\n"
    monkeypatch.setenv("BIOBANK_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    shown = runner.invoke(app, ["specimen", "show", "RA0001-L02A-SF1"])
    assert shown.exit_code == 2
    assert shown.output.startswith("error: database: connection failed") and shown.output.count("\n") == 1, shown.output


def test_what_it_does_not_open_is_read_through_the_engine(bare_environment, monkeypatch):
    database = bare_environment / "lab.db"
    with sqlite3.connect(database) as made:
        made.execute("CREATE TABLE reading (answer INTEGER)")
        made.execute("INSERT INTO reading VALUES (42)")
    monkeypatch.setenv("BIOBANK_SQLITE_BUSY_TIMEOUT_MS", "100")  # the engine applies it: this module steps aside
    url = f"sqlite:///{database}"
    assert direct.connect(url) is None
    with direct.reading(url) as connection:
        assert isinstance(connection, sqlite3.Connection) and connection.in_transaction
        assert connection.execute("SELECT answer FROM reading").fetchall() == [(42,)]
