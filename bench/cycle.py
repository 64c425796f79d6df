"""Poll cycles side by side: monitor's poll cycle and the `reader` library's `update_feeds()` against the same
loopback farm (bench/farm.py), through the same scripted cycles, each client in its own process.

Cycles, in order, each one after the other on the same database:
1. first poll: every feed new to the client, 50 items each;
2. steady: 80% of the feeds answer 304, 10% a changed body with no new item, 10% 1-3 new items;
3. all 304: every feed answers 304.

For each: wall time, CPU time of the client process (children included, should it start any), feeds/s,
new items/s, the client's peak RSS so far, and the ratio monitor/reader. The farm is reset between the two
clients, so both meet identical feeds and identical changes; the farm's own counts of 200s and 304s are
printed beside each cycle to show it, and checked to be the same for every run.

Two modes (--mode, default both): in process, one long-lived process per client driven cycle by cycle; whole
process (bench/whole.py), each cycle one new process timed from spawn to exit (`monitor run --once`,
bench/reader_cycle.py), start-up included; with both, the two are printed side by side. --hosts one puts
every feed on one address (monitor's per-host limit then applies to all of them); per-feed (the default)
gives each feed its own.

    .venv/bin/python bench/cycle.py [--feeds 2000] [--mode in-process|whole|both] [--hosts one|per-feed]
    .venv/bin/python bench/cycle.py --feeds 2000 --mode in-process --clients monitor --profile /tmp/steady.prof

With --profile, monitor's steady cycle runs under cProfile in every thread (the event loop, the parse
threads, the database thread); the merged stats are written to the file (pstats format) and the top
functions printed. Profiled timings are not comparable: run it apart from the side-by-side run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import marshal
import os
import pstats
import random
import resource
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from io import StringIO
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from farm import Farm, Plan, steady_plan

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("first poll", "steady", "all 304")
TARGETS = {"first poll": 2.5, "steady": 10.0, "all 304": 5.0}
"""monitor's feeds/s over reader's, in process."""
WHOLE_TARGETS = {"first poll": 2.5, "steady": 8.0, "all 304": 5.0}
"""The same, one process per cycle: start-up weighs on the short cycles."""
MIN_FPS = {("in process", "steady"): 1000}
"""A floor on monitor's own feeds/s, beside the ratio."""
PYCACHE = Path(tempfile.gettempdir()) / "monitor-bench-pycache"
MONITOR_IN_FLIGHT = 100
"""monitor's default limit of requests in flight (`FetchPolicy.max_connections`): reader gets as many fetch
threads. Not imported: the reader client must not load monitor's modules, they would count in its RSS."""


def cached_bytecode() -> str:
    """Every process this one starts reads and writes compiled bytecode under PYCACHE, as an installed program
    reads its __pycache__. Without it, where PYTHONDONTWRITEBYTECODE is set and the checkout has no __pycache__
    (as here), every monitor process compiled its own modules again (~0.2 s a start); the prefix keeps the
    checkout untouched. The first run fills it: run once untimed before timing anything."""
    was_set = os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None
    os.environ["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return f"bytecode: every child reads and writes it under {PYCACHE}" + (
        " (PYTHONDONTWRITEBYTECODE, set here, is dropped for them)" if was_set else ""
    )


# --- measuring a process and its children ----------------------------------------------------------------


def _children(pid: int) -> list[int]:
    """Live descendants of `pid`, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def usage() -> tuple[float, float, int, int]:
    """CPU seconds used so far by this process and its children (reaped and live), by this process alone, this
    process's peak RSS, and the sum of its children's peak RSS (bytes)."""
    own, reaped = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime
    cpu_own = own.ru_utime + own.ru_stime
    children = reaped.ru_maxrss * 1024
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _children(os.getpid()):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            cpu += sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick  # utime stime cutime cstime
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        children += int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            continue
    return cpu, cpu_own, own.ru_maxrss * 1024, children


def tree_pss(pids: Sequence[int]) -> int:
    """Proportional set size of these processes, in bytes: pages they share counted once."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, IndexError, ValueError):
            continue
    return total


