"""Reliability, group E: crashes, restarts and stuck work (RELIABILITY.md cases 39-45).

Covered elsewhere: 39 (SIGKILL after the commit, before the send: sent once after restart) in
tests/test_e2e.py; 49 (a second instance on one SQLite file refuses to start) in tests/test_e2e.py.
Moot by design: 43 (a persistent job store and its ConflictingIdError): the scheduler holds three
in-memory jobs re-armed each run; due times and leases live in the database.
Here: 40, killed after the target accepted; 44, a poller that stops answering while it holds jobs; 45, a
full disk (SQLite's page limit stands in for the filesystem: the error SQLite gives is the same).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest

from monitor import policy, pollers
from monitor.fetch import Fetcher
from monitor.service import Service, fetch_policy
from monitor.store.engine import open_engine, upgrade
from monitor.store.repo import Store
from tests.conftest import REPO, cli_process
from tests.harness import Harness, headline, rss
from tests.servers import Route


def test_44_a_poller_that_stops_answering_is_replaced_and_polling_goes_on(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One poller process is stopped (SIGSTOP) while it holds jobs: once it has been silent longer than a poll
    may take, the watchdog kills it; its feeds fail this cycle with a watchdog message, the others succeed,
    and the next cycle, on a new poller, polls every feed. (The read allowance is cut to 2 s here, so the test
    waits seconds, not a minute.)"""
    monkeypatch.setattr(policy, "READ_ALLOWANCE", timedelta(seconds=2))
    monkeypatch.setattr(pollers, "WATCH_EVERY", 0.5)
    paths = [f"/f{n}.xml" for n in range(6)]
    for n, path in enumerate(paths):
        harness.farm.routes[path] = Route(rss((f"s{n}", headline(n), harness.clock.now)), delay=2.0)
    harness.feeds(*(harness.farm.url(p) for p in paths))
    (harness.dir / "feeds.toml").write_text(
        (harness.dir / "feeds.toml").read_text().replace("[fetch]\n", '[fetch]\ntimeout = "4s"\n')
    )

    async def cycles() -> tuple[list[str | None], int, int]:
        config = harness.config()
        assert config.feeds is not None
        engine = open_engine(harness.db)
        upgrade(engine)
        async with Fetcher(fetch_policy(config.feeds)) as fetcher:
            service = Service(config, Store(engine), fetcher, now=harness.clock, console=harness.console.append,
                              workers=2)  # fmt: skip
            try:
                first = asyncio.ensure_future(service.poll(every=True))
                await asyncio.sleep(1.0)  # every job sent, each poller waiting on the farm's 2 s answers
                assert service._pollers is not None
                stopped = service._pollers.pids()[0]
                os.kill(stopped, signal.SIGSTOP)
                report = await asyncio.wait_for(first, 60)
                errors = [error for _, error in report.failures]
                harness.clock.now += timedelta(hours=1)
                again = await asyncio.wait_for(service.poll(every=True), 60)
                return errors, report.polled, again.polled - again.failed
            finally:
                service.close()
                engine.dispose()

    errors, polled, second_ok = asyncio.run(cycles())
    assert polled == 6 and 1 <= len(errors) < 6, errors
    assert all("watchdog" in (e or "") for e in errors), errors
    assert second_ok == 6


def test_40_killed_after_the_target_accepted_the_resend_carries_the_same_key(harness: Harness) -> None:
    """`monitor run --once` is SIGKILLed the moment the webhook has accepted its message, before the service
    records it as sent: the next run sends it again (at least once) under the same idempotency key, so an
    idempotent target keeps one, and says in its log that it is resending an interrupted send."""
    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n')
    harness.farm.routes["/x.xml"] = Route(rss(("s1", headline(1), harness.clock.now)))
    args = ["run", "--once", "--config-dir", str(harness.dir), "--db", harness.db]
    first = subprocess.Popen([sys.executable, "-m", "monitor", *args], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    harness.sink.on_receive = lambda received: os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=120)
    assert first.returncode == -signal.SIGKILL
    harness.sink.on_receive = None
    second = cli_process(*args)
    assert second.code == 0, second.stderr
    assert len(harness.sink.received) == 2 and len(harness.sink.keys) == 1, harness.sink.keys
    assert "resending what an interrupted send may have delivered" in second.stderr
    assert cli_process("run", "--once", *args[2:]).code == 0 and len(harness.sink.received) == 2  # recorded now


