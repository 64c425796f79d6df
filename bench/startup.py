"""Start-up of monitor's commands against reader's import-and-open, each a new process, timed from spawn to exit.

    .venv/bin/python bench/startup.py [--runs 7] [--feeds 2000] [--importtime run-once]

Prepares, once: a config directory of N loopback feeds (bench/farm.py), a monitor database holding their first
poll (`monitor run --once` against the farm: feeds, items, stories and alerts are real rows) and a reader
database holding the same first poll (bench/reader_cycle.py). Then runs every command once untimed (warm-up:
page cache, bytecode) and `--runs` rounds, each command once per round, the order rotated each round, so the
machine's noise falls on all alike. Prints per command the median and the minimum wall time, the median CPU
time, the peak RSS of its largest process, the ratio of its median to reader's, and the target.

`run --once` polls every feed of its config, so "nothing due" cannot be had with feeds: it runs with an empty
feed list, on a copy of the prepared database (the warm-up run marks its feeds inactive). `--importtime CMD`
runs that command under `python -X importtime` and prints where its imports' time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycle import cached_bytecode, monitor_revision, write_config
from farm import Farm

READER_CYCLE = Path(__file__).with_name("reader_cycle.py")
MATCH_TEXT = "Stepanakert shelled"
TARGETS = {"run-once": 2.0, "match": 2.0, "check": 2.0, "feeds": 3.0, "alerts": 3.0}
"""At most this many times reader's median."""


@dataclass
class Run:
    wall: float
    cpu: float
    rss: int
    returncode: int
    stderr: str


def run_once(argv: Sequence[str], cwd: Path, timeout: float) -> Run:
    """One process, spawn to exit: wall time, CPU (it and its reaped descendants), the largest process's peak
    RSS (os.wait4). Killed with its process group at `timeout`."""
    with tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=err, cwd=cwd, start_new_session=True)

        def kill() -> None:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, process.returncode, err.read())


def monitor_command() -> list[str]:
    """How a user starts monitor: the console script of this environment, else `python -m monitor`."""
    script = Path(sys.executable).with_name("monitor")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]


def accepts_json(monitor: list[str], command: str, workdir: Path) -> bool:
    shown = subprocess.run(
        [*monitor, command, "--help"], capture_output=True, text=True, cwd=workdir, timeout=60, env=_plain_env()
    )
    return "--json" in shown.stdout


def _plain_env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}


def prepare(args: argparse.Namespace, workdir: Path) -> tuple[float, float]:
    """The config, monitor's database and reader's database of one first poll of the farm; their times."""
    monitor = monitor_command()
    with Farm(args.feeds, args.seed) as farm:
        write_config(workdir / "config", farm.urls)
        (workdir / "urls.txt").write_text("\n".join(farm.urls))
        print(f"preparing: monitor's first poll of {args.feeds:,} feeds ...", file=sys.stderr, flush=True)
        command = [*monitor, "run", "--once", "--config-dir", str(workdir / "config")]
        command += ["--db", f"sqlite:///{workdir / 'monitor.db'}", "--log-level", "WARNING"]
        first = run_once(command, workdir, args.timeout * 20)
        if first.returncode:
            raise SystemExit(f"monitor run --once failed ({first.returncode}): {first.stderr[-2000:]}")
        farm.reset()
        print(f"preparing: reader's first poll of {args.feeds:,} feeds ...", file=sys.stderr, flush=True)
        command = [sys.executable, str(READER_CYCLE), str(workdir / "reader.sqlite"), str(workdir / "urls.txt"), "100"]
        second = run_once(command, workdir, args.timeout * 20)
        if second.returncode:
            raise SystemExit(f"reader_cycle.py failed ({second.returncode}): {second.stderr[-2000:]}")
    write_config(workdir / "empty", [])
    shutil.copy(workdir / "monitor.db", workdir / "once.db")
    return first.wall, second.wall


