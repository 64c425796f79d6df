"""The deployment files: docker-compose.yml as docker-compose resolves it, the Dockerfile's stages, and the
lock file, checked against the CLI they run. No image is built here (no registry of base images is
reachable); the image's health check command is run against a real `monitor run` instead."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from monitor.cli import app
from tests.conftest import MINIMAL_KEYWORDS, REPO

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"


def _cli_envvars() -> set[str]:
    """Every environment variable a `monitor` command reads, from the CLI itself."""
    found: set[str] = set()
    stack: list[Any] = [typer.main.get_command(app)]
    while stack:
        command = stack.pop()
        stack.extend(getattr(command, "commands", {}).values())
        for param in command.params:
            names = param.envvar if isinstance(param.envvar, list | tuple) else [param.envvar]
            found.update(n for n in names if n)
    return found


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """docker-compose.yml as `docker-compose config` resolves it, with .env.example as the .env."""
    tool = shutil.which("docker-compose")
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is required in CI (.ci/run installs Debian's package)")
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    folder = tmp_path_factory.mktemp("compose")
    shutil.copy(COMPOSE, folder / "docker-compose.yml")
    shutil.copy(REPO / ".env.example", folder / ".env")
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
    done = subprocess.run([tool, "config"], cwd=folder, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


def test_compose_runs_the_cli_it_ships_with(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"db", "migrate", "monitor"}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["monitor"]["command"] == ["run"]
    for command in (services["migrate"]["command"], services["monitor"]["command"]):
        done = subprocess.run([sys.executable, "-m", "monitor", *command, "--help"], cwd=REPO, capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)
    known = _cli_envvars()
    for name in ("migrate", "monitor"):
        environment = services[name]["environment"]
        assert {k for k in environment if k.startswith("MONITOR_")} <= known, name
        url = environment["MONITOR_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://monitor:") and "@db:5432/monitor" in url
        assert environment["MONITOR_CONFIG_DIR"] == "/config"
        assert any(v.endswith(":/config:ro") for v in services[name]["volumes"])
    # The instances start after the migration, which starts after the database answers.
    assert services["monitor"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert "healthcheck" in services["db"] and "pgdata" in compose["volumes"]
    assert services["monitor"]["deploy"]["replicas"] >= 2
    # The metrics port the instances serve is the one the image's health check asks.
    assert services["monitor"]["environment"]["MONITOR_METRICS_PORT"] == _dockerfile_env()["MONITOR_METRICS_PORT"]
    assert services["monitor"]["environment"]["MONITOR_METRICS_HOST"] == "0.0.0.0"
    # Secrets come from .env, which is never committed.
    assert ".env" in (REPO / ".gitignore").read_text().split()
    assert "POSTGRES_PASSWORD=" in (REPO / ".env.example").read_text()


def _dockerfile_env() -> dict[str, str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [(m.group(1), m.group(2).strip()) for m in re.finditer(r"^([A-Z]+)\s+(.*)$", text, re.MULTILINE)]


def test_dockerfile_builds_a_non_root_image_of_the_cli() -> None:
    steps = _instructions()
    stages = [arg for op, arg in steps if op == "FROM"]
    assert len(stages) == 2 and stages[0].endswith("AS build") and stages[1].endswith("AS runtime")
    assert all(s.startswith("python:3.11-slim") for s in stages)
    runtime = steps[[i for i, (op, _) in enumerate(steps) if op == "FROM"][1] :]
    assert ("COPY", "--from=build /venv /venv") in runtime
    user = [arg for op, arg in runtime if op == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert json.loads(dict(runtime)["ENTRYPOINT"]) == ["monitor"]
    assert json.loads(dict(runtime)["CMD"]) == ["run"]
    assert json.loads(dict(runtime)["VOLUME"]) == ["/config"]
    assert {k for k in _dockerfile_env() if k.startswith("MONITOR_")} <= _cli_envvars()
    build = steps[: [i for i, (op, _) in enumerate(steps) if op == "FROM"][1]]
    install = " ".join(arg for op, arg in build if op == "RUN")
    assert "-r requirements.lock" in install and "--no-deps ." in install


def test_the_lock_file_pins_every_dependency() -> None:
    pinned = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pinned[re.sub(r"[-_.]+", "-", name).lower()] = version
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in declared:
        name = re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]).lower()
        assert name in pinned, f"requirements.lock lacks {name}: remake it (see its first lines)"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_image_health_check_asks_a_running_service(tmp_path: Path) -> None:
    healthcheck = next(arg for op, arg in _instructions() if op == "HEALTHCHECK")
    probe = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert probe[0] == "python"
    command = [sys.executable, *probe[1:]]
    config = tmp_path / "config"
    config.mkdir()
    (config / "keywords.toml").write_text(MINIMAL_KEYWORDS, encoding="utf-8")
    port = str(_free_port())
    # As the image sets them: the config dir and the metrics port from the environment.
    env = {**os.environ, **_dockerfile_env(), "MONITOR_METRICS_PORT": port, "MONITOR_METRICS_HOST": "127.0.0.1",
           "MONITOR_CONFIG_DIR": str(config), "MONITOR_DATABASE_URL": f"sqlite:///{tmp_path}/monitor.db"}  # fmt: skip
    env["PATH"] = os.environ["PATH"]
    service = subprocess.Popen([sys.executable, "-m", "monitor", "run"], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and not ready:
            ready = subprocess.run(command, env=env, capture_output=True, timeout=10).returncode == 0
            time.sleep(0.3)
        assert ready, "the health check never passed"
    finally:
        service.terminate()
        _, err = service.communicate(timeout=30)
    assert service.returncode == 0, err
    assert subprocess.run(command, env=env, capture_output=True, timeout=10).returncode != 0