class PssSampler:
    """Samples the PSS of this process and its children every second in a thread; `peak` is the highest
    sample. The list of children is refreshed every 5 s; the thread's own CPU time is kept in `cpu`, for the
    caller to leave out of the client's."""

    def __init__(self, every: float = 1.0) -> None:
        self.every, self.cpu = every, 0.0
        self._pids = [os.getpid(), *_children(os.getpid())]
        self.peak = tree_pss(self._pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started, refreshed = time.thread_time(), time.monotonic()
        while not self._stop.wait(self.every):
            if time.monotonic() - refreshed > 5:
                self._pids, refreshed = [os.getpid(), *_children(os.getpid())], time.monotonic()
            self.peak = max(self.peak, tree_pss(self._pids))
        self.cpu = time.thread_time() - started

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_pss([os.getpid(), *_children(os.getpid())]))
        return self.peak


# --- profiling every thread ------------------------------------------------------------------------------


IDLE = frozenset(
    {
        "<method 'poll' of 'select.epoll' objects>",
        "<method 'poll' of 'select.poll' objects>",
        "<method 'get' of '_queue.SimpleQueue' objects>",
        "<method 'acquire' of '_thread.lock' objects>",
    }
)
"""Profiled functions where a thread waits for work: not CPU."""


class ThreadProfiles:
    """cProfile in every thread: the main thread's, and one started in each new thread (install it before the
    threads exist). `clear()` starts the window, `dump()` ends it and merges the threads' stats."""

    def __init__(self) -> None:
        self.profiles: dict[str, cProfile.Profile] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        def bootstrap(frame: Any, event: str, arg: Any) -> None:
            sys.setprofile(None)
            profile = cProfile.Profile()
            with self._lock:
                self.profiles[f"{threading.current_thread().name}#{threading.get_ident()}"] = profile
            profile.enable()

        threading.setprofile(bootstrap)
        main = cProfile.Profile()
        self.profiles["MainThread"] = main
        main.enable()

    def clear(self) -> None:
        with self._lock:
            for profile in self.profiles.values():
                profile.clear()

    def dump(self, path: Path, top: int = 30) -> str:
        """Write the merged stats to `path`; return a text summary: time per thread, top functions."""
        files: list[str] = []
        per_thread: list[tuple[float, float, str]] = []
        with self._lock:
            profiles = dict(self.profiles)
        for name, profile in profiles.items():
            profile.snapshot_stats()
            stats: dict[Any, Any] = profile.stats
            if not stats:
                continue
            total = sum(entry[2] for entry in stats.values())  # tottime
            idle = sum(entry[2] for key, entry in stats.items() if key[2] in IDLE)
            per_thread.append((total, total - idle, name))
            part = path.with_name(f"{path.name}.{len(files)}")
            with open(part, "wb") as handle:
                marshal.dump(stats, handle)
            files.append(str(part))
        merged = pstats.Stats(*files)
        merged.dump_stats(str(path))
        for name in files:
            os.unlink(name)
        text = StringIO()
        text.write("profiled time by thread: total, and busy = total less idle waits (epoll, queue get, lock):\n")
        groups: dict[str, list[float]] = {}
        for total, busy, name in per_thread:
            group = name.split("#")[0].rstrip("_0123456789") or name
            sums = groups.setdefault(group, [0.0, 0.0, 0])
            sums[0], sums[1], sums[2] = sums[0] + total, sums[1] + busy, sums[2] + 1
        for group, (total, busy, count) in sorted(groups.items(), key=lambda kv: -kv[1][1]):
            text.write(f"  {group:<14} ({count:>2} threads) total {total:8.2f} s   busy {busy:8.2f} s\n")
        for key in ("tottime", "cumulative"):
            stream = StringIO()
            pstats.Stats(str(path), stream=stream).sort_stats(key).print_stats(top)
            body = stream.getvalue()
            text.write(f"\ntop {top} by {key}:\n" + body[body.find("   ncalls") :])
        return text.getvalue()


