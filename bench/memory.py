"""The steady memory of `monitor run` over a loopback farm, and how it grows (issue 13: under 300 MB at 2,000
feeds, growing less than 5% over an hour after warm-up).

    .venv/bin/python bench/memory.py [--feeds 2000] [--interval 2m] [--warmup 600] [--duration 3600]

Starts the farm (bench/farm.py, its own process), then `monitor run` on a fresh SQLite file with the shipped
watch list, every feed at `--interval`, and changes the farm once per interval as a running desk sees it
(10% of the feeds get 1-3 new items, 10% a changed body, the rest answer 304). Every 15 s it sums the
resident memory (RSS) of the service and its poller processes from /proc. After `--warmup` seconds, the
baseline is the median of the next minute's samples and the end the median of the last minute's; it prints
the baseline, the end, the peak and the growth between them, with a progress line each minute. Bounded: the
run stops after warm-up plus duration, and the service gets SIGTERM (SIGKILL after 60 s).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycle import ROOT, cached_bytecode, monitor_revision, write_config
from farm import Farm, steady_plan

SAMPLE_EVERY = 15.0


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (the service and its pollers)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                queue.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def rss_mb(pid: int) -> float:
    total = 0
    for member in tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--interval", default="2m", help="every feed's poll interval, and how often the farm changes")
    parser.add_argument("--warmup", type=float, default=600.0, help="seconds before the baseline")
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds measured after warm-up")
    args = parser.parse_args()
    from monitor.config.units import parse_duration

    period = parse_duration(args.interval).total_seconds()
    print(cached_bytecode(), flush=True)  # sets PYTHONPYCACHEPREFIX for the service started below
    rng = random.Random(7)
    samples: list[tuple[float, float]] = []
    served: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="monitor-memory-") as tmp, Farm(args.feeds) as farm:
        config = Path(tmp) / "config"
        write_config(config, farm.urls, interval=args.interval)
        env = {**os.environ, "MONITOR_DATABASE_URL": f"sqlite:///{tmp}/monitor.db", "MONITOR_CONFIG_DIR": str(config)}
        service = subprocess.Popen([sys.executable, "-m", "monitor", "run", "--log-level", "ERROR"], cwd=ROOT,
                                   env=env, stdout=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        began = time.monotonic()
        next_change, next_line = began + period, began + 60
        try:
            while (now := time.monotonic()) < began + args.warmup + args.duration:
                if service.poll() is not None:
                    raise SystemExit(f"monitor run stopped (exit {service.returncode})")
                samples.append((now - began, rss_mb(service.pid)))
                if now >= next_change:
                    served.update(farm.counts())  # the farm's counts restart with each change
                    farm.next_cycle(steady_plan(farm.kinds, rng))
                    next_change += period
                if now >= next_line:
                    print(f"{(now - began) / 60:5.1f} min  RSS {samples[-1][1]:6.1f} MB", flush=True)
                    next_line += 60
                time.sleep(SAMPLE_EVERY)
            served.update(farm.counts())
        finally:
            os.killpg(service.pid, signal.SIGTERM)
            try:
                service.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(service.pid, signal.SIGKILL)
    after = [mb for at, mb in samples if at >= args.warmup]
    per_minute = max(1, round(60 / SAMPLE_EVERY))
    base, end = statistics.median(after[:per_minute]), statistics.median(after[-per_minute:])
    polls = served["200"] + served["304"]
    print(f"\n{args.feeds:,} feeds every {args.interval}; monitor at {monitor_revision()}; {os.cpu_count()} CPUs")
    print(f"warm-up {args.warmup / 60:.0f} min, then {args.duration / 60:.0f} min measured; {polls:,} polls served")
    print(f"RSS (service and pollers): after warm-up {base:.1f} MB, end {end:.1f} MB, peak {max(after):.1f} MB")
    print(f"growth after warm-up: {100 * (end - base) / base:+.1f}% (target under 5%; steady under 300 MB)")


if __name__ == "__main__":
    main()
