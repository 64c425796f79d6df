"""Shared test helpers: config directories written on the fly, and the CLI run in-process or for real."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from tests.harness import Harness
from tests.servers import FeedFarm, WebhookSink, running

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

MINIMAL_KEYWORDS = """\
schema = 1

[entities.khankendi]
kind = "place"
names = ["Khankendi", "Stepanakert", "Xankəndi", "Степанакерт", "Ստեփանակերտ"]

[terms.violence]
words = ["shelling", "artillery", "mine blast", "casualt*", "antiterrorist operation*"]

[[rules]]
id = "karabakh-escalation"
query = '@khankendi AND (@violence OR "ceasefire violation") AND NOT "Grand Prix"'
priority = "urgent"
"""


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


WriteConfig = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write a config directory: keywords.toml (minimal unless given), and feeds/channels when given."""

    def write(keywords: str | None = MINIMAL_KEYWORDS, **files: str) -> Path:
        directory = tmp_path / "config"
        directory.mkdir(exist_ok=True)
        if keywords is not None:
            (directory / "keywords.toml").write_text(textwrap.dedent(keywords), encoding="utf-8")
        for name, text in files.items():
            (directory / f"{name}.toml").write_text(textwrap.dedent(text), encoding="utf-8")
        return directory

    return write


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
    """Run the CLI in-process (fast); a user error must come back as an exit code, never an exception."""
    result = CliRunner().invoke(app, list(args), input=stdin, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


def cli_process(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
    """Run `python -m monitor` as a real process, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database URL: a SQLite file, and a PostgreSQL database created for the test and dropped after.
    Without a reachable PostgreSQL the postgres case is skipped, except in CI, where it fails."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/monitor.db"
        return
    yield from postgres_database()


def postgres_database() -> Iterator[str]:
    import uuid

    import psycopg

    try:
        admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is required in CI: {e}")
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 not reachable: {e}")
    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """The service in process with a loopback farm, a webhook sink, a SQLite file and a clock to move."""
    farm, sink = FeedFarm(), WebhookSink()
    with running(farm, sink):
        yield Harness(tmp_path, farm, sink)
