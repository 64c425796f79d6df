"""Precision and recall of a watch list on a labelled set of news items.

Runs the real CLI, `monitor match --input ITEMS --config-dir DIR`, reads its JSON Lines (one line per
item, in input order), counts an item as alerted when any rule matched, and compares that with each
item's `relevant` label. Prints both figures and every false positive and false negative with its id
and title; with `--min X`, exits 1 when either figure is below X.

    python bench/relevance/score.py --min 0.9

Stdlib only: the point is to measure the CLI as shipped, so nothing here imports `monitor`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


@dataclass(frozen=True)
class Item:
    """One labelled item of the evaluation set."""

    id: str
    title: str
    relevant: bool


@dataclass(frozen=True)
class Score:
    """The outcome of one run: counts and the misclassified items."""

    true_positives: int
    false_positives: list[Item]
    false_negatives: list[Item]

    @property
    def precision(self) -> float:
        alerted = self.true_positives + len(self.false_positives)
        return self.true_positives / alerted if alerted else 0.0

    @property
    def recall(self) -> float:
        relevant = self.true_positives + len(self.false_negatives)
        return self.true_positives / relevant if relevant else 0.0


def load_items(path: Path) -> list[Item]:
    """The labelled items of a JSON Lines file; blank lines are skipped."""
    items: list[Item] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not isinstance(record.get("relevant"), bool):
            raise SystemExit(f"{path}:{number}: 'relevant' must be true or false")
        items.append(Item(str(record["id"]), str(record.get("title", "")), record["relevant"]))
    return items


def run_match(items_path: Path, config_dir: Path) -> dict[str, bool]:
    """Item id → whether any rule fired, from `monitor match` run as a subprocess."""
    command = [sys.executable, "-m", "monitor", "match", "--input", str(items_path), "--config-dir", str(config_dir)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, encoding="utf-8", check=False)
    if result.returncode != 0:
        raise SystemExit(f"monitor match failed (exit {result.returncode}):\n{result.stderr.strip()}")
    alerted: dict[str, bool] = {}
    for line in result.stdout.splitlines():
        if line.strip():
            record = json.loads(line)
            alerted[str(record["id"])] = bool(record["matches"])
    return alerted


def score(items: list[Item], alerted: dict[str, bool]) -> Score:
    """Compare the labels with what fired; an item missing from the output counts as not alerted."""
    missing = [item.id for item in items if item.id not in alerted]
    if missing:
        raise SystemExit(f"monitor match gave no output line for: {', '.join(missing)}")
    true_positives = sum(1 for item in items if item.relevant and alerted[item.id])
    false_positives = [item for item in items if not item.relevant and alerted[item.id]]
    false_negatives = [item for item in items if item.relevant and not alerted[item.id]]
    return Score(true_positives, false_positives, false_negatives)


def report(result: Score, total: int) -> str:
    """The human-readable summary printed by the script."""
    lines = [
        f"items: {total}  alerted correctly: {result.true_positives}  "
        f"false positives: {len(result.false_positives)}  false negatives: {len(result.false_negatives)}",
        f"precision: {result.precision:.3f}",
        f"recall:    {result.recall:.3f}",
    ]
    for heading, wrong in (("false positives", result.false_positives), ("false negatives", result.false_negatives)):
        if wrong:
            lines.append(f"{heading}:")
            lines.extend(f"  {item.id}  {item.title}" for item in wrong)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=Path, default=HERE / "items.jsonl", help="labelled JSON Lines")
    parser.add_argument("--config-dir", type=Path, default=REPO / "config", help="watch-list directory")
    parser.add_argument("--min", type=float, default=None, help="exit 1 if precision or recall is below this")
    args = parser.parse_args(argv)
    items = load_items(args.items)
    result = score(items, run_match(args.items.resolve(), args.config_dir.resolve()))
    print(report(result, len(items)))
    if args.min is not None and (result.precision < args.min or result.recall < args.min):
        print(f"below the minimum of {args.min}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
