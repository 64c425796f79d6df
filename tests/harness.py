"""The service in process on real local parts (a loopback feed farm, a webhook sink, a SQLite file) with a
clock the test moves: each `cycle()` is a new Service, a restart, as `monitor run --once` is."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy import event

from monitor.config import Config, load_config
from monitor.fetch import Fetcher
from monitor.service import CycleReport, DeliveryReport, Service, fetch_policy
from monitor.store.engine import open_engine, upgrade
from monitor.store.repo import Store
from monitor.store.retention import Pruned
from tests.servers import FeedFarm, WebhookSink

KEYWORDS = """\
schema = 1
[entities.karabakh]
kind = "place"
names = ["Karabakh", "Stepanakert"]
[[rules]]
id = "karabakh"
query = "@karabakh"
priority = "high"
"""


def rss(*items: tuple[str, str, datetime | None]) -> bytes:
    body = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>https://x.example/{guid}</link>"
        + (f"<pubDate>{format_datetime(when)}</pubDate>" if when else "")
        + "</item>"
        for guid, title, when in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>X</title>{body}</channel></rss>'.encode()


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Harness:
    def __init__(self, tmp_path: Path, farm: FeedFarm, sink: WebhookSink) -> None:
        self.dir = tmp_path / "config"
        self.dir.mkdir()
        self.db = f"sqlite:///{tmp_path}/monitor.db"
        self.farm, self.sink, self.clock = farm, sink, Clock()
        self.console: list[str] = []
        (self.dir / "keywords.toml").write_text(KEYWORDS)
        self.feeds(farm.url("/x.xml"))

    def feeds(self, *urls: str, backfill: str = "24h") -> None:
        listed = "".join(f'[[feeds]]\nurl = "{url}"\n' for url in urls)
        (self.dir / "feeds.toml").write_text(
            f'[defaults]\nbackfill = "{backfill}"\n[fetch]\nallow_private_addresses = true\n{listed}'
        )

    def channels(self, text: str) -> None:
        (self.dir / "channels.toml").write_text(text)

    def config(self) -> Config:
        return load_config(self.dir)

    async def _cycle(
        self, poll: bool, workers: int = 0, statements: list[str] | None = None
    ) -> tuple[CycleReport, DeliveryReport]:
        config = self.config()
        assert config.feeds is not None
        engine = open_engine(self.db)
        upgrade(engine)
        if statements is not None:
            event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        async with Fetcher(fetch_policy(config.feeds)) as fetcher:
            service = Service(
                config, Store(engine), fetcher, now=self.clock, console=self.console.append, workers=workers
            )
            try:
                report = await service.poll(every=True) if poll else CycleReport()
                return report, await service.deliver()
            finally:
                service.close()
                engine.dispose()

    def prune(self) -> Pruned:
        """One retention run by a new Service, as `monitor run` makes at start and hourly."""

        async def run() -> Pruned:
            config = self.config()
            assert config.feeds is not None
            engine = open_engine(self.db)
            upgrade(engine)
            async with Fetcher(fetch_policy(config.feeds)) as fetcher:
                service = Service(config, Store(engine), fetcher, now=self.clock, console=self.console.append)
                try:
                    return await service.prune()
                finally:
                    service.close()
                    engine.dispose()

        return asyncio.run(run())

    def cycle(
        self, poll: bool = True, workers: int = 0, statements: list[str] | None = None
    ) -> tuple[CycleReport, DeliveryReport]:
        """One poll and delivery by a new Service: a restart, as `monitor run --once` is."""
        return asyncio.run(self._cycle(poll, workers, statements))


SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "be", "do", "fu", "ga", "hi", "jo", "pe", "sa")


def headline(number: int, subject: str = "Karabakh") -> str:
    """A headline of its own: `subject` and invented words no other number's headline shares, so the story
    layer joins none of them and each alerts."""
    import random

    rng = random.Random(number)
    words = ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(3, 4))) for _ in range(6)]
    return f"{subject} {' '.join(w.capitalize() for w in words)}"
