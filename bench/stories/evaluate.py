"""How the story layer does on real coverage, as a desk lives it.

Every item of `../shared/corpus/karabakh/items_*.json` goes through the service's own store, one poll per item
in publication order (the clock set to each item's publication time), into a fresh SQLite file, as if each
fired a rule: so all four dedup layers run exactly as in `monitor run`. Then the stories the service formed
are compared with hand labels (`labels.jsonl`):

- **missed stories**: labelled stories whose first item was folded into another story, so never alerted;
- **joined**: the share of a labelled story's later items that joined the story its first item began;
- **extra alerts**: later items that began a story of their own (one extra message each);
- **pair precision and recall** over the labelled pairs (same story / different story), hard negatives
  (different stories sharing names, places or a template) counted apart.

Labels (JSON Lines): `{"story": ID, "links": [link, ...]}` names the items of one story (every other item
is a story of its own); `{"pair": [link, link], "same": bool, "hard": bool, "note": "..."}` a labelled
pair. Items are known by their link.

    .venv/bin/python bench/stories/evaluate.py [--labels FILE] [--corpus DIR] [--show]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import CORPUS, CorpusItem, load

from monitor.config import FeedSpec
from monitor.pipeline.normalize import normalize
from monitor.pipeline.stories import StoryPolicy
from monitor.records import Entry, NewItem, PollOutcome, RuleMatch
from monitor.store.engine import open_engine, upgrade
from monitor.store.repo import Store
from monitor.store.tables import FEED, ITEM

HERE = Path(__file__).resolve().parent
FIRES = (RuleMatch("any", "normal", ()),)


def read_labels(path: Path) -> tuple[list[list[str]], list[dict[str, object]]]:
    stories: list[list[str]] = []
    pairs: list[dict[str, object]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "story" in row:
            stories.append(list(row["links"]))
        elif "pair" in row:
            pairs.append(row)
        else:
            raise SystemExit(f"{path}:{number}: neither a story nor a pair")
    return stories, pairs


def run_service(items: list[CorpusItem], policy: StoryPolicy) -> dict[str, int]:
    """Store every item through the service's store; return the story the service gave each link."""
    with tempfile.TemporaryDirectory() as folder:
        engine = open_engine(f"sqlite:///{folder}/stories.db")
        upgrade(engine)
        store = Store(engine)
        feeds = sorted({item.feed for item in items})
        store.sync_feeds([FeedSpec(url, None, policy.window) for url in feeds], items[0].published)
        with engine.connect() as connection:
            feed_ids = {url: int(i) for i, url in connection.execute(select(FEED.c.id, FEED.c.config_url))}
        for item in items:
            entry = Entry(item.link, item.link, item.title, item.summary, "", item.published)
            normal = normalize(entry, item.feed, item.published)
            assert normal is not None
            outcome = PollOutcome(feed_ids[item.feed], "ok", new_items=(NewItem(normal, FIRES, False),), entries=1)
            store.record_poll(outcome, None, item.published, lambda matches: [], policy)
        with engine.connect() as connection:
            found = connection.execute(select(ITEM.c.key, ITEM.c.story_id))
            stories = {str(key).removeprefix("guid:"): int(story) for key, story in found}
        engine.dispose()
        return stories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, default=HERE / "labels.jsonl")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--show", action="store_true", help="list every missed story and false join")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        print(f"skipped: no corpus at {args.corpus}")
        return
    items = load(args.corpus)
    gold_stories, pairs = read_labels(args.labels)
    gold = {item.link: f"single:{item.link}" for item in items}
    for index, links in enumerate(gold_stories):
        for link in links:
            gold[link] = f"story:{index}"
    started = time.perf_counter()
    predicted = run_service(items, StoryPolicy())
    elapsed = time.perf_counter() - started
    by_gold: dict[str, list[CorpusItem]] = defaultdict(list)
    for item in items:  # publication order
        by_gold[gold[item.link]].append(item)
    first_of_predicted: dict[int, CorpusItem] = {}
    for item in items:
        first_of_predicted.setdefault(predicted[item.link], item)
    missed = [
        members[0] for members in by_gold.values() if first_of_predicted[predicted[members[0].link]] is not members[0]
    ]
    later = [(members[0], item) for members in by_gold.values() for item in members[1:]]
    joined = [(first, item) for first, item in later if predicted[item.link] == predicted[first.link]]
    extra = sum(1 for first, item in later if first_of_predicted[predicted[item.link]] is item)
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0, "hard": 0, "hard_joined": 0}
    wrong: list[str] = []
    for pair in pairs:
        a, b = pair["pair"]  # type: ignore[misc]
        same_predicted = predicted[a] == predicted[b]
        same = bool(pair["same"])
        counts[("tp" if same_predicted else "fn") if same else ("fp" if same_predicted else "tn")] += 1
        if not same and pair.get("hard"):
            counts["hard"] += 1
            counts["hard_joined"] += same_predicted
        if same_predicted != same:
            wrong.append(f"  {'false join' if same_predicted else 'not joined'}: {pair.get('note', '')}")
    precision = counts["tp"] / max(1, counts["tp"] + counts["fp"])
    recall = counts["tp"] / max(1, counts["tp"] + counts["fn"])
    print(f"items {len(items)} in {len(set(item.feed for item in items))} feeds, stored in {elapsed:.1f} s; "
          f"labelled stories {len(by_gold)} ({len(gold_stories)} with several items), pairs {len(pairs)} "
          f"({counts['hard']} hard negatives)")  # fmt: skip
    print(f"missed stories   {len(missed)} of {len(by_gold)} ({len(missed) / len(by_gold):.2%})")
    print(f"later items joined {len(joined)} of {len(later)} ({len(joined) / max(1, len(later)):.1%})")
    print(f"extra alerts     {extra}")
    print(f"pairs            precision {precision:.3f} recall {recall:.3f} "
          f"(tp {counts['tp']} fp {counts['fp']} fn {counts['fn']} tn {counts['tn']}); "
          f"hard negatives joined {counts['hard_joined']} of {counts['hard']}")  # fmt: skip
    if args.show:
        titles = {item.link: item.title for item in items}
        for item in missed:
            into = first_of_predicted[predicted[item.link]]
            print(f"MISSED  {item.title[:80]!r}\n   into {into.title[:80]!r} ({(item.published - into.published)})")
        for first, item in later:
            if predicted[item.link] != predicted[first.link]:
                print(f"APART   {titles[item.link][:80]!r}\n   from {titles[first.link][:80]!r}")
        print("\n".join(wrong))


if __name__ == "__main__":
    main()