# --- the clients -----------------------------------------------------------------------------------------


def write_config(directory: Path, urls: Sequence[str], interval: str = "10m", channels: str | None = None) -> None:
    """A monitor config directory: the shipped watch list, these feeds (loopback allowed), optional channels."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config" / "keywords.toml", directory / "keywords.toml")
    if (ROOT / "config" / "sources").is_dir():
        shutil.copytree(ROOT / "config" / "sources", directory / "sources", dirs_exist_ok=True)
    lines = [f'[defaults]\ninterval = "{interval}"\nbackfill = "24h"\n', "[fetch]\nallow_private_addresses = true\n"]
    lines += [f'[[feeds]]\nurl = "{url}"\n' for url in urls]
    (directory / "feeds.toml").write_text("\n".join(lines))
    if channels is not None:
        (directory / "channels.toml").write_text(channels)


Result = dict[str, Any]


def _measured(run: Callable[[], Result]) -> Result:
    cpu0, own0, _, _ = usage()
    sampler = PssSampler()
    started = time.perf_counter()
    result = run()
    wall = time.perf_counter() - started
    pss = sampler.stop()
    cpu1, own1, own, children = usage()
    cpu = cpu1 - cpu0 - sampler.cpu  # the sampler is the benchmark's, not the client's
    return {**result, "wall": wall, "cpu": cpu, "cpu_main": own1 - own0 - sampler.cpu, "peak_rss": own + children,
            "peak_rss_main": own, "peak_rss_children": children, "peak_pss": pss,
            "processes": 1 + len(_children(os.getpid()))}  # fmt: skip


def monitor_client(
    urls: list[str],
    workdir: Path,
    commands: Iterator[str],
    emit: Callable[[Result], None],
    profile: Path | None,
    profile_phase: str = "steady",
) -> None:
    from monitor.config import load_config
    from monitor.runner import start_service
    from monitor.store.engine import open_engine, upgrade
    from monitor.store.repo import Store

    profiles = ThreadProfiles() if profile else None
    if profiles is not None:
        profiles.install()
    write_config(workdir / "config", urls)
    config = load_config(workdir / "config")
    assert config.feeds is not None
    engine = open_engine(f"sqlite:///{workdir / 'monitor.db'}")
    upgrade(engine)
    store = Store(engine)
    printed = [0]

    def console(text: str) -> None:
        printed[0] += 1  # the console channel: counted, not printed

    with asyncio.Runner() as runner:
        service = start_service(config, store, console)
        emit({"ready": True})
        for phase in commands:
            if profiles is not None and phase == profile_phase:
                profiles.clear()

            def cycle() -> Result:
                started = time.perf_counter()
                report = runner.run(service.poll(every=True))
                polled = time.perf_counter() - started
                before = printed[0]
                deliveries = runner.run(service.deliver())
                return {
                    "feeds": report.polled,
                    "new_items": report.new_items,
                    "not_modified": report.not_modified,
                    "errors": report.failed,
                    "alerts": report.alerts,
                    "sent": deliveries.sent,
                    "printed": printed[0] - before,
                    "poll_wall": polled,
                    "first_error": report.failures[0][1] if report.failures else None,
                }

            result = _measured(cycle)
            if profiles is not None and phase == profile_phase and profile is not None:
                result["profile"] = profiles.dump(profile)
            emit(result)
        service.close()
    if profiles is not None:
        sys.stderr.flush()
        os._exit(0)  # the other threads' profilers cannot be torn down from this thread


def reader_client(
    urls: list[str], workdir: Path, commands: Iterator[str], emit: Callable[[Result], None], workers: int
) -> None:
    from reader import make_reader

    reader = make_reader(str(workdir / "reader.sqlite"))
    for url in urls:
        reader.add_feed(url, exist_ok=True)
    emit({"ready": True})
    for _phase in commands:

        def cycle() -> Result:
            counts = {"feeds": 0, "new_items": 0, "not_modified": 0, "errors": 0}
            first_error = None
            # scheduled=False: reader otherwise skips every feed updated less than its update interval ago.
            for update in reader.update_feeds_iter(scheduled=False, workers=workers):
                counts["feeds"] += 1
                if update.value is None:
                    counts["not_modified"] += 1
                elif isinstance(update.value, Exception):
                    counts["errors"] += 1
                    first_error = first_error or repr(update.value)
                else:
                    counts["new_items"] += update.value.new
            return {**counts, "first_error": first_error}

        emit(_measured(cycle))
    reader.close()


def client_main(args: argparse.Namespace) -> None:
    # The protocol goes to a copy of stdout; anything a library prints goes to stderr instead.
    protocol: IO[str] = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(result: Result) -> None:
        protocol.write(json.dumps(result) + "\n")
        protocol.flush()

    def commands() -> Iterator[str]:
        while line := sys.stdin.readline().strip():
            if line == "quit":
                return
            yield line

    urls = Path(args.urls).read_text().split()
    workdir = Path(args.workdir)
    if args.client == "monitor":
        monitor_client(
            urls, workdir, commands(), emit, Path(args.profile) if args.profile else None, args.profile_phase
        )
    else:
        reader_client(urls, workdir, commands(), emit, args.workers)


# --- the parent ------------------------------------------------------------------------------------------


class Client:
    """One client process, driven phase by phase over stdin/stdout."""

    def __init__(self, name: str, urls_file: Path, workdir: Path, args: argparse.Namespace) -> None:
        command = [
            sys.executable,
            __file__,
            "--client",
            name,
            "--urls",
            str(urls_file),
            "--workdir",
            str(workdir),
            "--workers",
            str(args.workers),
        ]
        if args.profile and name == "monitor":
            command += ["--profile", args.profile, "--profile-phase", args.profile_phase]
        self.name, self.timeout = name, args.phase_timeout
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.read(600)

    def read(self, timeout: float) -> Result:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                self.process.kill()
                raise RuntimeError(f"{self.name}: no answer within {timeout:.0f} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: the client exited (status {self.process.wait()})")
        result: Result = json.loads(line)
        return result

    def run(self, phase: str) -> Result:
        assert self.process.stdin is not None
        self.process.stdin.write(phase + "\n")
        self.process.stdin.flush()
        return self.read(self.timeout)

    def close(self) -> None:
        if self.process.stdin is not None and self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_client(
    name: str, farm: Farm, plans: dict[str, Plan | None], args: argparse.Namespace, tmp: Path
) -> dict[str, Result]:
    farm.reset()
    urls_file = tmp / "urls.txt"
    urls_file.write_text("\n".join(farm.urls))
    workdir = tmp / name
    workdir.mkdir()
    results: dict[str, Result] = {}
    client = Client(name, urls_file, workdir, args)
    try:
        for phase in PHASES:
            plan = plans[phase]
            if plan is not None:
                farm.next_cycle(plan)
            else:
                farm.counts()
            print(f"  {name}: {phase} ...", file=sys.stderr, flush=True)
            result = client.run(phase)
            result["farm"] = farm.counts()
            results[phase] = result
    finally:
        client.close()
    return results


def _mb(value: float) -> str:
    return f"{value / 1e6:,.0f}" if value >= 10e6 else f"{value / 1e6:.1f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def monitor_revision() -> str:
    """The commit of the monitor under test, and whether its code has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "monitor"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return head + (" with uncommitted changes in monitor/" if dirty else "")