def test_40_a_digest_sent_again_carries_the_same_key(harness: Harness) -> None:
    harness.channels(
        f'[channels.desk]\nurls = ["{harness.sink.url()}"]\nmode = "digest"\nschedule = "0 * * * *"\ntimezone = "UTC"\n'
    )
    harness.farm.routes["/x.xml"] = Route(rss(*((f"s{n}", headline(n), harness.clock.now) for n in range(3))))
    harness.cycle()
    harness.sink.fail_next = 1
    harness.clock.now += timedelta(hours=1)
    harness.cycle(poll=False)
    harness.clock.now += timedelta(hours=1)
    harness.cycle(poll=False)
    assert len(harness.sink.refused) == 1 and len(harness.sink.received) == 1
    assert harness.sink.refused[0][1] == next(iter(harness.sink.keys)) != ""


def test_45_a_full_disk_is_one_line_loses_nothing_and_polling_resumes(harness: Harness) -> None:
    """The database cannot grow: the poll fails with one line naming the cause, its transaction rolls back
    whole (nothing stored, so nothing sent), and once there is room the next poll stores and alerts it all."""
    import sqlite3

    from sqlalchemy import event

    from monitor.store.engine import DatabaseError

    harness.channels(f'[channels.desk]\nurls = ["{harness.sink.url()}"]\n')
    harness.farm.routes["/x.xml"] = Route(rss(("s0", headline(0), harness.clock.now)))
    harness.cycle()
    with sqlite3.connect(harness.db.removeprefix("sqlite:///")) as db:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    big = " ".join(["lorem ipsum dolor"] * 100)
    items = [(f"s{n}", f"{headline(n)} {big}", harness.clock.now) for n in range(1, 120)]
    harness.farm.routes["/x.xml"] = Route(rss(*items))

    async def full() -> str:
        config = harness.config()
        assert config.feeds is not None
        engine = open_engine(harness.db)
        event.listen(engine, "connect", lambda connection, _: connection.execute(f"PRAGMA max_page_count = {pages}"))
        async with Fetcher(fetch_policy(config.feeds)) as fetcher:
            service = Service(config, Store(engine), fetcher, now=harness.clock, console=harness.console.append)
            try:
                await service.poll(every=True)
            except DatabaseError as e:
                return str(e)
            finally:
                service.close()
                engine.dispose()
        return "no error"

    error = asyncio.run(full())
    assert error == "the database refused a write or read: database or disk is full", error
    assert len(harness.sink.received) == 1
    harness.clock.now += timedelta(minutes=10)
    report, delivered = harness.cycle()
    assert (report.new_items, report.alerts, delivered.sent) == (119, 119, 119)


def test_45_a_job_that_keeps_failing_backs_off_with_one_line_each(caplog: pytest.LogCaptureFixture) -> None:
    """The scheduler's answer to a run that fails for a reason the operator can fix: one line, no traceback,
    and runs spaced out, doubling, instead of one every tick."""
    from monitor.errors import MonitorError
    from monitor.scheduler import serve

    runs: list[float] = []

    async def failing() -> None:
        runs.append(asyncio.get_running_loop().time())
        raise MonitorError("the database refused a write or read: database or disk is full")

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.6, stop.set)
        await serve({"poll": (failing, 0.05)}, stop)

    asyncio.run(main())
    assert 2 <= len(runs) <= 7, len(runs)  # 0.05 s apart without the backoff: some thirty runs
    lines = [r for r in caplog.records if r.name == "monitor.scheduler"]
    assert lines and all(r.exc_info is None and "disk is full" in r.getMessage() for r in lines)
