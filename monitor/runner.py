"""Assembles a running monitor from the config directory and the database URL: the composition root the
CLI commands call. It builds the parts (engine, store, fetcher, service), runs them, and prints results;
every decision stays in `service` and below.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from monitor.config import Config, load_config
from monitor.errors import ConfigError, MonitorError
from monitor.records import FetchResult

if TYPE_CHECKING:  # imported when the service starts, after its pollers (see `run`)
    from monitor.metrics import Metrics
    from monitor.service import Service
    from monitor.store.repo import Store

log = logging.getLogger("monitor.runner")
# Looking for due feeds is one indexed query: doing it every second keeps an item's wait for its poll
# within the feed's interval plus a second.
POLL_EVERY = 1.0
DELIVER_EVERY = 1.0
RELOAD_EVERY = 3.0
PRUNE_EVERY = 3600.0
"""Seconds between retention runs (the first at start)."""


def database_url(option: str | None) -> str:
    from monitor.store.engine import DEFAULT_URL

    return option or DEFAULT_URL


def upgrade_database(option: str | None) -> str:
    from monitor.store.engine import masked, open_engine, upgrade

    url = database_url(option)
    upgrade(open_engine(url))
    return f"database is up to date: {masked(url)}"


@contextmanager
def _single_instance(url: str) -> Iterator[None]:
    """Hold an exclusive lock beside a SQLite file: two services on one file would fight over it."""
    from monitor.store.engine import DatabaseError, open_engine

    engine_url = open_engine(url).url
    if engine_url.get_backend_name() != "sqlite" or not engine_url.database or engine_url.database == ":memory:":
        yield
        return
    path = Path(engine_url.database).expanduser().with_suffix(Path(engine_url.database).suffix + ".lock")
    # Owner-only, like the database beside it; held for the life of the service.
    handle: IO[str] = os.fdopen(os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600), "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DatabaseError(
            f"another `monitor run` is using {engine_url.database}: stop it first "
            "(several instances need PostgreSQL: set MONITOR_DATABASE_URL=postgresql+psycopg://...)"
        ) from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def parse_workers() -> int:
    """Poller processes (fetch, parse, match): one per core."""
    return os.cpu_count() or 1


def _open_store(url: str) -> Store:
    from monitor.store.engine import open_engine, upgrade
    from monitor.store.repo import Store

    engine = open_engine(url)
    upgrade(engine)
    store = Store(engine)
    if engine.dialect.name == "sqlite":
        store.release_leases()  # the lock proves no other instance holds them
    return store


def run(config_dir: Path, db: str | None, once: bool, metrics: tuple[str, int] | None = None) -> None:
    """`monitor run` and `monitor run --once`; `metrics`: (host, port) to serve /metrics and /healthz on."""
    config = load_config(config_dir)
    for warning in config.warnings:
        log.warning("config warning: %s", warning)
    opened: list[Store] = []
    with _metrics(metrics, opened) as counted:  # before anything starts: a port in use is a user's error
        if config.feeds is not None and config.feeds.feeds:
            from monitor.pollers import prestart

            prestart(parse_workers())  # they import while this process imports the rest and opens the database
        url = database_url(db)
        with _single_instance(url):
            store = _open_store(url)
            opened.append(store)
            if once:
                asyncio.run(_once(config, store, counted))
            else:
                asyncio.run(_forever(config_dir, config, store, counted))


@contextmanager
def _metrics(where: tuple[str, int] | None, opened: list[Store]) -> Iterator[Metrics | None]:
    """The metrics endpoint, when asked for; it reads the database once `opened` holds the store."""
    if where is None:
        yield None
        return
    from monitor.metrics import Metrics, MetricsServer
    from monitor.store.stats import database_problem, feed_status_counts

    metrics = Metrics()
    metrics.watch_feeds(lambda: feed_status_counts(opened[0].engine) if opened else {})
    host, port = where
    try:
        server = MetricsServer(
            metrics,
            host,
            port,
            lambda: database_problem(opened[0].engine) if opened else "the database is not open yet",
        ).start()
    except OSError as e:
        raise MonitorError(f"--metrics-port: cannot listen on {host}:{port} ({e.strerror})") from None
    log.info("metrics on http://%s:%d/metrics, health on /healthz", host, server.port)
    try:
        yield metrics
    finally:
        server.close()


def _console_alert(text: str) -> None:
    print(text, flush=True)


def start_service(config: Config, store: Store, console: Callable[[str], None] = _console_alert,
                  metrics: Metrics | None = None) -> Service:  # fmt: skip
    """The service `monitor run` runs: its pollers started, and everything loaded so far frozen out of the
    garbage collector. Modules, config and matcher live as long as the process; without the freeze, each
    full collection scanned them again (~1 s of the service's CPU in a first poll of 2,000 feeds)."""
    from monitor.clock import DatabaseClock
    from monitor.service import Service

    clock = DatabaseClock(store.database_time)
    clock.sync()
    service = Service(config, store, None, console=console, workers=parse_workers(), metrics=metrics, clock=clock)
    gc.freeze()
    return service


async def _once(config: Config, store: Store, metrics: Metrics | None) -> None:
    assert config.feeds is not None
    service = start_service(config, store, metrics=metrics)
    try:
        if sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            progress = Progress(TextColumn("polling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with progress:
                bar = progress.add_task("feeds", total=len(config.feeds.feeds))
                report = await service.poll(every=True, on_feed=lambda task, outcome: progress.advance(bar))
        else:
            report = await service.poll(every=True)
        deliveries = await service.deliver()
    finally:
        service.close()
    for feed, error in report.failures:
        print(f"failed: {feed}: {error}", file=sys.stderr)
    print(f"{report}; deliveries: {deliveries}")


async def _forever(config_dir: Path, config: Config, store: Store, metrics: Metrics | None) -> None:
    assert config.feeds is not None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    watcher = ConfigWatcher(config_dir)
    service = start_service(config, store, metrics=metrics)

    async def reload() -> None:
        failures = watcher.failures
        fresh = watcher.changed()
        if fresh is not None:
            service.reload(fresh)
            log.info("config reloaded", extra={"status": "ok"})
        if metrics is not None:
            metrics.reloads.inc(fresh is not None)
            metrics.reload_failures.inc(watcher.failures - failures)

    log.info(
        "monitor running: %d feeds, %d rules; Ctrl-C stops",
        len(config.feeds.feeds),
        len(config.watchlist.rules) if config.watchlist else 0,
    )
    try:
        from monitor.scheduler import serve

        await serve({"poll": (service.poll, POLL_EVERY), "deliver": (service.deliver, DELIVER_EVERY),
                     "reload": (reload, RELOAD_EVERY), "prune": (service.prune, PRUNE_EVERY)}, stop)  # fmt: skip
    finally:
        service.close()
    log.info("monitor stopped")


class ConfigWatcher:
    """Notices edited config files; applies them only once they are complete and valid (all-or-nothing)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.seen = self._stamp()
        self.failures = 0

    def _stamp(self) -> tuple[tuple[str, float, int], ...]:
        stamps = []
        for name in ("keywords.toml", "feeds.toml", "channels.toml"):
            try:
                stat = (self.directory / name).stat()
            except FileNotFoundError:
                continue
            stamps.append((name, stat.st_mtime, stat.st_size))
        return tuple(stamps)

    def changed(self) -> Config | None:
        stamp = self._stamp()
        if stamp == self.seen:
            return None
        # Debounce: an editor that truncates, then writes, shows two stamps; wait for a stable one.
        if any(datetime.now(UTC).timestamp() - mtime < 1.0 for _, mtime, _ in stamp):
            return None
        self.seen = stamp
        try:
            config = load_config(self.directory)
        except ConfigError as e:
            self.failures += 1
            for problem in e.problems:
                log.error("config not reloaded, the running one stays: %s", problem, extra={"status": "rejected"})
            return None
        for warning in config.warnings:
            log.warning("config warning: %s", warning)
        return config


def notify_test(config_dir: Path, channel: str | None) -> bool:
    config = load_config(config_dir, keywords=True, feeds=True)
    assert config.channels is not None
    if channel is not None and channel not in {c.id for c in config.channels}:
        raise MonitorError(
            f"no channel {channel!r} in channels.toml (channels: {', '.join(c.id for c in config.channels)})"
        )

    async def send() -> list[tuple[str, str, bool, str | None]]:
        from monitor.service import Service
        from monitor.store.engine import open_engine
        from monitor.store.repo import Store

        service = Service(config, Store(open_engine("sqlite://")), _NoFetch(), console=_console_alert)
        try:
            return [(c, target, r.ok, r.error) for c, target, r in await service.notify_test(channel)]
        finally:
            service.close()

    ok = True
    for cid, target, sent, error in asyncio.run(send()):
        print(f"{cid} {target}: {'sent' if sent else f'FAILED: {error}'}")
        ok &= sent
    return ok


class _NoFetch:
    async def fetch(self, url: str, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        raise AssertionError("notify-test fetches nothing")