def commands(workdir: Path, notes: list[str]) -> dict[str, tuple[str, list[str]]]:
    """name → (label, argv). reader's baseline first."""
    monitor = monitor_command()
    config = ["--config-dir", str(workdir / "config")]
    db = ["--db", f"sqlite:///{workdir / 'monitor.db'}"]
    once_db = ["--db", f"sqlite:///{workdir / 'once.db'}"]
    opened = f"from reader import make_reader; r = make_reader({str(workdir / 'reader.sqlite')!r}); r.close()"
    table: dict[str, tuple[str, list[str]]] = {
        "reader-open": ("python -c 'make_reader(FILE); close()'", [sys.executable, "-c", opened]),
        "help": ("monitor --help", [*monitor, "--help"]),
        "check": ("monitor check", [*monitor, "check", *config]),
        "match": (f'monitor match --text "{MATCH_TEXT}"', [*monitor, "match", *config, "--text", MATCH_TEXT]),
        "run-once": (
            "monitor run --once (no feeds)",
            [*monitor, "run", "--once", "--config-dir", str(workdir / "empty"), *once_db, "--log-level", "WARNING"],
        ),
    }
    for name in ("feeds", "alerts", "stories"):
        if accepts_json(monitor, name, workdir):
            table[name] = (f"monitor {name} --json", [*monitor, name, *config, *db, "--json"])
        else:
            notes.append(f"`monitor {name}` takes no --json in this version: timed without it")
            table[name] = (f"monitor {name} (no --json)", [*monitor, name, *config, *db])
    return table


def importtime(label: str, argv: Sequence[str], cwd: Path, top: int, wall: float | None, repeat: int = 3) -> None:
    """Run a command under `python -X importtime` (`repeat` times, the median per module) and print where the
    time of its imports goes: the top modules by cumulative time, self time summed by top-level package, and
    monitor's own modules."""
    if Path(argv[0]).name == "monitor":
        argv = [sys.executable, "-X", "importtime", "-m", "monitor", *argv[1:]]
    else:
        argv = [argv[0], "-X", "importtime", *argv[1:]]
    runs: list[dict[str, tuple[int, int, int]]] = []
    order: list[str] = []
    for _ in range(repeat):
        done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=120, env=_plain_env())
        seen: dict[str, tuple[int, int, int]] = {}
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "imported package" in line:
                continue
            self_text, cumulative_text, raw = line[len("import time:") :].split("|", 2)
            depth = (len(raw) - len(raw.lstrip()) - 1) // 2
            seen[raw.strip()] = (int(self_text), int(cumulative_text), depth)
            if not runs:
                order.append(raw.strip())
        runs.append(seen)
    modules = {
        name: (
            statistics.median(run[name][0] for run in runs),
            statistics.median(run[name][1] for run in runs),
            runs[0][name][2],
        )
        for name in order
        if all(name in run for run in runs)
    }
    total = statistics.median(sum(entry[0] for entry in run.values()) for run in runs)
    print(
        f"\nimports of `{label}` (python -X importtime, median of {repeat} runs): {len(modules)} modules, "
        f"{total / 1e6:.3f} s in all" + (f" (the command's median wall time above: {wall:.3f} s)" if wall else "")
    )
    print(f"\ntop {top} by cumulative time (indented under the module that imported them):")
    print(f"{'cumulative s':>13}{'self s':>9}  module")
    for name, (self_us, cumulative_us, depth) in sorted(modules.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"{cumulative_us / 1e6:13.3f}{self_us / 1e6:9.3f}  {'  ' * depth}{name}")
    packages: dict[str, float] = {}
    for name, (self_us, _, _) in modules.items():
        packages[name.split(".")[0]] = packages.get(name.split(".")[0], 0) + self_us
    print("\nself time by top-level package (what each package's own modules cost):")
    for package, self_us in sorted(packages.items(), key=lambda kv: -kv[1])[:15]:
        print(f"{self_us / 1e6:13.3f}  {package}")
    own = [(name, entry) for name, entry in modules.items() if name.split(".")[0] == "monitor"]
    if own:
        print("\nmonitor's modules, by cumulative time:")
        for name, (self_us, cumulative_us, _) in sorted(own, key=lambda kv: -kv[1][1]):
            print(f"{cumulative_us / 1e6:13.3f}{self_us / 1e6:9.3f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed rounds (each command once per round)")
    parser.add_argument("--feeds", type=int, default=2000, help="feeds in the config and the databases")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0, help="give up on one command after this many s")
    parser.add_argument("--importtime", metavar="COMMAND", help="also show the imports of this command (a name)")
    parser.add_argument("--top", type=int, default=25, help="modules shown by --importtime")
    args = parser.parse_args()
    started = time.perf_counter()
    load_before = os.getloadavg()
    args.revision = monitor_revision()
    args.bytecode = cached_bytecode()
    with tempfile.TemporaryDirectory(prefix="monitor-startup-") as tmp:
        workdir = Path(tmp)
        monitor_s, reader_s = prepare(args, workdir)
        notes: list[str] = []
        table = commands(workdir, notes)
        if args.importtime and args.importtime not in table:
            parser.error(f"--importtime takes one of {', '.join(table)}")
        print(f"warm-up: every command once, untimed ({len(table)} commands)", file=sys.stderr, flush=True)
        for label, argv in table.values():
            got = run_once(argv, workdir, args.timeout)
            if got.returncode:
                raise SystemExit(f"{label} failed ({got.returncode}): {got.stderr[-2000:]}")
        names = list(table)
        runs: dict[str, list[Run]] = {name: [] for name in names}
        for round_ in range(args.runs):
            print(f"round {round_ + 1}/{args.runs}", file=sys.stderr, flush=True)
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                got = run_once(table[name][1], workdir, args.timeout)
                if got.returncode:
                    raise SystemExit(f"{table[name][0]} failed ({got.returncode}): {got.stderr[-2000:]}")
                runs[name].append(got)
        load_after = os.getloadavg()
        if args.runs:
            report(args, table, runs, notes, monitor_s, reader_s)
        if args.importtime:
            wall = statistics.median(r.wall for r in runs[args.importtime]) if args.runs else None
            importtime(table[args.importtime][0], table[args.importtime][1], workdir, args.top, wall)
    if monitor_revision() != args.revision:
        print(f"\nNOTE: monitor changed during the run: {args.revision} at the start, {monitor_revision()} at the end")
    print(
        f"\n(total {time.perf_counter() - started:.0f} s; load average (1, 5, 15 min) "
        f"{', '.join(f'{x:.2f}' for x in load_before)} at the start, "
        f"{', '.join(f'{x:.2f}' for x in load_after)} at the end of the timed rounds)"
    )


