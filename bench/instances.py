"""Feeds polled per minute by 1, 2 and 4 `monitor run` instances on PostgreSQL, and one on SQLite, against one
loopback farm, in one run (issue 12).

    .venv/bin/python bench/instances.py [--feeds 1000] [--window 30] [--interval 30s]

Each setup gets a fresh database (a PostgreSQL database created on 127.0.0.1:5432 and dropped after, or a
SQLite file), runs `monitor db upgrade`, starts its instances as docker-compose does (`monitor run`, the same
environment), times the first poll of every feed until the database holds it (each feed brings 50 new items:
parsing, matching and storing them is the work that scales with instances and cores), then counts the farm's
requests over `--window` seconds and stops the instances with SIGTERM. After the first poll the feeds'
intervals bound the polls a minute (3,000 feeds every 30 s ask for 6,000), so that second figure shows every
setup keeping up, not its capacity. The farm (bench/farm.py) serves from its own process; its feeds answer 304
to a conditional request when unchanged, as most polls of a running service are. Prints both per setup and
the first poll's ratio to one instance on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycle import ROOT, cached_bytecode, monitor_revision, write_config
from farm import Farm

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def postgres() -> Iterator[str]:
    import psycopg

    name = f"monitor_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(
    farm: Farm, config: Path, database: str, instances: int, window: float, env: dict[str, str]
) -> tuple[float, float]:
    """Feeds per minute of `instances` processes on `database`: on the first poll of every feed (each brings
    50 new items: parsing and storing bound it), then polls per minute over `window` once they run."""
    env = {**env, "MONITOR_DATABASE_URL": database, "MONITOR_CONFIG_DIR": str(config)}
    subprocess.run([sys.executable, "-m", "monitor", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    farm.reset()
    command = [sys.executable, "-m", "monitor", "run", "--log-level", "ERROR"]
    quiet = subprocess.DEVNULL
    processes = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=quiet, stderr=quiet, start_new_session=True)
        for _ in range(instances)
    ]
    from sqlalchemy import create_engine, text

    engine = create_engine(database)
    try:
        began = time.monotonic()
        deadline = began + 900
        stored = 0
        while stored < farm.feeds and time.monotonic() < deadline:  # every feed's first poll, stored
            time.sleep(0.5)
            with engine.connect() as connection:
                stored = connection.execute(
                    text("SELECT count(*) FROM feed_state WHERE last_poll_at IS NOT NULL")
                ).scalar_one()
        first = time.monotonic() - began
        farm.counts()
        started = time.monotonic()
        time.sleep(window)
        counts = farm.counts()
        elapsed = time.monotonic() - started
        return farm.feeds * 60 / first, (counts.get("200", 0) + counts.get("304", 0)) * 60 / elapsed
    finally:
        engine.dispose()
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--window", type=float, default=30.0, help="seconds counted per setup after the first poll")
    parser.add_argument("--interval", default="30s", help="every feed's poll interval")
    args = parser.parse_args()
    print(cached_bytecode(), flush=True)  # sets PYTHONPYCACHEPREFIX for the processes started below
    env = dict(os.environ)
    rows: list[tuple[str, tuple[float, float]]] = []
    with tempfile.TemporaryDirectory(prefix="monitor-instances-") as tmp, Farm(args.feeds) as farm:
        config = Path(tmp) / "config"
        write_config(config, farm.urls, interval=args.interval)
        for instances in (1, 2, 4):
            print(f"{instances} instance(s) on PostgreSQL ...", flush=True)
            with postgres() as database:
                rows.append(
                    (f"{instances} on PostgreSQL", measure(farm, config, database, instances, args.window, env))
                )
        print("1 instance on SQLite ...", flush=True)
        rows.append(("1 on SQLite", measure(farm, config, f"sqlite:///{tmp}/monitor.db", 1, args.window, env)))
    demand = args.feeds * 60 / _seconds(args.interval)
    base = rows[0][1][0]
    print(f"\n{args.feeds:,} feeds every {args.interval} (the feeds ask for {demand:,.0f} polls a minute); ", end="")
    print(f"{os.cpu_count()} CPUs; monitor at {monitor_revision()}; {args.window:.0f} s counted per setup\n")
    print(f"{'instances':20}{'first poll, feeds/min':>24}{'x 1 on PostgreSQL':>20}{'then polls/min':>17}")
    for label, (first, steady) in rows:
        print(f"{label:20}{first:24,.0f}{first / base:19.2f}x{steady:17,.0f}")
    print("\n(after the first poll, the feeds' intervals bound the polls a minute, not the instances)")


def _seconds(interval: str) -> float:
    from monitor.config.units import parse_duration

    return parse_duration(interval).total_seconds()


if __name__ == "__main__":
    main()
