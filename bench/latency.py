"""Alert latency: from the moment an item appears in a feed to the moment its alert reaches the desk.

Runs the real service (`monitor run`, as a subprocess) against the loopback farm (bench/farm.py), with a
short feed interval and one `json://` channel pointing at a loopback webhook sink in this process. Once the
first poll is done and one interval has passed, it injects `--items` distinct items that fire the watch
list (each its own story: `farm.probe_article`), at random times over `--window` seconds, each into a random
feed, while the farm keeps up a light background churn (a few new ordinary items and changed bodies every
5 s). For each injected item it records when the farm started serving it, when monitor first fetched it, and
when the sink received its alert, and prints p50/p95/p99/max of the whole latency and of its two parts
(waiting for the next poll; poll to delivery), and whether p99 ≤ interval + 2 s (DESIGN.md §9).

    .venv/bin/python bench/latency.py [--feeds 200] [--items 200] [--interval 30] [--window 300]

Everything is bounded: 200 items, then at most interval + 60 s waiting for the last alerts; ~7 minutes
with the defaults. Everything listens on and talks to 127.0.0.0/8 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from monitor import runner as monitor_runner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycle import ROOT, monitor_revision, write_config
from farm import Farm, Plan, probe_article

PROBE = re.compile(r"\(report (\d{4})\)")


class Sink:
    """A loopback webhook that timestamps each alert on arrival."""

    def __init__(self) -> None:
        self.received: dict[int, float] = {}
        self.others = 0
        self.last = time.time()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        now = time.time()
        self.last = now
        try:
            payload = await request.json()
        except (ValueError, UnicodeDecodeError):
            payload = {}
        text = f"{payload.get('title', '')}\n{payload.get('message', '')}"
        found = PROBE.search(text)
        if found is None:
            self.others += 1
        else:
            self.received.setdefault(int(found[1]), now)
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/alerts", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile; inf when there are no values."""
    if not values:
        return math.inf
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


async def churn(farm: Farm, feeds: int, rng: random.Random, stop: asyncio.Event) -> None:
    """Background changes every 5 s: two feeds get an ordinary new item, two a changed body."""
    while not stop.is_set():
        picked = rng.sample(range(feeds), min(4, feeds))
        plan = Plan(new={i: 1 for i in picked[:2]}, changed=frozenset(picked[2:]))
        await asyncio.to_thread(farm.next_cycle, plan)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5.0)


def polled(database: Path) -> int:
    """Feeds monitor has polled successfully at least once, read from its SQLite file (read-only)."""
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            row = connection.execute("SELECT count(*) FROM feed_state WHERE last_success_at IS NOT NULL").fetchone()
    except sqlite3.Error:
        return 0  # not created yet, or mid-migration
    return int(row[0])


