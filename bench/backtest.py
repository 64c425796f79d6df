"""`monitor backtest`'s replay speed on 100,000 stored items (issue 11: at least 20,000 items/s).

    .venv/bin/python bench/backtest.py [--feeds 2000] [--runs 3]

Prepares, once: the loopback farm (bench/farm.py, 50 items a feed, 2% of items firing the shipped rules, 15%
wire copy that several feeds carry) polled by `monitor run --once` with the shipped watch list, so the items,
stories and sketches are the service's own. The candidate is the shipped watch list; the reference is it with
its humanitarian rule removed and its first rule's priority changed, so the replay has gained and changed
stories to find.

Then, `--runs` times each, prints: reading the items alone (the database's part), the whole replay in process
(`backtest.replay`: read, both matchers, the story layer, the diff) and the whole command as a user runs it
(`monitor backtest --json`, a new process, start-up included); items/s for each, best and median.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycle import ROOT, cached_bytecode, monitor_revision, write_config
from farm import Farm

TARGET = 20_000


DROPPED = 'id = "karabakh-humanitarian"'


def reference_config(candidate: Path, folder: Path) -> Path:
    """The shipped watch list with its first rule's priority lowered and its humanitarian rule removed: the
    candidate (the shipped list) gains the stories only that rule fires on, and changes the others."""
    text = (candidate / "keywords.toml").read_text(encoding="utf-8")
    text = text.replace('priority = "urgent"', 'priority = "normal"', 1)
    rule = text.index(DROPPED)
    start = text.rindex("[[rules]]", 0, rule)
    end = text.find("[[rules]]", rule)
    text = text[:start] + (text[end:] if end >= 0 else "")
    folder.mkdir()
    (folder / "keywords.toml").write_text(text, encoding="utf-8")
    shutil.copytree(candidate / "sources", folder / "sources")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=2000, help="feeds of 50 items each")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from monitor.backtest import replay
    from monitor.config import load_config
    from monitor.store.engine import open_engine
    from monitor.store.history import items_since
    from monitor.watch import build_matcher

    print(cached_bytecode(), flush=True)  # sets PYTHONPYCACHEPREFIX for the processes started below
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="monitor-backtest-bench-") as tmp:
        work = Path(tmp)
        with Farm(args.feeds) as farm:
            write_config(work / "config", farm.urls)
            db = f"sqlite:///{work / 'monitor.db'}"
            print(f"preparing: monitor run --once on {args.feeds:,} loopback feeds ...", flush=True)
            subprocess.run(
                [sys.executable, "-m", "monitor", "run", "--once", "--config-dir", str(work / "config"), "--db", db,
                 "--log-level", "WARNING"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True,
            )  # fmt: skip
        candidate_dir = work / "config"
        reference_dir = reference_config(candidate_dir, work / "reference")
        candidate = load_config(candidate_dir, feeds=False, channels=False).watchlist
        reference = load_config(reference_dir, feeds=False, channels=False).watchlist
        assert candidate is not None and reference is not None
        engine = open_engine(db)
        since = datetime.now(UTC) - timedelta(days=7)

        read: list[float] = []
        whole: list[float] = []
        command: list[float] = []
        count = 0
        result = None
        for _ in range(args.runs):
            started = time.perf_counter()
            count = sum(1 for _ in items_since(engine, since))
            read.append(time.perf_counter() - started)
            started = time.perf_counter()
            result = replay(items_since(engine, since), build_matcher(candidate), build_matcher(reference),
                            candidate.stories.window)  # fmt: skip
            whole.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "monitor", "backtest", "--config-dir", str(candidate_dir), "--db", db,
                 "--against", str(reference_dir), "--json"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True,
            )  # fmt: skip
            command.append(time.perf_counter() - started)
        assert result is not None
        summary = result.summary()
        print(
            f"\n{count:,} stored items (monitor at {monitor_revision()}, {os.cpu_count()} CPUs); replay found "
            f"{summary['stories']} alerting stories: {summary['gained']} gained, {summary['lost']} lost, "
            f"{summary['changed']} changed\n"
        )
        print(f"{'':40}{'best s':>9}{'median s':>10}{'items/s (best)':>16}")
        for label, times in (("read the items (database only)", read), ("replay in process", whole),
                             ("monitor backtest --json (a process)", command)):  # fmt: skip
            best = min(times)
            print(f"{label:40}{best:9.2f}{statistics.median(times):10.2f}{count / best:16,.0f}")
        rate = count / min(command)
        verdict = "met" if rate >= TARGET else "NOT met"
        print(f"\ntarget: the whole command ≥ {TARGET:,} items/s: {rate:,.0f}, {verdict}")
        engine.dispose()


if __name__ == "__main__":
    main()
