"""The shipped watch list, through the real `monitor match`, on labelled headlines and ledes.

`items.jsonl` is the set the watch list was tuned on. `heldout.jsonl` was written by someone who never saw
the rules; it scored precision 0.986 and recall 0.883 on first contact, and its misses were then fixed by
category (languages, topics) by someone who never saw its items. Both must reach 0.9.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

RELEVANCE = REPO / "bench" / "relevance"


@pytest.mark.parametrize("name", ["items.jsonl", "heldout.jsonl"])
def test_precision_and_recall(name: str) -> None:
    items = RELEVANCE / name
    result = subprocess.run(
        [sys.executable, str(RELEVANCE / "score.py"), "--items", str(items), "--min", "0.9"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "precision:" in result.stdout and "recall:" in result.stdout


def test_source_article_fires_urgent() -> None:
    """The article the watch list was drawn from is itself an urgent story."""
    import json

    article = (REPO / "config" / "sources" / "karabakh-2023-09.txt").read_text(encoding="utf-8")
    title, _, body = article.partition("\n")
    item = json.dumps({"id": "source", "title": "Azerbaijan launches 'antiterrorist' operation in Nagorno-Karabakh",
                       "summary": title, "content": body[:2000]})  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "match", "--input", "-"],
        input=item, capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    matches = json.loads(result.stdout)["matches"]
    assert any(m["priority"] == "urgent" for m in matches), matches


@pytest.mark.parametrize(
    "title",
    [
        "Qarabağ FK stun Chelsea in Champions League thriller in Baku",
        "Verstappen wins the Azerbaijan Grand Prix on Baku's city circuit",
        "Antique Karabakh carpets fetch record prices at London auction",
        "Karabakh horses shine at the international equestrian show",
    ],
)
def test_false_friends_stay_quiet(title: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "match", "--text", title],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"matches": []' in result.stdout, result.stdout
