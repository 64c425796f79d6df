"""Reliability, group F: several instances (RELIABILITY.md cases 46-50).

Covered elsewhere, with real processes on the local PostgreSQL:
- 46 (two, then four instances on one config: every story once per target, duplicate fetches under 1%) and
  47 (an instance SIGKILLed holding leases: its work taken over, nothing lost): tests/test_instances.py; each
  claim path's row locking: tests/test_store.py.
- 50 (clock skew: leases and due times in database time): tests/test_clock.py, and tests/test_instances.py with
  one instance ten minutes ahead. Moot on SQLite: one instance, the system's clock.
Moot by design: 48 (one scheduler among pre-forked workers): there is no pre-forked web server; every
`monitor run` is an instance, several of them need PostgreSQL (46), and a second one on a SQLite file
refuses to start (49, here).
Here: 49, and 50's digests at the right local time across a daylight-saving change.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.config import FeedSpec
from monitor.scheduler import next_fire
from monitor.store.engine import open_engine, upgrade
from monitor.store.repo import Store
from tests.conftest import REPO, cli_process
from tests.harness import Harness


def test_49_a_second_instance_on_one_sqlite_file_refuses_to_start(harness: Harness) -> None:
    running = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--config-dir", str(harness.dir), "--db",
                                harness.db], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        database = Path(harness.db.removeprefix("sqlite:///"))
        while not database.with_suffix(".db.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        second = cli_process("run", "--once", "--config-dir", str(harness.dir), "--db", harness.db)
    finally:
        running.send_signal(signal.SIGTERM)
        running.communicate(timeout=60)
    assert second.code != 0 and "Traceback" not in second.stderr
    [line] = second.stderr.strip().splitlines()
    assert "another `monitor run`" in line and "PostgreSQL" in line, line


def test_49_eight_writers_on_one_sqlite_file_never_see_database_is_locked(tmp_path: Path) -> None:
    """Eight threads, each with its own engine on one SQLite file, writing at once (feeds synced, claimed,
    leases released): every write waits its turn; none surfaces "database is locked"."""
    url = f"sqlite:///{tmp_path}/monitor.db"
    upgrade(open_engine(url))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def write(worker: int) -> None:
        engine = open_engine(url)
        store = Store(engine)
        start.wait()
        try:
            for round_ in range(25):
                specs = [
                    FeedSpec(f"https://w{worker}.example/{round_}/{n}", None, timedelta(minutes=10)) for n in range(4)
                ]
                store.sync_feeds(specs, now)
                store.claim_due(now, 4, timedelta(minutes=5), f"w{worker}")
                store.release_leases()
        except BaseException as e:
            errors.append(e)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors[:3]


def test_50_a_digest_keeps_its_local_hour_across_a_daylight_saving_change() -> None:
    """`0 8 * * *` in Europe/London: 08:00 local before and after the clocks go forward (07:00 UTC after)."""
    before = next_fire("0 8 * * *", "Europe/London", datetime(2026, 3, 28, 9, 0, tzinfo=UTC))
    after = next_fire("0 8 * * *", "Europe/London", before + timedelta(seconds=1))
    assert (before, after) == (datetime(2026, 3, 29, 7, 0, tzinfo=UTC), datetime(2026, 3, 30, 7, 0, tzinfo=UTC))
    autumn = next_fire("0 8 * * *", "Europe/London", datetime(2026, 10, 24, 9, 0, tzinfo=UTC))
    assert autumn == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)
