"""The whole-process side of bench/cycle.py: each poll cycle as one new process, timed from spawn to exit, so
start-up, opening the database and shutting down count as they do for a cron job or `monitor run --once`.

- monitor: `python -m monitor run --once --config-dir DIR --db sqlite:///FILE --log-level WARNING`, its stdout
  (alerts on the console channel and the summary line) to a file, read afterwards for the counts;
- reader: `python bench/reader_cycle.py FILE URLS WORKERS`, which adds the feeds when the database is new (in
  the first cycle's process, timed: it is what reader needs on first use, as monitor syncs feeds.toml into
  its database in its first run) and runs `update_feeds_iter(scheduled=False, workers=WORKERS)`.

Measured per process: wall time from spawn to exit; CPU from `os.wait4` (the process and the descendants it
reaped: monitor reaps its pollers), split by sampling the descendants' CPU in /proc; peak RSS, the sum over the
process tree of each process's VmHWM (sampled every 0.1 s, the direct child's taken from wait4 too); peak PSS,
sampled every 0.5 s over the live tree. The sampler runs in the benchmark's process, ~3% of one core.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cycle import PHASES, ROOT, Result, Rows, _children, _mb, _ratio, tree_pss, write_config
from farm import Farm, Plan

READER_CYCLE = Path(__file__).with_name("reader_cycle.py")
SUMMARY = re.compile(
    r"(\d+) feeds polled: (\d+) not modified, (\d+) failed; (\d+) new items, (\d+) alerts, (\d+) deliveries "
    r"queued; deliveries: (\d+) sent"
)
"""monitor run --once's last line (runner._once): the counts of the cycle."""


def _proc_fields(pid: int) -> tuple[float, int] | None:
    """CPU seconds (utime + stime) and VmHWM bytes of a live process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return cpu, int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        return None
    return cpu, 0


@dataclass
class Measured:
    """One process run from spawn to exit."""

    wall: float = 0.0
    cpu: float = 0.0
    """The process and every descendant it reaped (os.wait4)."""
    cpu_children: float = 0.0
    """The descendants' CPU as last sampled (a slight underestimate: up to 0.1 s before each exits)."""
    rss_main: int = 0
    rss_children: int = 0
    """Sum of the descendants' peak RSS."""
    pss: int = 0
    processes: int = 1
    returncode: int = 0
    timed_out: bool = False
    hwm: dict[int, int] = field(default_factory=dict)


class TreeSampler:
    """Samples a process and its descendants until stopped; kills the process group at the deadline."""

    def __init__(self, pid: int, deadline: float, every: float = 0.1, pss_every: int = 5) -> None:
        self.pid, self.deadline, self.every, self.pss_every = pid, deadline, every, pss_every
        self.hwm: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.pss = 0
        self.timed_out = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)
        self._thread.start()

    def _sample(self, tick: int) -> None:
        pids = [self.pid, *_children(self.pid)]
        for pid in pids:
            got = _proc_fields(pid)
            if got is not None:
                self.cpu[pid], self.hwm[pid] = got[0], max(self.hwm.get(pid, 0), got[1])
        if tick % self.pss_every == 0:
            self.pss = max(self.pss, tree_pss(pids))

    def _run(self) -> None:
        tick = 0
        while True:
            self._sample(tick)
            tick += 1
            if time.perf_counter() > self.deadline:
                self.timed_out = True
                with contextlib.suppress(OSError):
                    os.killpg(self.pid, signal.SIGKILL)  # the group of the process we started, and only it
                return
            if self._stop.wait(self.every):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_measured(
    argv: Sequence[str], *, timeout: float, stdout: IO[Any] | int, stderr: IO[Any] | int, cwd: Path = ROOT
) -> Measured:
    """Run `argv` in a session of its own, measured from spawn to exit; killed (with its group) at `timeout`."""
    started = time.perf_counter()
    process = subprocess.Popen(list(argv), stdout=stdout, stderr=stderr, cwd=cwd, start_new_session=True)
    sampler = TreeSampler(process.pid, started + timeout)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    sampler.stop()
    try:
        os.killpg(process.pid, 0)  # a descendant outlived the process: stop it, the cycle is over
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass
    children = {pid: rss for pid, rss in sampler.hwm.items() if pid != process.pid}
    return Measured(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        cpu_children=sum(cpu for pid, cpu in sampler.cpu.items() if pid != process.pid),
        # wait4's ru_maxrss is the largest of the process and its reaped descendants: monitor's main process
        rss_main=max(sampler.hwm.get(process.pid, 0), usage.ru_maxrss * 1024),
        rss_children=sum(children.values()),
        pss=sampler.pss,
        processes=len(sampler.hwm),
        returncode=process.returncode,
        timed_out=sampler.timed_out,
        hwm=dict(sampler.hwm),
    )


def _result(measured: Measured) -> Result:
    """The fields the in-process report prints, from a measured process."""
    return {
        "wall": measured.wall,
        "cpu": measured.cpu,
        "cpu_main": measured.cpu - measured.cpu_children,
        "peak_rss": measured.rss_main + measured.rss_children,
        "peak_rss_main": measured.rss_main,
        "peak_rss_children": measured.rss_children,
        "peak_pss": measured.pss,
        "processes": measured.processes,
    }


def _tail(path: Path, lines: int = 3) -> str:
    text = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])