async def wait_for(condition: object, deadline: float, step: float = 0.5) -> bool:
    assert callable(condition)
    while time.time() < deadline:
        if condition():
            return True
        await asyncio.sleep(step)
    return bool(condition())


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(f"latency:{args.seed}")
    revision = monitor_revision()
    sink = Sink()
    await sink.start()
    started = time.time()
    print(f"farm: {args.feeds} feeds; sink on 127.0.0.1:{sink.port}", file=sys.stderr, flush=True)
    with Farm(args.feeds, args.seed) as farm, tempfile.TemporaryDirectory(prefix="monitor-latency-") as tmp:
        channels = f'[channels.sink]\nurls = ["json://127.0.0.1:{sink.port}/alerts"]\n'
        write_config(Path(tmp) / "config", farm.urls, interval=f"{args.interval}s", channels=channels)
        log_path = Path(tmp) / "monitor.log"
        command = [
            sys.executable,
            "-m",
            "monitor",
            "run",
            "--config-dir",
            str(Path(tmp) / "config"),
            "--db",
            f"sqlite:///{tmp}/monitor.db",
            "--log-level",
            "WARNING",
        ]
        with open(log_path, "w") as log:
            service = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        stop = asyncio.Event()
        background: asyncio.Task[None] | None = None
        injected: dict[int, tuple[int, float]] = {}
        try:
            # Warm-up: the first poll of every feed stored (read from monitor's database), then a quiet moment
            # for its alerts (backfill) to go out.
            database = Path(tmp) / "monitor.db"

            def first_poll_done() -> bool:
                if service.poll() is not None:
                    raise RuntimeError(f"monitor exited: {log_path.read_text()[-2000:]}")
                return polled(database) >= args.feeds and time.time() - sink.last > 3

            if not await wait_for(first_poll_done, time.time() + args.warmup_timeout):
                raise RuntimeError(f"monitor did not finish its first poll within {args.warmup_timeout:.0f} s")
            first_poll = time.time() - started
            print(
                f"first poll done after {first_poll:.0f} s ({sink.others} backfill alerts); steady for "
                f"{args.interval} s, then {args.items} items over {args.window} s",
                file=sys.stderr,
                flush=True,
            )
            background = asyncio.create_task(churn(farm, args.feeds, rng, stop))
            await asyncio.sleep(args.interval)
            begin = time.time()
            offsets = sorted(rng.uniform(0, args.window) for _ in range(args.items))
            for number, offset in enumerate(offsets):
                await asyncio.sleep(max(0.0, begin + offset - time.time()))
                if service.poll() is not None:
                    raise RuntimeError("monitor exited during the run")
                feed = rng.randrange(args.feeds)
                at = await asyncio.to_thread(farm.inject, feed, number, probe_article(number, args.seed))
                injected[number] = (feed, at)
            last = max(at for _, at in injected.values())
            await wait_for(lambda: len(sink.received) >= len(injected), last + args.interval * 1.1 + 60)
            probes = farm.probes()
        finally:
            stop.set()
            if background is not None:
                await background
            if service.poll() is None:
                service.send_signal(signal.SIGTERM)
                try:
                    service.wait(timeout=45)
                except subprocess.TimeoutExpired:
                    service.kill()
                    service.wait()
            await sink.stop()
        log_tail = log_path.read_text().splitlines()[-5:]
    total, waiting, delivering = [], [], []
    for number, (_feed, at) in injected.items():
        received = sink.received.get(number)
        fetched = probes.get(number, (at, None))[1]
        if received is not None:
            total.append(received - at)
        if fetched is not None:
            waiting.append(fetched - at)
            if received is not None:
                delivering.append(received - fetched)
    missing = len(injected) - len(total)
    loops = (getattr(monitor_runner, "POLL_EVERY", math.nan), getattr(monitor_runner, "DELIVER_EVERY", math.nan))
    budget = args.interval + 2.0
    p99 = percentile(total, 0.99) if missing <= len(injected) * 0.01 else math.inf
    print(
        f"\nalert latency: `monitor run` (interval {args.interval} s, poll loop every {loops[0]:g} s, deliver loop "
        f"every {loops[1]:g} s) "
        f"on {args.feeds} loopback feeds, json:// channel to a loopback sink; {len(injected)} items injected "
        f"at random over {args.window} s into random feeds, with background churn; monitor at {revision}"
    )
    print(f"{'':34}{'n':>5}{'p50 s':>8}{'p95 s':>8}{'p99 s':>8}{'max s':>8}")
    for label, values in (
        ("item in farm → alert at sink", total),
        ("  item in farm → monitor fetches it", waiting),
        ("  fetch → alert at sink", delivering),
    ):
        print(f"{label:34}{len(values):>5}" + "".join(f"{percentile(values, q):8.1f}" for q in (0.5, 0.95, 0.99, 1.0)))
    print(
        f"received {len(total)} of {len(injected)} alerts ({missing} missing); {sink.others} other alerts "
        f"(backfill and background items that match)"
    )
    verdict = "met" if p99 <= budget else "NOT met"
    print(f"p99 {p99:.1f} s ≤ interval + 2 s = {budget:.0f} s: {verdict}")
    if missing or os.environ.get("LATENCY_SHOW_LOG"):
        print("last lines of monitor's log:", *log_tail, sep="\n  ")
    print(f"(total {time.time() - started:.0f} s; first poll took {first_poll:.0f} s)")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=200, help="items to inject (at most 9,999)")
    parser.add_argument("--interval", type=int, default=30, help="feed interval in seconds (30 at least)")
    parser.add_argument("--window", type=float, default=300.0, help="seconds over which the items are injected")
    parser.add_argument("--warmup-timeout", type=float, default=300.0, help="give up if the first poll takes longer")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not 1 <= args.items <= 9999 or args.interval < 30:
        parser.error("--items must be 1..9999 and --interval at least 30")
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
