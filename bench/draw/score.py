"""How well `monitor draw` proposes what an editor would write down, on real articles in several languages.

    .venv/bin/python bench/draw/score.py [--labels bench/draw/labels.json] [--show]

Each article of `labels.json` is read from `../shared` (the source article, or one entry of a corpus feed,
its headline and body), run through `monitor draw --json` as a user runs it (a file in, a process), and
compared with the entities labelled for it: recall (each expected entity proposed under one of its names),
the aliases the article gives that were found beside their entity, and the wrong proposals among the top
ten (proposed, neither expected nor among the story's other acceptable entities). Targets on this set:
recall ≥ 0.9, at most one wrong proposal per article among the top ten. Without ../shared it says so and
exits 0.
"""

from __future__ import annotations

import argparse
import html
import json
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SHARED = REPO.parent / "shared"
TOP = 10
SHOW = 25


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def article_file(spec: dict[str, Any], folder: Path) -> Path:
    """The article as a file `monitor draw` reads: the source text itself, or a corpus entry as HTML."""
    if "file" in spec:
        return SHARED / spec["file"]
    import feedparser

    feed = feedparser.parse(str(SHARED / "corpus" / spec["corpus"]))
    for entry in feed.entries:
        if entry.get("title", "").startswith(spec["title"]):
            body = max([c.get("value", "") for c in entry.get("content", [])] + [entry.get("summary", "")], key=len)
            page = folder / f"{spec['id']}.html"
            page.write_text(
                f"<html><head><title>{html.escape(entry.title)}</title></head><body><article>"
                f"<h1>{html.escape(entry.title)}</h1><p>{body}</p></article></body></html>",
                encoding="utf-8",
            )
            return page
    raise SystemExit(f"{spec['id']}: no entry titled {spec['title']!r} in {spec['corpus']}")


def score(spec: dict[str, Any], proposal: dict[str, Any]) -> dict[str, Any]:
    entities = proposal["entities"]
    names = [{_fold(n) for n in e["names"]} for e in entities]

    def found(group: list[str]) -> int | None:
        wanted = {_fold(n) for n in group}
        return next((i for i, ns in enumerate(names) if ns & wanted), None)

    hits = {tuple(g): found(g) for g in spec["expected"]}
    acceptable = [g for g in spec["expected"] + spec.get("also", [])]
    wrong = [e["names"][0] for i, e in enumerate(entities[:TOP])
             if not any({_fold(n) for n in g} & names[i] for g in acceptable)]  # fmt: skip
    aliases = [pair for pair in spec.get("aliases", [])
               if any({_fold(pair[0]), _fold(pair[1])} <= ns for ns in names)]  # fmt: skip
    return {
        "recall": sum(1 for v in hits.values() if v is not None) / len(hits),
        "missed": [g[0] for g, v in hits.items() if v is None],
        "wrong": wrong,
        "aliases": (len(aliases), len(spec.get("aliases", []))),
        "language": proposal["language"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=Path, default=HERE / "labels.json")
    parser.add_argument("--show", action="store_true", help="print each article's proposals")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is not here")
        return
    specs = json.loads(args.labels.read_text(encoding="utf-8"))["articles"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="monitor-draw-bench-") as tmp:
        for spec in specs:
            path = article_file(spec, Path(tmp))
            done = subprocess.run([sys.executable, "-m", "monitor", "draw", str(path), "--json"], cwd=REPO,
                                  capture_output=True, text=True, check=False)  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"{spec['id']}: monitor draw failed: {done.stderr.strip()}")
            proposal = json.loads(done.stdout)
            result = score(spec, proposal)
            rows.append((spec, result))
            if args.show:
                print(f"\n{spec['id']}:")
                for entity in proposal["entities"][:SHOW]:
                    print(f"  {entity['kind']:7} {entity['count']:3}  {', '.join(entity['names'][:5])}")
    print(f"\n{'article':22}{'lang':>6}{'recall':>8}{'aliases':>9}{'wrong in top 10':>17}  missed / wrong")
    wrong_articles = 0
    for spec, r in rows:
        got, total = r["aliases"]
        wrong_articles += len(r["wrong"]) > 1
        detail = "; ".join(filter(None, [", ".join(r["missed"]) and "missed: " + ", ".join(r["missed"]),
                                         ", ".join(r["wrong"]) and "wrong: " + ", ".join(r["wrong"])]))  # fmt: skip
        print(f"{spec['id']:22}{r['language']:>6}{r['recall']:8.2f}{f'{got}/{total}':>9}{len(r['wrong']):17}  {detail}")
    recall = sum(r["recall"] for _, r in rows) / len(rows)
    print(
        f"\nmean recall {recall:.2f} (target ≥ 0.9: {'met' if recall >= 0.9 else 'NOT met'}); articles with more "
        f"than one wrong proposal in the top ten: {wrong_articles} of {len(rows)} (target 0: "
        f"{'met' if wrong_articles == 0 else 'NOT met'}); languages: "
        f"{', '.join(sorted({r['language'] for _, r in rows}))}"
    )


if __name__ == "__main__":
    main()