Rows = dict[str, dict[str, float]]
"""client → wall, cpu, fps (feeds/s), ips (new items/s), rss (peak RSS, summed over the client's processes)."""


def phase_tables(feeds: int, results: dict[str, dict[str, Result]], whole: bool) -> dict[str, Rows]:
    """Print one table per cycle for one mode; return the figures by cycle and client."""
    names = list(results)
    header = (
        f"{'':16}{'wall s':>9}{'CPU s':>9}{'feeds/s':>10}{'new items/s':>13}{'peak RSS MB':>13}"
        f"{'new items':>11}{'304':>7}{'errors':>8}{'alerts':>8}"
    )
    by_phase: dict[str, Rows] = {}
    for phase in PHASES:
        farms = {name: results[name][phase]["farm"] for name in names}
        seen = "; ".join(
            f"{n}: {f.get('200', 0):,} × 200 ({_mb(f.get('bytes', 0))} MB), {f.get('304', 0):,} × 304"
            for n, f in farms.items()
        )
        print(f"\n{phase}{' (whole process)' if whole else ''} — the farm answered {seen}")
        print(header)
        rows: Rows = {}
        for name in names:
            r = results[name][phase]
            row = {
                "wall": r["wall"],
                "cpu": r["cpu"],
                "fps": feeds / r["wall"],
                "ips": r["new_items"] / r["wall"],
                "rss": r["peak_rss"],
            }
            rows[name] = row
            alerts = f"{r['alerts']:>8,}" if "alerts" in r else f"{'-':>8}"
            print(
                f"{name:16}{row['wall']:9.2f}{row['cpu']:9.2f}{row['fps']:10,.0f}{row['ips']:13,.0f}"
                f"{_mb(row['rss']):>13}{r['new_items']:>11,}{r['not_modified']:>7,}{r['errors']:>8,}{alerts}"
            )
            if r.get("first_error"):
                print(f"{'':16}first error: {r['first_error']}")
        if "monitor" in rows and "reader" in rows:
            m, d = rows["monitor"], rows["reader"]
            print(
                f"{'monitor/reader':16}{_ratio(m['wall'], d['wall']):>9}{_ratio(m['cpu'], d['cpu']):>9}"
                f"{_ratio(m['fps'], d['fps']):>10}{_ratio(m['ips'], d['ips']):>13}{_ratio(m['rss'], d['rss']):>13}"
            )
        if "monitor" in results and not whole:
            r = results["monitor"][phase]
            print(
                f"{'':16}monitor: poll {r['poll_wall']:.2f} s + deliver {r['wall'] - r['poll_wall']:.2f} s "
                f"({r['sent']:,} alerts sent)"
            )
        if "reader" in results and whole:
            r = results["reader"][phase]
            stages = ("import", "open", "add", "update", "close")
            print(
                f"{'':16}reader, inside its process: "
                + ", ".join(f"{stage} {r[stage + '_s']:.2f} s" for stage in stages if stage + "_s" in r)
                + (" (add: 0 feeds, the database exists)" if not r.get("new_db", True) else "")
                + f"; the rest of the wall time ({r['wall'] - sum(r.get(s + '_s', 0) for s in stages):.2f} s) is "
                "the interpreter's start and exit"
            )
        for name in names:
            r = results[name][phase]
            split = " (sampled)" if whole else ""
            print(
                f"{'':16}{name}: {r['processes']} process(es), CPU {r['cpu_main']:.2f} s main + "
                f"{r['cpu'] - r['cpu_main']:.2f} s children{split}, peak RSS {_mb(r['peak_rss_main'])} MB main + "
                f"{_mb(r['peak_rss_children'])} MB children, peak PSS {_mb(r['peak_pss'])} MB"
            )
        by_phase[phase] = rows
    return by_phase


