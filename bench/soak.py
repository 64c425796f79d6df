"""The soak (issue 13): thousands of whole-process poll cycles over 200 loopback feeds on a fake clock, with
faults injected at random, and a ledger of injected matching items joined against the webhook's receipts.

    .venv/bin/python bench/soak.py [--cycles 2000] [--feeds 200] [--seed 1]

Each cycle is one `monitor run --once` (the real program, a new process) on one SQLite file, its clock set by
libfaketime (Debian's `faketime`) two minutes after the last cycle's, so backoff, retries and an outage of an
hour pass in fake time. Injected at random, from the seed:
- items: a third of the cycles bring a new item that fires the watch list (each a story of its own words,
  kept in the ledger) and others that do not;
- fetch faults: 10% of the feeds per cycle answer 500, an HTML login page with 200, a body cut off mid-item,
  or (rarely) nothing within the fetch timeout;
- send faults: 5% of the cycles the webhook refuses every send (500); once, it is down for an hour (30
  cycles);
- SIGKILL: the service is killed at a random moment of its cycle, at least 10 times;
- invalid config: 1% of the cycles start with a keywords.toml that does not parse (the cycle must refuse it
  with a one-line error naming the file, and nothing be lost).
After the cycles, fault-free cycles six fake hours apart drain what is still owed. Printed: injected,
delivered, missed (each injected item must reach both targets), duplicated on an idempotent sink (an item
received under two keys), resends under the same key (the documented window), unhandled exceptions
(tracebacks in any cycle's output), secrets found in the logs, items alerted without delivery rows, and
SQLite's `PRAGMA integrity_check`.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.harness import SYLLABLES  # noqa: E402 - the suite's loopback parts and test vocabulary
from tests.servers import FeedFarm, Route, WebhookSink, running  # noqa: E402
from tests.test_instances import FAKETIME_LIBRARIES as FAKETIME  # noqa: E402
from tests.test_instances import KEYWORDS  # noqa: E402

SECRET = "SoakS3cretT0ken"
TOKEN = re.compile(r"\bZq\d{5}\b")
STEP = timedelta(minutes=2)
START = datetime(2027, 6, 1, 6, 0, tzinfo=UTC)  # ahead: libfaketime breaks sleep() on a clock set back


def words(rng: random.Random, count: int) -> list[str]:
    return ["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(3, 4))) for _ in range(count)]


class Feeds:
    """The farm's feeds: each keeps its newest 20 items; a fault replaces a feed's answer for one cycle."""

    def __init__(self, farm: FeedFarm, count: int) -> None:
        self.farm = farm
        self.items: list[list[str]] = [[] for _ in range(count)]
        for n in range(count):
            self.serve(n)

    def add(self, feed: int, guid: str, title: str, lede: str, at: datetime) -> None:
        item = (
            f"<item><guid>{guid}</guid><title>{title}</title><link>https://soak.example/{guid}</link>"
            f"<description>{lede}</description><pubDate>{format_datetime(at)}</pubDate></item>"
        )
        self.items[feed] = [item, *self.items[feed]][:20]

    def body(self, feed: int) -> bytes:
        entries = "".join(self.items[feed])
        channel = f"<channel><title>Outlet {feed}</title>{entries}</channel>"
        return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'.encode()

    def serve(self, feed: int) -> None:
        self.farm.routes[f"/{feed}.xml"] = Route(self.body(feed))

    def fault(self, feed: int, rng: random.Random) -> str:
        kind = rng.choices(["500", "html", "cut", "slow"], weights=[40, 30, 29, 1])[0]
        if kind == "500":
            route = Route(b"<error/>", status=500)
        elif kind == "html":
            route = Route(b"<html><body>Please log in</body></html>", content_type="text/html")
        elif kind == "cut":
            body = self.body(feed)
            route = Route(body[: max(60, len(body) * 2 // 3)], etag=False)
        else:
            route = Route(self.body(feed), delay=4.0)  # past the 2 s fetch timeout
        self.farm.routes[f"/{feed}.xml"] = route
        return kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kills", type=int, default=12, help="SIGKILLs spread over the run")
    args = parser.parse_args()
    library = next((p for p in FAKETIME if Path(p).exists()), None)
    if library is None:
        raise SystemExit("bench/soak.py needs libfaketime: apt-get install faketime")
    rng = random.Random(args.seed)
    kill_at = set(rng.sample(range(10, args.cycles), args.kills))
    down = set(range(args.cycles // 3, args.cycles // 3 + 30))  # the webhook down for an hour of fake time
    ledger: dict[str, str] = {}  # the token of each injected matching item (in its headline) → its guid
    tally: Counter[str] = Counter()
    tracebacks: list[str] = []
    secrets = 0
    farm, sink = FeedFarm(), WebhookSink()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="monitor-soak-") as tmp, running(farm, sink):
        config = Path(tmp) / "config"
        config.mkdir()
        (config / "keywords.toml").write_text(KEYWORDS)
        feeds = Feeds(farm, args.feeds)
        listed = "".join(f'[[feeds]]\nurl = "{farm.url(f"/{n}.xml")}"\n' for n in range(args.feeds))
        (config / "feeds.toml").write_text(
            '[defaults]\nbackfill = "24h"\n[fetch]\ntimeout = "2s"\nallow_private_addresses = true\n' + listed
        )
        (config / "channels.toml").write_text(
            f'[channels.desk]\nurls = ["{sink.url("/a/${{DESK_TOKEN}}")}", "{sink.url("/b")}"]\n'
        )
        (config / "channels.toml").chmod(0o600)
        database = Path(tmp) / "monitor.db"
        env = {**os.environ, "DESK_TOKEN": SECRET, "LD_PRELOAD": library}
        command = [sys.executable, "-m", "monitor", "run", "--once", "--config-dir", str(config), "--db",
                   f"sqlite:///{database}"]  # fmt: skip
        now = START
        drain = 0
        cycle = 0
        while cycle < args.cycles + drain or drain == 0:
            if cycle == args.cycles and drain == 0:
                drain = 14  # fault-free cycles, six fake hours apart: every retry comes due
            draining = cycle >= args.cycles
            now += timedelta(hours=6) if draining else STEP
            faulty: list[int] = []
            if not draining:
                if rng.random() < 1 / 3:
                    feed, word = rng.randrange(args.feeds), f"Zq{cycle:05d}"  # unique, and no other word has it
                    guid = f"m{cycle}"
                    ledger[word] = guid
                    lede = " ".join(words(rng, 20))
                    feeds.add(feed, guid, f"Zorvania {word} {' '.join(words(rng, 5))}", lede, now)
                    feeds.serve(feed)
                    tally["injected"] += 1
                for _ in range(rng.randint(0, 3)):
                    feed = rng.randrange(args.feeds)
                    feeds.add(feed, f"n{cycle}-{feed}-{rng.random():.6f}", " ".join(words(rng, 7)), "", now)
                    feeds.serve(feed)
                faulty = rng.sample(range(args.feeds), args.feeds // 10)
                for feed in faulty:
                    tally[f"fetch fault: {feeds.fault(feed, rng)}"] += 1
                sink.fail_with = 500 if cycle in down or rng.random() < 0.05 else None
                broken = rng.random() < 0.01
            else:
                sink.fail_with, broken = None, False
            if broken:
                (config / "keywords.toml").write_text(KEYWORDS.replace("[[rules]]", "[[rules]"))
                tally["invalid config"] += 1
            stamp = f"{(now - datetime.now(UTC)).total_seconds():+.0f}"  # an offset: absolute stamps break sleep()
            process = subprocess.Popen(command, cwd=ROOT, env={**env, "FAKETIME": stamp}, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
            killed = cycle in kill_at
            try:
                if killed:
                    time.sleep(rng.uniform(0.3, 2.5))
                    os.killpg(process.pid, signal.SIGKILL)
                    tally["SIGKILL"] += 1
                out, err = process.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                out, err = process.communicate()
                tally["cycles over 300 s"] += 1
            text = out + err
            secrets += text.count(SECRET)
            if "Traceback" in text:
                tracebacks.append(f"cycle {cycle}: {text[text.index('Traceback') :][:600]}")
            if broken:
                if process.returncode == 0 or "keywords.toml:" not in err:
                    tracebacks.append(f"cycle {cycle}: an invalid config was not refused clearly: {err[:300]}")
                (config / "keywords.toml").write_text(KEYWORDS)
            elif not killed and process.returncode != 0:
                tracebacks.append(f"cycle {cycle}: exit {process.returncode}: {err[-300:]}")
            for feed in faulty:
                feeds.serve(feed)
            cycle += 1
            if cycle % 100 == 0:
                print(f"cycle {cycle}: {time.monotonic() - started:.0f} s, {tally['injected']} injected, "
                      f"{len(sink.received)} receipts", flush=True)  # fmt: skip
        with sqlite3.connect(database) as db:
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
            orphans = db.execute(
                "SELECT count(*) FROM alert a WHERE NOT EXISTS (SELECT 1 FROM delivery d WHERE d.alert_id = a.id)"
            ).fetchone()[0]
            pending = db.execute("SELECT status, count(*) FROM delivery GROUP BY status").fetchall()
    keys: dict[tuple[str, str], set[str]] = defaultdict(set)
    receipts: Counter[tuple[str, str]] = Counter()
    for received in sink.received:
        target = received["path"].split("?")[0].split("/")[1]
        title = received["body"].get("title", "") + " " + received["body"].get("message", "")
        for word in set(TOKEN.findall(title)):  # a token stands in an alert's title and its body
            if word in ledger:
                keys[(word, target)].add(received["headers"].get("x-idempotency-key", ""))
                receipts[(word, target)] += 1
    missed = [(w, t) for w in ledger for t in ("a", "b") if not keys[(w, t)]]
    duplicated = [(w, t) for (w, t), found in keys.items() if len(found) > 1]
    resent = sum(n - 1 for n in receipts.values() if n > 1)
    took = time.monotonic() - started
    print(f"\n{args.cycles:,} cycles (+{drain} to drain) over {args.feeds} feeds in {took:.0f} s; "
          f"fake time {START:%Y-%m-%d %H:%M} to {now:%Y-%m-%d %H:%M}")  # fmt: skip
    for name, count in sorted(tally.items()):
        print(f"  {name}: {count}")
    print(f"injected matching items: {len(ledger)}; each to 2 targets: {2 * len(ledger)} deliveries owed")
    print(f"delivered: {sum(1 for found in keys.values() if found)}; missed: {len(missed)}; "
          f"duplicated on an idempotent sink: {len(duplicated)}; resent under the same key: {resent}")  # fmt: skip
    print(f"unhandled exceptions: {len(tracebacks)}; secrets in logs: {secrets}; alerts without deliveries: "
          f"{orphans}; deliveries by status: {dict(pending)}; PRAGMA integrity_check: {integrity}")  # fmt: skip
    for line in tracebacks[:5] + [f"missed {w} on {t} ({ledger[w]})" for w, t in missed[:10]]:
        print("  " + line)


if __name__ == "__main__":
    main()
