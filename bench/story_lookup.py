"""The story lookup's cost per item with N stored items inside the story window: it must stay flat as history
grows (an index over the window, never a scan of the stories).

Fills a SQLite file with N synthetic alerting items (their `story_key` rows and sketches, as the service
stores them) spread over the 72-hour window, then stores 200 new alerting items one poll at a time through
`Store.record_poll` and times the story layer's share (`stories.assign`) and the whole record, per item.

    .venv/bin/python bench/story_lookup.py [--sizes 10000,1000000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from monitor.config import FeedSpec
from monitor.pipeline.normalize import fingerprint
from monitor.pipeline.stories import sketch
from monitor.records import Item, NewItem, PollOutcome, RuleMatch
from monitor.store import stories
from monitor.store.engine import open_engine, upgrade
from monitor.store.repo import Store
from monitor.store.tables import ITEM, STORY, STORY_KEY

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
WORDS = [f"w{i}" for i in range(3000)]  # synthetic vocabulary: unlisted words weigh like names
COMMON = ["the", "a", "of", "in", "on", "and", "to", "for", "as", "with", "says", "after", "over"]
FIRES = (RuleMatch("any", "normal", ()),)


def headline(rng: random.Random) -> tuple[str, str]:
    title = " ".join(rng.choice(WORDS) if rng.random() < 0.6 else rng.choice(COMMON) for _ in range(9))
    lede = " ".join(rng.choice(WORDS) if rng.random() < 0.5 else rng.choice(COMMON) for _ in range(25))
    return title, lede


def fill(store: Store, count: int, rng: random.Random) -> None:
    feeds = [f"https://feed{i}.example/rss" for i in range(50)]
    store.sync_feeds([FeedSpec(url, None, timedelta(minutes=10)) for url in feeds], NOW)
    batch = 20_000
    with store.engine.begin() as connection:
        for start in range(0, count, batch):
            stories_rows, items, keys = [], [], []
            for n in range(start, min(count, start + batch)):
                title, lede = headline(rng)
                at = NOW - timedelta(seconds=rng.uniform(0, 72 * 3600))
                made = sketch(title, lede)
                stories_rows.append({"id": n + 1, "title": title, "first_seen_at": at})
                items.append({"id": n + 1, "feed_id": 1 + n % 50, "key": f"k{n}", "url": None, "link": None,
                              "fingerprint": f"{n:032x}", "story_id": n + 1, "title": title, "summary": lede,
                              "content": "", "published_at": at, "seen_at": at, "silent": False,
                              "sketch": made.encode()})  # fmt: skip
                keys.extend({"key": key, "at": at, "item_id": n + 1} for key in made.keys)
            connection.execute(insert(STORY), stories_rows)
            connection.execute(insert(ITEM), items)
            connection.execute(insert(STORY_KEY), keys)


def measure(size: int, probes: int) -> tuple[float, float]:
    rng = random.Random(size)
    sketch("warm up", "the word weights load once per process")
    with tempfile.TemporaryDirectory() as folder:
        engine = open_engine(f"sqlite:///{folder}/lookup.db")
        upgrade(engine)
        store = Store(engine)
        started = time.perf_counter()
        fill(store, size, rng)
        print(f"  filled {size:,} items in {time.perf_counter() - started:.0f} s")
        assigned = 0.0
        original = stories.assign

        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal assigned
            begin = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                assigned += time.perf_counter() - begin

        stories.assign = timed  # type: ignore[assignment]
        try:
            began = time.perf_counter()
            for n in range(probes):
                title, lede = headline(rng)
                item = Item(f"probe:{n}", None, None, title, lede, "", NOW, fingerprint(title, lede))
                outcome = PollOutcome(1 + n % 50, "ok", new_items=(NewItem(item, FIRES, False),), entries=1)
                store.record_poll(outcome, None, NOW, lambda matches: [])
            total = time.perf_counter() - began
        finally:
            stories.assign = original  # type: ignore[assignment]
        engine.dispose()
        return assigned / probes * 1000, total / probes * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--probes", type=int, default=200)
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        lookup, whole = measure(size, args.probes)
        results.append((size, lookup, whole))
        print(f"{size:>10,} items in the window: story lookup {lookup:.2f} ms/item, whole record {whole:.2f} ms/item")
    if len(results) > 1:
        print(f"ratio largest/smallest: lookup {results[-1][1] / results[0][1]:.2f}x, "
              f"whole record {results[-1][2] / results[0][2]:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