def report(
    args: argparse.Namespace,
    table: dict[str, tuple[str, list[str]]],
    runs: dict[str, list[Run]],
    notes: list[str],
    monitor_s: float,
    reader_s: float,
) -> None:
    import reader

    print(
        f"\nstart-up, each command a new process timed from spawn to exit, {args.runs} runs each, interleaved; "
        f"{os.cpu_count()} CPUs; monitor at {args.revision}, reader {reader.__version__}, Python "
        f"{sys.version.split()[0]}"
    )
    print(
        f"databases: one first poll of {args.feeds:,} loopback feeds (monitor {monitor_s:.0f} s, reader "
        f"{reader_s:.0f} s to prepare); monitor's commands run as `{' '.join(Path(a).name for a in monitor_command())}`"
    )
    print(args.bytecode)
    for note in notes:
        print(f"note: {note}")
    base = statistics.median(r.wall for r in runs["reader-open"])
    print(f"\n{'':44}{'median s':>10}{'min s':>8}{'CPU s':>8}{'RSS MB':>8}{'x reader':>10}  target")
    verdicts = []
    for name, (label, _) in table.items():
        walls = [r.wall for r in runs[name]]
        median = statistics.median(walls)
        cpu = statistics.median(r.cpu for r in runs[name])
        rss = max(r.rss for r in runs[name])
        ratio = median / base
        target = TARGETS.get(name)
        verdict = "" if target is None else f"≤ {target:g}x: {'met' if ratio <= target else 'NOT met'}"
        if target is not None:
            verdicts.append(f"{label}: {ratio:.2f}x reader ({median:.2f} s), target {verdict}")
        shown = "-" if name == "reader-open" else f"{ratio:.2f}x"
        print(
            f"{label:44}{median:10.3f}{min(walls):8.3f}{cpu:8.2f}{rss / 1e6:8.0f}{shown:>10}  "
            + ("(the baseline)" if name == "reader-open" else verdict or "-")
        )
    print("\nRSS: the peak of the command's largest process (os.wait4); run --once's pollers are not added")
    print("\ntargets (start-up: a command against reader's import-and-open):")
    for line in verdicts:
        print(f"  {line}")


if __name__ == "__main__":
    main()
