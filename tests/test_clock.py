"""Database time: instances on one PostgreSQL judge due polls and leases by the database's clock, so one whose
system clock runs ten minutes ahead takes no feed early and no live lease."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.clock import DatabaseClock
from monitor.config import load_config
from monitor.fetch import Fetcher
from monitor.service import FEED_LEASE, Service, fetch_policy
from monitor.store.engine import open_engine, upgrade
from monitor.store.repo import Store
from tests.servers import FeedFarm, Route, running
from tests.test_e2e import STORY_1, STORY_2, rss

SKEW = timedelta(minutes=10, seconds=5)


def _ahead() -> datetime:
    return datetime.now(UTC) + SKEW


async def _poll(config_dir: Path, store: Store, now: Callable[[], datetime] | None, clock: DatabaseClock | None,
                owner: str) -> int:  # fmt: skip
    config = load_config(config_dir)
    assert config.feeds is not None
    async with Fetcher(fetch_policy(config.feeds)) as fetcher:
        service = Service(config, store, fetcher, now=now or (lambda: datetime.now(UTC)), clock=clock,
                          console=lambda text: None, owner=owner)  # fmt: skip
        try:
            return (await service.poll()).polled
        finally:
            service.close()


def _store(database: str) -> Store:
    engine = open_engine(database)
    upgrade(engine)
    return Store(engine)


@pytest.fixture
def farm_config(tmp_path: Path) -> tuple[FeedFarm, Path]:
    farm = FeedFarm()
    for n in range(3):
        farm.routes[f"/{n}.xml"] = Route(rss([STORY_1, STORY_2], f"Outlet {n}"))
    config = tmp_path / "config"
    config.mkdir()
    (config / "keywords.toml").write_text('schema = 1\n[[rules]]\nid = "x"\nquery = "nothing"\n', encoding="utf-8")
    feeds = "".join(f'[[feeds]]\nurl = "{farm.url(f"/{n}.xml")}"\ninterval = "10m"\n\n' for n in range(3))
    (config / "feeds.toml").write_text("[fetch]\nallow_private_addresses = true\n\n" + feeds, encoding="utf-8")
    return farm, config


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_an_instance_ten_minutes_ahead_polls_nothing_early(farm_config: tuple[FeedFarm, Path], database: str) -> None:
    farm, config = farm_config
    store = _store(database)
    with running(farm):
        honest = DatabaseClock(store.database_time)
        honest.sync()
        assert asyncio.run(_poll(config, store, None, honest, "a")) == 3  # every feed, next due in 10 minutes
        skewed = DatabaseClock(store.database_time, system=_ahead)
        skewed.sync()
        assert abs((skewed() - datetime.now(UTC)).total_seconds()) < 5  # it tells the database's time
        assert asyncio.run(_poll(config, store, None, skewed, "b")) == 0
        # The same instance on its own clock would have polled them all again: the test sees a skew.
        assert asyncio.run(_poll(config, store, _ahead, None, "c")) == 3
    store.engine.dispose()


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_a_live_lease_holds_against_a_clock_ahead(farm_config: tuple[FeedFarm, Path], database: str) -> None:
    _, config = farm_config
    store = _store(database)
    loaded = load_config(config)
    assert loaded.feeds is not None
    store.sync_feeds(loaded.feeds.feeds, datetime.now(UTC))
    # An instance claims every feed and dies holding the leases (five minutes, by the database's time).
    assert len(store.claim_due(datetime.now(UTC), 10, FEED_LEASE, "dead-instance")) == 3
    skewed = DatabaseClock(store.database_time, system=_ahead)
    skewed.sync()
    assert store.claim_due(skewed(), 10, FEED_LEASE, "skewed", every=True) == []
    # Its own clock would have called the leases expired and taken the feeds.
    assert len(store.claim_due(_ahead(), 10, FEED_LEASE, "skewed", every=True)) == 3
    store.engine.dispose()


def test_sqlite_tells_the_system_time(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path}/monitor.db")
    clock = DatabaseClock(store.database_time)
    clock.sync()
    assert abs((clock() - datetime.now(UTC)).total_seconds()) < 1
    assert not clock.due()
    store.engine.dispose()
