"""Hypothesis properties of folding and matching (STYLE.md convention 12, DESIGN.md §3 and §4).

- folding is idempotent: folded text folds to itself;
- a name always matches itself in upper, lower and title case, and with its diacritics stripped, in many scripts;
- the matcher never raises, on any text or on HTML-ish text read the way `monitor match` reads it;
- every hit is a slice of its field: `field_text[start:end] == text`, `0 <= start < end <= len(field_text)`,
  and the slice folds to the name it is a hit of;
- HTML read by the fast path (one regular expression) gives the text the stdlib parser gives, on generated
  markup and on every field of the real feeds in ../shared/corpus (skipped when it is absent).
"""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor.items import read_item
from monitor.pipeline.fold import fold_words
from monitor.pipeline.match import Matcher, RuleSpec
from monitor.pipeline.parse import parse_feed
from monitor.pipeline.query import parse
from monitor.pipeline.text import _COMMENT, _parsed_parts, _plain_parts, looks_like_html
from monitor.records import FIELDS, Document, ParsedFeed, RuleMatch
from tests.conftest import SHARED

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Letters of the scripts DESIGN.md §3 names, with their accented and case-tricky letters (ß, ı, ə, final ς,
# Armenian և whose upper case is two letters, Georgian that has an upper case since Unicode 11).
SCRIPTS = {
    "latin": "abcdefghijklmnopqrstuvwxyzàáâãäåçèéêëìíîïñòóôõöøùúûüýÿāăąćčďđēėęěğģīįıķĺļľłńņňōőœŕřśşšţťūůűųźżžßəæþð",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґўқңғүұһәө",
    "greek": "αβγδεζηθικλμνξοπρστυφχψωάέήίόύώϊϋΐΰς",
    "armenian": "աբգդեզէըթժիլխծկհձղճմյնշոչպջռսվտրցւփքօֆև",
    "georgian": "აბგდევზთიკლმნოპჟრსტუფქღყშჩცძწჭხჯჰ",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهويأإآةى",
}

words = st.sampled_from(sorted(SCRIPTS)).flatmap(lambda script: st.text(SCRIPTS[script], min_size=1, max_size=9))
names = st.lists(words, min_size=1, max_size=3).flatmap(
    lambda parts: st.sampled_from([" ", "-"]).map(lambda sep: sep.join(parts))
)


def strip_diacritics(text: str) -> str:
    return unicodedata.normalize(
        "NFC", "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    )


def build(groups: dict[str, list[str]], rules: list[tuple[str, str]]) -> Matcher:
    return Matcher(groups, [RuleSpec(rule_id, "normal", parse(query)) for rule_id, query in rules])


def check_hits(document: Document, matches: tuple[RuleMatch, ...]) -> None:
    for match in matches:
        for hit in match.hits:
            assert hit.field in FIELDS
            text = document.field(hit.field)
            assert 0 <= hit.start < hit.end <= len(text), hit
            assert text[hit.start : hit.end] == hit.text, hit


# ---------------------------------------------------------------------------------------------------------
# Folding.


@PROPERTY
@given(st.text() | names)
@example("𝐀𝐑𝐌𝐄𝐍𝐈𝐀")  # mathematical bold capitals, as in styled social-media posts
@example("ᴬ")  # modifier letter capital A
@example("ǣ")  # æ with macron: æ folds to two letters
@example("กำลัง")  # Thai SARA AM decomposes into two characters of a script without spaces
def test_folding_is_idempotent(text: str) -> None:
    folded = fold_words(text)
    assert fold_words(folded.strip()) == folded


@PROPERTY
@given(st.text())
def test_folding_is_words_between_single_spaces(text: str) -> None:
    folded = fold_words(text)
    assert folded.startswith(" ")
    assert folded.endswith(" ")
    assert "  " not in folded.strip()


# ---------------------------------------------------------------------------------------------------------
# A name matches itself in any case and without its diacritics.


@PROPERTY
@given(names, st.sampled_from(["upper", "lower", "title", "stripped", "stripped-upper", "same"]))
def test_name_matches_itself(name: str, variant_kind: str) -> None:
    variant = {
        "upper": name.upper(),
        "lower": name.lower(),
        "title": name.title(),
        "stripped": strip_diacritics(name),
        "stripped-upper": strip_diacritics(name).upper(),
        "same": name,
    }[variant_kind]
    prefix = "News: «"
    document = Document("item", f"{prefix}{variant}», more.", summary=f"{variant}")
    matcher = build({"g": [name]}, [("by-name", "@g"), ("by-literal", f'"{name}"')])
    fired = matcher.match(document)
    assert [m.rule for m in fired] == ["by-name", "by-literal"]
    check_hits(document, fired)
    for match in fired:
        starts = {(hit.field, hit.start) for hit in match.hits}
        assert ("title", len(prefix)) in starts
        assert ("summary", 0) in starts
        # A variant whose last letter is followed by a combining mark (upper-case ΐ is Ϊ́) is covered by
        # test_semantics.py::test_hit_details[combining-ends-word]; here the whole variant is the hit.
        if not any(unicodedata.combining(word[-1]) for word in variant.replace("-", " ").split()):
            texts = {(hit.field, hit.text) for hit in match.hits}
            assert ("title", variant) in texts
            assert ("summary", variant) in texts


# ---------------------------------------------------------------------------------------------------------
# The matcher never raises, and every hit it reports is a slice of its field.

NAMES = {
    "armenia": "Armenia",
    "armenia_prefix": "Armenia*",
    "eu_mission": "EU Mission in Armenia",
    "nk": "Nagorno-Karabakh",
    "khankendi": "Xankəndi",
    "street": "Straße",
    "stepanakert_ru": "Степанакерт",
    "karabakh_ru": "Нагорн* Карабах*",
    "stepanakert_hy": "Ստեփանակերտ",
    "georgia": "საქართველო",
    "greek": "Αζερμπαϊτζάν",
    "arabic": "أذربيجان",
    "japanese": "ナゴルノ・カラバフ",
    "chinese": "纳戈尔诺-卡拉巴赫",
    "thai": "อาเซอร์ไบจาน",
    "casualty": "casualt*",
}
RULES = [
    ("any", " OR ".join(f"@{gid}" for gid in NAMES)),
    ("literal", '"EU Mission in Armenia" OR Armenia* OR "Нагорн* Карабах*" OR ナゴルノ・カラバフ'),
    ("near", "@armenia NEAR/3 (@nk OR @khankendi OR @eu_mission)"),
    ("title", "title:(@armenia OR @japanese) AND NOT @casualty"),
    ("not", "NOT @armenia"),
]
MATCHER = build({gid: [name] for gid, name in NAMES.items()}, RULES)

FRAGMENTS = [
    *NAMES.values(),
    *(name.upper() for name in NAMES.values()),
    *(name.lower() for name in NAMES.values()),
    "Armenian",
    "Armenia's",
    "Nagorno–Karabakh",
    "XANKƏNDİ",
    "STRASSE",
    "ﬁ",
    "e\u0301",
    "係争地域の",
    "Нагорном Карабахе",
    "casualties",
]
SEPARATORS = [" ", "  ", "-", "–", "’", ",", ".", "\n", "\u00a0", "\u200b", ""]
MARKUP = ["<p>", "</p>", "<b>", "</b>", "<br>", "<script>", "</script>", "<!--", "-->", "&amp;", "&#8217;", "&nbsp;",
          "&lt;", '<a href="Armenia">', "</a>", "<", ">", "&", '"', "<style>Armenia</style>"]  # fmt: skip

plain_texts = st.lists(st.sampled_from(FRAGMENTS) | st.sampled_from(SEPARATORS) | st.text(max_size=6), max_size=12).map(
    "".join
)
html_texts = st.lists(
    st.sampled_from(FRAGMENTS) | st.sampled_from(SEPARATORS) | st.sampled_from(MARKUP) | st.text(max_size=4),
    max_size=14,
).map("".join)


def check_document(document: Document) -> None:
    fired = MATCHER.match(document)
    rules = [m.rule for m in fired]
    assert rules == [rule for rule, _ in RULES if rule in rules]  # config order, each at most once
    check_hits(document, fired)
    for match in fired:
        for hit in match.hits:
            assert hit.ref in NAMES or hit.ref is None
            if hit.ref is None:
                continue
            name = NAMES[hit.ref]
            found = fold_words(hit.text).strip()
            if "*" in name:
                assert found.split()[0].startswith(fold_words(name.split("*")[0]).split()[0]), (hit, name)
            else:
                assert found == fold_words(name).strip(), (hit, name)


@PROPERTY
@given(st.text(), st.text(), st.text())
@example("ǣ", "Ǽ", "ﹷ")  # each folds through a character the fold table maps to two letters or to none
def test_matcher_never_raises_on_any_text(title: str, summary: str, content: str) -> None:
    check_document(Document("item", title, summary, content))


@PROPERTY
@given(plain_texts, plain_texts, plain_texts)
def test_hits_are_slices_of_their_field(title: str, summary: str, content: str) -> None:
    check_document(Document("item", title, summary, content))


@PROPERTY
@given(html_texts, html_texts, st.text() | html_texts)
def test_matcher_never_raises_on_html(title: str, summary: str, content: str) -> None:
    line = json.dumps({"id": "item", "title": title, "summary": summary, "content": content})
    check_document(read_item(line, "<hypothesis>:1").document)


# Tags and text the stdlib parser reads in ways a regular expression could get wrong: quotes holding `>`,
# unquoted values with `/`, upper case, end tags with attributes, names with `:`, bare `<` and `&`,
# declarations, CDATA, hidden elements, entities without `;`.
TRICKY_MARKUP = ["<p>", "</p>", "<P class='a>b'>", "<br/>", "<BR >", "<img src=x/>", '<a href="x">', "</a>",
                 "</p x>", "<o:p>", "</o:p>", "<b\nclass=c>", "<!DOCTYPE html>", "<![CDATA[x]]>", "<?php ?>",
                 "<script>", "</script>", "<style>", "<svg/>", "<!-- c -->", "<!--", "-->", "<", ">", "</", "=",
                 "&", "&amp", "&amp;", "&#39;", "&#x41;", "&nbsp", "&notit;", "&lt;b&gt;", '"', "'", "`", "\t",
                 "<td>", "</td>", "<div\tid=\"d\"\n>", "<a b c=d e='f' g=\"h\">", "<a =x>", "<1>", "x<y"]  # fmt: skip
markup_texts = st.lists(
    st.sampled_from(TRICKY_MARKUP) | st.sampled_from(FRAGMENTS) | st.sampled_from(SEPARATORS) | st.text(max_size=3),
    max_size=16,
).map("".join)


def read_alike(html: str) -> bool | None:
    """Whether the fast path's reading of `html` gives the parser's text; None when it leaves it to the parser."""
    html = _COMMENT.sub("", html)
    fast = _plain_parts(html)
    if fast is None:
        return None
    return " ".join("".join(fast).split()) == " ".join("".join(_parsed_parts(html)).split())


@PROPERTY
@given(markup_texts)
def test_the_fast_html_path_reads_as_the_parser_does(html: str) -> None:
    assert read_alike(html) is not False


def test_plain_feed_markup_takes_the_fast_path() -> None:
    for html in ('<p class="a>b">Armenia</p>&amp<br/>Azerbaijan', "<P>Lachin</p ><DIV>corridor",
                 '<a href=/x/>Goris</a> &amp; <img src="i.png"/>'):  # fmt: skip
        assert read_alike(html) is True, html
    assert read_alike("<script>Karabakh</script>") is None and read_alike("a < b <p>") is None


@pytest.mark.skipif(not (SHARED / "corpus").is_dir(), reason="../shared/corpus is not present")
def test_the_fast_html_path_reads_real_feeds_as_the_parser_does() -> None:
    readings: list[bool | None] = []
    for path in sorted((SHARED / "corpus").rglob("*")):
        if not path.is_file() or path.suffix == ".md":
            continue
        parsed = parse_feed(path.read_bytes(), {}, "https://corpus.example/")
        if not isinstance(parsed, ParsedFeed):
            continue
        for entry in parsed.entries:
            for field in (entry.title, entry.summary, entry.content):
                if field and looks_like_html(field):
                    readings.append(read_alike(field))
                    assert readings[-1] is not False, (path.name, field[:200])
    assert readings.count(True) > 1000  # most real feed HTML is plain: the fast path is what runs
