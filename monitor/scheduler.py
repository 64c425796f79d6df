"""APScheduler wiring, and the only module that imports apscheduler."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from monitor.errors import MonitorError

log = logging.getLogger("monitor.scheduler")

MAX_BACKOFF = 60.0
"""Seconds, at most, between runs of a job that keeps failing."""


def cron_problem(expression: str, timezone: str) -> str | None:
    """None when `expression` is a valid five-field crontab line in `timezone`, else why not."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expression, timezone=timezone)
    except ValueError as e:
        return f"schedule {expression!r} is not a valid cron line (minute hour day month weekday): {e}"
    return None


def next_fire(expression: str, timezone: str, after: datetime) -> datetime:
    """The first time after `after` that a five-field crontab line fires in `timezone`, as UTC."""
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(expression, timezone=timezone)
    fire = trigger.get_next_fire_time(None, after)
    assert fire is not None, "a valid crontab line always fires again"
    return fire.astimezone(UTC)  # type: ignore[no-any-return]


async def serve(
    jobs: dict[str, tuple[Callable[[], Awaitable[object]], float]],
    stop: asyncio.Event,
    drain_seconds: float = 30.0,
) -> None:
    """Run each job (name → (coroutine function, seconds between runs)) until `stop` is set.

    Each job is re-armed as a one-off when its run ends, so runs never overlap and APScheduler never has
    to skip one ("maximum number of running instances reached"). The scheduler keeps no state: due times
    live in the database. On stop, runs in progress get `drain_seconds` to finish.
    """
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    scheduler = AsyncIOScheduler(timezone=UTC, event_loop=asyncio.get_running_loop())
    running: set[asyncio.Task[object]] = set()
    failures: dict[str, int] = dict.fromkeys(jobs, 0)

    def arm(name: str, delay: float) -> None:
        if not stop.is_set():
            run_date = datetime.now(UTC) + timedelta(seconds=delay)
            scheduler.add_job(_runner(name), "date", run_date=run_date, id=name, replace_existing=True)

    def _runner(name: str) -> Callable[[], Awaitable[None]]:
        function, every = jobs[name]

        async def run() -> None:
            task = asyncio.current_task()
            if task is not None:
                running.add(task)
            delay = every
            try:
                await function()
                failures[name] = 0
            except Exception as e:  # one failed run must not stop the service
                failures[name] += 1
                # Failing runs back off, doubling to a minute: one line a minute for a full disk, not one a second.
                delay = min(max(every, 1.0) * 2 ** (failures[name] - 1), MAX_BACKOFF)
                if isinstance(e, MonitorError):
                    log.error("%s failed: %s (next try in %.0fs)", name, e, delay, extra={"status": "failed"})
                elif failures[name] == 1:
                    log.exception("%s failed (next try in %.0fs)", name, delay)  # a bug: its traceback, once
                else:
                    log.error("%s failed again: %s: %s", name, type(e).__name__, e, extra={"status": "failed"})
            finally:
                if task is not None:
                    running.discard(task)
                arm(name, delay)

        return run

    for name in jobs:
        arm(name, 0)
    scheduler.start()
    try:
        await stop.wait()
    finally:
        scheduler.pause()
        # Let runs in progress finish first: shutting the scheduler down cancels them.
        if running:
            await asyncio.wait(set(running), timeout=drain_seconds)
        scheduler.shutdown(wait=False)