def verdicts(
    label: str, by_phase: dict[str, Rows], results: dict[str, dict[str, Result]], targets: dict[str, float]
) -> list[str]:
    """The targets of one mode, met / NOT met."""
    lines = []
    for phase in PHASES:
        rows = by_phase[phase]
        if "monitor" not in rows or "reader" not in rows:
            continue
        m, d = rows["monitor"], rows["reader"]
        floor = MIN_FPS.get((label, phase), 0)
        ok = m["fps"] >= targets[phase] * d["fps"] and m["fps"] >= floor
        extra = f" and ≥ {floor:,} feeds/s" if floor else ""
        lines.append(
            f"{label}, {phase}: monitor {m['fps'] / d['fps']:.2f}x reader's feeds/s ({m['fps']:,.0f}/s), "
            f"target ≥ {targets[phase]:g}x{extra}: {'met' if ok else 'NOT met'}"
        )
    if "monitor" in results:
        peak = max(r["peak_rss"] for r in results["monitor"].values())
        pss = max(r["peak_pss"] for r in results["monitor"].values())
        lines.append(
            f"{label}, monitor peak RSS {_mb(peak)} MB (sum over its processes; peak PSS {_mb(pss)} MB), "
            "target < 300 MB: " + ("met" if peak < 300e6 else "met by PSS only" if pss < 300e6 else "NOT met")
        )
    return lines