def monitor_phase(workdir: Path, timeout: float) -> Result:
    out, err = workdir / "stdout.txt", workdir / "stderr.txt"
    command = [sys.executable, "-m", "monitor", "run", "--once", "--config-dir", str(workdir / "config")]
    command += ["--db", f"sqlite:///{workdir / 'monitor.db'}", "--log-level", "WARNING"]
    with open(out, "w") as stdout, open(err, "w") as stderr:
        measured = run_measured(command, timeout=timeout, stdout=stdout, stderr=stderr)
    result = _result(measured)
    text = out.read_text(errors="replace")
    summary = SUMMARY.findall(text)
    if measured.timed_out or measured.returncode != 0 or not summary:
        why = "timed out" if measured.timed_out else f"exit {measured.returncode}"
        raise RuntimeError(f"monitor run --once: {why}; stderr: {_tail(err)}; stdout: {text[-300:]!r}")
    polled, not_modified, failed, new_items, alerts, _, sent = map(int, summary[-1])
    failures = [line for line in err.read_text(errors="replace").splitlines() if line.startswith("failed: ")]
    return {
        **result,
        "feeds": polled,
        "new_items": new_items,
        "not_modified": not_modified,
        "errors": failed,
        "alerts": alerts,
        "sent": sent,
        "first_error": failures[0] if failures else None,
    }


def reader_phase(workdir: Path, urls_file: Path, workers: int, timeout: float) -> Result:
    out, err = workdir / "stdout.txt", workdir / "stderr.txt"
    command = [sys.executable, str(READER_CYCLE), str(workdir / "reader.sqlite"), str(urls_file), str(workers)]
    with open(out, "w") as stdout, open(err, "w") as stderr:
        measured = run_measured(command, timeout=timeout, stdout=stdout, stderr=stderr)
    lines = out.read_text(errors="replace").strip().splitlines()
    if measured.timed_out or measured.returncode != 0 or not lines:
        why = "timed out" if measured.timed_out else f"exit {measured.returncode}"
        raise RuntimeError(f"reader_cycle.py: {why}; stderr: {_tail(err)}")
    counts: Result = json.loads(lines[-1])
    return {**_result(measured), **counts}


def run_client(
    name: str, farm: Farm, plans: dict[str, Plan | None], args: argparse.Namespace, tmp: Path
) -> dict[str, Result]:
    """The three cycles of bench/cycle.py, each one new process, from a fresh database; the farm reset first.
    One untimed process first polls five feeds, so both clients start with their bytecode cached and their
    files in the page cache."""
    workdir = tmp / f"whole-{name}"
    warm = workdir / "warm-up"
    warm.mkdir(parents=True)
    (warm / "urls.txt").write_text("\n".join(farm.urls[:5]))
    print(f"  {name} (whole process): warm-up, five feeds ...", file=sys.stderr, flush=True)
    if name == "monitor":
        write_config(warm / "config", farm.urls[:5])
        monitor_phase(warm, args.phase_timeout)
    else:
        reader_phase(warm, warm / "urls.txt", args.workers, args.phase_timeout)
    farm.reset()
    urls_file = workdir / "urls.txt"
    urls_file.write_text("\n".join(farm.urls))
    if name == "monitor":
        write_config(workdir / "config", farm.urls)
    results: dict[str, Result] = {}
    for phase in PHASES:
        plan = plans[phase]
        if plan is not None:
            farm.next_cycle(plan)
        else:
            farm.counts()
        print(f"  {name} (whole process): {phase} ...", file=sys.stderr, flush=True)
        if name == "monitor":
            result = monitor_phase(workdir, args.phase_timeout)
        else:
            result = reader_phase(workdir, urls_file, args.workers, args.phase_timeout)
        result["farm"] = farm.counts()
        results[phase] = result
    return results


def side_by_side(inproc: dict[str, Rows], whole: dict[str, Rows]) -> None:
    """The two modes' figures, cycle by cycle, on one line per client."""
    cols = f"{'wall s':>8}{'CPU s':>8}{'feeds/s':>9}{'RSS MB':>8}"
    print("\nside by side: in process (one long-lived process per client) | whole process (one per cycle, spawn")
    print("to exit); RSS is the peak summed over the client's processes")
    print(f"{'':18}{cols}  |{cols}")
    for phase in PHASES:
        print(phase)
        names = [n for n in inproc[phase] if n in whole[phase]]
        for name in names:
            cells = []
            for rows in (inproc[phase], whole[phase]):
                r = rows[name]
                cells.append(f"{r['wall']:8.2f}{r['cpu']:8.2f}{r['fps']:9,.0f}{_mb(r['rss']):>8}")
            print(f"  {name:16}{cells[0]}  |{cells[1]}")
        if "monitor" in names and "reader" in names:
            cells = []
            for rows in (inproc[phase], whole[phase]):
                m, d = rows["monitor"], rows["reader"]
                cells.append(
                    f"{_ratio(m['wall'], d['wall']):>8}{_ratio(m['cpu'], d['cpu']):>8}"
                    f"{_ratio(m['fps'], d['fps']):>9}{_ratio(m['rss'], d['rss']):>8}"
                )
            print(f"  {'monitor/reader':16}{cells[0]}  |{cells[1]}")
        extra = ", ".join(f"{n} {whole[phase][n]['wall'] - inproc[phase][n]['wall']:+.2f} s" for n in names)
        print(f"  {'':16}wall time, whole − in process: {extra}")
