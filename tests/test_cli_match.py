"""`monitor match` reproduces DESIGN.md §4 exactly: one JSON line per input item, in input order."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import WriteConfig, cli, cli_process

KEYWORDS = """\
schema = 1

[entities.khankendi]
kind = "place"
names = ["Khankendi", "Stepanakert", "Xankəndi", "Степанакерт", "Ստեփանակերտ"]

[entities.armenia]
kind = "place"
names = ["Armenia"]

[terms.violence]
words = ["shelling", "artillery", "casualt*"]

[[rules]]
id = "karabakh-escalation"
query = '@khankendi AND (@violence OR "ceasefire violation") AND NOT "Grand Prix"'
priority = "urgent"

[[rules]]
id = "armenia-any"
query = "@armenia OR Yerevan"

[[rules]]
id = "title-only"
query = "title:@khankendi"
priority = "low"
"""


def run_match(directory: Path, items: list[dict[str, object]]) -> list[dict[str, object]]:
    stdin = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
    result = cli("match", "--config-dir", str(directory), "--input", "-", stdin=stdin)
    assert result.code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_design_example_exactly(write_config: WriteConfig) -> None:
    directory = write_config(KEYWORDS)
    title = "Artillery fire reported around Stepanakert"
    [out] = run_match(directory, [{"id": "a1", "title": title, "summary": ""}])
    assert out == {
        "id": "a1",
        "matches": [
            {
                "rule": "karabakh-escalation",
                "priority": "urgent",
                "hits": [
                    {"ref": "violence", "text": "Artillery", "field": "title", "start": 0, "end": 9},
                    {"ref": "khankendi", "text": "Stepanakert", "field": "title", "start": 31, "end": 42},
                ],
            },
            {
                "rule": "title-only",
                "priority": "low",
                "hits": [{"ref": "khankendi", "text": "Stepanakert", "field": "title", "start": 31, "end": 42}],
            },
        ],
    }
    assert title[31:42] == "Stepanakert"


def test_order_ids_and_empty_matches(write_config: WriteConfig) -> None:
    directory = write_config(KEYWORDS)
    items: list[dict[str, object]] = [
        {"id": "z-last-alphabetically", "title": "Weather in Oslo", "summary": "Sunny."},
        {"id": 17, "title": "Yerevan talks", "summary": "Shelling near Xankəndi"},
        {"id": "b", "title": "Nothing here", "summary": "Qarabağ FK won"},
    ]
    out = run_match(directory, items)
    assert [o["id"] for o in out] == ["z-last-alphabetically", 17, "b"]
    assert out[0]["matches"] == [] and out[2]["matches"] == []
    # Rules come in config order, whatever order their hits appear in.
    assert [m["rule"] for m in out[1]["matches"]] == ["karabakh-escalation", "armenia-any"]  # type: ignore[index, union-attr]
    literal = out[1]["matches"][1]["hits"][0]  # type: ignore[index]
    assert literal == {"ref": None, "text": "Yerevan", "field": "title", "start": 0, "end": 7}


def test_html_summary_offsets_are_into_text(write_config: WriteConfig) -> None:
    directory = write_config(KEYWORDS)
    summary = '<p>Heavy <b>shelling</b> &amp; fires in <a href="/Armenia">Степанакерт</a></p><script>Armenia</script>'
    [out] = run_match(directory, [{"id": "h", "title": "Update", "summary": summary}])
    text = "Heavy shelling & fires in Степанакерт"
    [rule] = out["matches"]  # type: ignore[misc]
    assert rule["rule"] == "karabakh-escalation"
    hits = rule["hits"]
    assert hits == [
        {"ref": "violence", "text": "shelling", "field": "summary", "start": 6, "end": 14},
        {"ref": "khankendi", "text": "Степанакерт", "field": "summary", "start": 26, "end": 37},
    ]
    assert all(text[h["start"] : h["end"]] == h["text"] for h in hits)


def test_content_field_and_optional_keys(write_config: WriteConfig) -> None:
    directory = write_config(KEYWORDS)
    item = {"id": "c", "title": "Night report", "summary": "", "content": "Casualties in Khankendi.",
            "link": "https://example.com/x", "language": "en", "extra": {"ignored": True}}  # fmt: skip
    [out] = run_match(directory, [item])
    hits = out["matches"][0]["hits"]  # type: ignore[index]
    assert [(h["text"], h["field"], h["start"], h["end"]) for h in hits] == [
        ("Casualties", "content", 0, 10),
        ("Khankendi", "content", 14, 23),
    ]


def test_text_option(write_config: WriteConfig) -> None:
    directory = write_config(KEYWORDS)
    result = cli("match", "--config-dir", str(directory), "--text", "Shelling in XANKƏNDİ")
    assert result.code == 0
    [line] = result.stdout.splitlines()
    out = json.loads(line)
    assert out["matches"][0]["rule"] == "karabakh-escalation"
    assert out["matches"][0]["hits"][1] == {
        "ref": "khankendi",
        "text": "XANKƏNDİ",
        "field": "title",
        "start": 12,
        "end": 20,
    }


def test_input_file_and_bad_lines(write_config: WriteConfig, tmp_path: Path) -> None:
    directory = write_config(KEYWORDS)
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "1", "title": "Armenia"}\n{broken\n\n["not", "an", "object"]\n{"title": "no id"}\n'
                    '{"id": "6", "title": "Armenia again"}\n', encoding="utf-8")  # fmt: skip
    result = cli("match", "--config-dir", str(directory), "--input", str(path))
    assert result.code == 1
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["1", "6"]
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"error: {path}:2: not valid JSON")
    assert errors[1].startswith(f"error: {path}:4: expected a JSON object")
    assert errors[2].startswith(f'error: {path}:5: each item needs an "id"')
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(write_config: WriteConfig) -> None:
    directory = write_config(KEYWORDS)
    assert cli("match", "--config-dir", str(directory)).code == 2
    assert cli("match", "--config-dir", str(directory), "--text", "x", "--input", "-").code == 2
    assert cli("match", "--no-such-option").code == 2


def test_missing_input_file(write_config: WriteConfig, tmp_path: Path) -> None:
    result = cli("match", "--config-dir", str(write_config(KEYWORDS)), "--input", str(tmp_path / "none.jsonl"))
    assert result.code == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'none.jsonl'}: cannot read (No such file or directory)"


def test_real_process_stdin_utf8(write_config: WriteConfig) -> None:
    directory = write_config(KEYWORDS)
    stdin = json.dumps({"id": "u", "title": "Ստեփանակերտ: casualties"}, ensure_ascii=False) + "\n"
    result = cli_process("match", "--config-dir", str(directory), "--input", "-", stdin=stdin)
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["matches"][0]["hits"][0]["text"] == "Ստեփանակերտ"