def check_farm_counts(runs: dict[str, dict[str, dict[str, Result]]]) -> None:
    """Every run should have met the same answers: the same 200s and 304s in each cycle."""
    differ = []
    for phase in PHASES:
        seen = {
            f"{name} ({mode})": (r[phase]["farm"].get("200", 0), r[phase]["farm"].get("304", 0))
            for mode, results in runs.items()
            for name, r in results.items()
        }
        if len(set(seen.values())) > 1:
            differ.append(f"{phase}: " + ", ".join(f"{k} {a:,} × 200 {b:,} × 304" for k, (a, b) in seen.items()))
    if differ:
        print("\nNOTE: the farm's counts differ between runs (the clients did not meet the same answers):")
        for line in differ:
            print(f"  {line}")
    else:
        runs_count = sum(map(len, runs.values()))
        print(f"\nthe farm's counts of 200s and 304s are the same in every cycle for all {runs_count} runs")


def report(
    feeds: int,
    farm: Farm,
    results: dict[str, dict[str, Result]],
    whole_results: dict[str, dict[str, Result]],
    args: argparse.Namespace,
) -> None:
    from monitor import service as monitor_service
    from monitor.fetch import FetchPolicy

    if FetchPolicy().max_connections != MONITOR_IN_FLIGHT:
        print(f"note: monitor's in-flight limit is now {FetchPolicy().max_connections}, not {MONITOR_IN_FLIGHT}")
    info = farm.info
    hosts = "one address per feed" if farm.hosts >= feeds else f"{farm.hosts:,} address(es) for all the feeds"
    print(
        f"\n{feeds:,} loopback feeds (farm: 50 items each, {info['raw_bytes'] / feeds / 1e3:.0f} KB, "
        f"{info['gzip_bytes'] / feeds / 1e3:.0f} KB gzipped; {farm.kinds.count('bare')} without validators, "
        f"{farm.kinds.count('volatile')} with a new lastBuildDate on every request; {hosts}), "
        f"{os.cpu_count()} CPUs"
    )
    print(
        f"concurrency: monitor as `run --once` builds it (Fetcher defaults: {MONITOR_IN_FLIGHT} requests in "
        f"flight, {FetchPolicy().per_host} per host; up to {getattr(monitor_service, 'CLAIM_BATCH', '?')} feeds "
        f"claimed at once; poller processes: one per core); reader update_feeds(workers={args.workers}, "
        f"scheduled=False): {args.workers} fetch threads"
        + (" (= monitor's in-flight limit)" if args.workers == MONITOR_IN_FLIGHT else "")
        + ", parsing and storing in the calling thread"
    )
    print(
        "peak RSS: the client's own plus its children's (a sum: shared pages count in each); peak PSS: sampled "
        "over the client's process tree, shared pages counted once"
    )
    print(
        "in process: monitor's cycle is poll(every=True) then deliver() to the console channel (counted, not "
        "printed); whole process: `python -m monitor run --once` (stdout to a file) and bench/reader_cycle.py, "
        f"one process per cycle, timed from spawn to exit; monitor at {args.revision}"
    )
    print(args.bytecode)
    lines: list[str] = []
    inproc: dict[str, Rows] = {}
    by_process: dict[str, Rows] = {}
    if results:
        print("\n=== in process")
        inproc = phase_tables(feeds, results, whole=False)
        lines += verdicts("in process", inproc, results, TARGETS)
    if whole_results:
        print("\n=== whole process (each cycle one new process, start-up included)")
        by_process = phase_tables(feeds, whole_results, whole=True)
        lines += verdicts("whole process", by_process, whole_results, WHOLE_TARGETS)
    check_farm_counts({m: r for m, r in (("in process", results), ("whole", whole_results)) if r})
    if inproc and by_process:
        import whole

        whole.side_by_side(inproc, by_process)
    if lines:
        print(
            f"\ntargets ({feeds:,} feeds, {hosts}; in process: DESIGN.md §9, issue 4; "
            "whole process: the start-up issue):"
        )
        for line in lines:
            print(f"  {line}")
    if "monitor" in results and "profile" in results["monitor"][args.profile_phase]:
        print(f"\nprofile of monitor's {args.profile_phase} cycle (cProfile, every thread; stats in {args.profile}):")
        print(results["monitor"][args.profile_phase]["profile"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workers",
        type=int,
        default=MONITOR_IN_FLIGHT,
        help="reader's update_feeds workers (default: monitor's in-flight request limit)",
    )
    parser.add_argument("--clients", default="monitor,reader", help="which clients, in order (monitor,reader)")
    parser.add_argument(
        "--mode",
        choices=["in-process", "whole", "both"],
        default="both",
        help="in-process: one long-lived process per client; whole: one process per cycle, timed with its start-up",
    )
    parser.add_argument(
        "--hosts",
        choices=["one", "per-feed"],
        default="per-feed",
        help="one: every feed on one address; per-feed: an address per feed",
    )
    parser.add_argument("--profile", help="cProfile monitor's steady cycle into this file (pstats format)")
    parser.add_argument("--profile-phase", choices=PHASES, default="steady", help="the cycle to profile")
    parser.add_argument("--phase-timeout", type=float, default=1800.0, help="give up on a cycle after this many s")
    parser.add_argument("--client", choices=["monitor", "reader"], help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    if not clients or any(c not in ("monitor", "reader") for c in clients):
        parser.error("--clients takes monitor, reader or both")
    if args.profile and args.mode != "in-process":
        parser.error("--profile profiles the in-process client: add --mode in-process")
    import whole  # imports this file as `cycle`: only the parent needs it

    args.bytecode = cached_bytecode()
    started = time.perf_counter()
    args.revision = monitor_revision()
    load_before = os.getloadavg()[0]
    print(f"starting the farm ({args.feeds:,} feeds, hosts: {args.hosts}) ...", file=sys.stderr, flush=True)
    hosts = 1 if args.hosts == "one" else None
    with Farm(args.feeds, args.seed, hosts=hosts) as farm, tempfile.TemporaryDirectory(prefix="monitor-cycle-") as tmp:
        print(f"  farm ready in {farm.info['setup_s']} s", file=sys.stderr, flush=True)
        plans: dict[str, Plan | None] = {
            "first poll": None,
            "steady": steady_plan(farm.kinds, random.Random(f"plan:{args.seed}")),
            "all 304": Plan(force_304=True),
        }
        results, whole_results = {}, {}
        if args.mode in ("in-process", "both"):
            results = {name: run_client(name, farm, plans, args, Path(tmp)) for name in clients}
        if args.mode in ("whole", "both"):
            whole_results = {name: whole.run_client(name, farm, plans, args, Path(tmp)) for name in clients}
        report(args.feeds, farm, results, whole_results, args)
    if monitor_revision() != args.revision:
        print(f"\nNOTE: monitor changed during the run: {args.revision} at the start, {monitor_revision()} at the end")
    print(
        f"\n(total {time.perf_counter() - started:.0f} s; 1-minute load average {load_before:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end: other work on the machine skews both clients' figures)"
    )


if __name__ == "__main__":
    main()
