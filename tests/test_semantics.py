"""The rule language and matching semantics of DESIGN.md §3, and the hit details of §4, as tables.

Every row is written from DESIGN.md, not from the code: the query table (`word`, `"a phrase"`, `@id`, `pre*`,
boolean logic, `NEAR/n`, `title:`), the "Matching semantics" bullets (whole words, case and diacritics in
many scripts, scripts without spaces, punctuation, HTML, overlapping names), the hit fields `monitor match`
reports (`ref`, `text`, `field`, `start`, `end`), and query syntax errors with their column.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from monitor.errors import QuerySyntaxError
from monitor.items import read_item
from monitor.pipeline.match import Matcher, RuleSpec
from monitor.pipeline.query import parse
from monitor.records import Document

HitRow = tuple[str | None, str, str, int, int]  # ref, text, field, start, end
Fired = list[tuple[str, list[HitRow]]]  # rule id and its hits, in the order the matcher gives them

# The watch list of DESIGN.md §3, widened with a few groups the tables below need.
GROUPS: dict[str, list[str]] = {
    "khankendi": ["Khankendi", "Stepanakert", "Xankəndi", "Степанакерт", "Ստեփանակերտ"],
    "violence": ["shelling", "artillery", "mine blast", "casualt*", "antiterrorist operation*"],
    "armenia": ["Armenia", "Հայաստան"],
    "eu_mission": ["EU Mission in Armenia"],
    "karabakh": ["Nagorno-Karabakh", "Karabakh"],
}


def build(groups: Mapping[str, Sequence[str]], rules: Sequence[tuple[str, str]]) -> Matcher:
    """A Matcher over `groups`, with `rules` given as (rule id, query) in config order."""
    return Matcher(groups, [RuleSpec(rule_id, "normal", parse(query)) for rule_id, query in rules])


def run(
    groups: Mapping[str, Sequence[str]],
    rules: Sequence[tuple[str, str]],
    document: Document,
) -> Fired:
    """The rules that fire on `document`, in the matcher's order, each with its hits as plain tuples."""
    fired: Fired = []
    for match in build(groups, rules).match(document):
        for h in match.hits:  # every hit, everywhere: the offsets give back the text
            assert document.field(h.field)[h.start : h.end] == h.text, h
        fired.append((match.rule, [(h.ref, h.text, str(h.field), h.start, h.end) for h in match.hits]))
    return fired


def doc(title: str = "", summary: str = "", content: str = "") -> Document:
    return Document("item", title, summary, content)


def fires(query: str, document: Document, groups: Mapping[str, Sequence[str]] = GROUPS) -> bool:
    result = run(groups, [("rule", query)], document)
    assert [rule for rule, _ in result] in ([], ["rule"])
    return bool(result)


def html_item(**fields: str) -> Document:
    """The Document `monitor match` builds from one JSON line (HTML turned into text)."""
    return read_item(json.dumps({"id": "item", **fields}), "<test>:1").document


def rows(*table: tuple[Any, ...]) -> list[Any]:
    """pytest params from rows whose first cell is the readable id."""
    return [pytest.param(*row[1:], id=row[0]) for row in table]


# ---------------------------------------------------------------------------------------------------------
# The query table: each form, positive and negative.

QUERY_FORMS = rows(
    # `word`: the literal term anywhere in title or summary/content.
    ("word-in-title", "Armenia", doc("Troops left Armenia today"), True),
    ("word-in-summary", "Armenia", doc("Troops left", "They left Armenia"), True),
    ("word-in-content", "Armenia", doc("Troops left", "", "They left Armenia"), True),
    ("word-absent", "Armenia", doc("Baku said", "Nothing else", "at all"), False),
    ("word-uppercase-NEAR-prefix-is-a-word", "NEARBY", doc("Clashes nearby"), True),
    # `"a phrase"`.
    ("phrase", '"mine blast"', doc("A mine blast killed two"), True),
    ("phrase-across-dash", '"mine blast"', doc("A mine-blast killed two"), True),
    ("phrase-words-apart", '"mine blast"', doc("A blast from a mine"), False),
    ("phrase-words-reversed", '"mine blast"', doc("blast mine"), False),
    ("phrase-longer-last-word", '"mine blast"', doc("mine blasts"), False),
    ("phrase-operators-are-words", '"war AND peace"', doc("War and Peace"), True),
    ("phrase-operators-are-words-neg", '"war AND peace"', doc("War or peace"), False),
    # `@id`: any name of an entity.
    ("ref-entity-first-name", "@khankendi", doc("Curfew in Khankendi"), True),
    ("ref-entity-other-name", "@khankendi", doc("Curfew in Stepanakert"), True),
    ("ref-entity-cyrillic-name", "@khankendi", doc("Комендантский час в Степанакерте", "в Степанакерт"), True),
    ("ref-entity-armenian-name", "@khankendi", doc("Ստեփանակերտ"), True),
    ("ref-entity-no-name", "@khankendi", doc("Curfew in Baku", "and in Shusha"), False),
    # `@id`: any word of a term group.
    ("ref-term-word", "@violence", doc("Heavy artillery overnight"), True),
    ("ref-term-phrase", "@violence", doc("", "A mine blast on the road"), True),
    ("ref-term-prefix", "@violence", doc("Casualties rose"), True),
    ("ref-term-phrase-prefix", "@violence", doc("Antiterrorist operations ended"), True),
    ("ref-term-no-word", "@violence", doc("Peace talks resume", "a blast of cold air"), False),
    ("ref-term-word-is-whole", "@violence", doc("The artillerymen went home"), False),
    # `pre*`: any word continuation.
    ("prefix-continued", "peacekeep*", doc("Russian peacekeepers left"), True),
    ("prefix-empty-continuation", "peacekeep*", doc("Russian peacekeep"), True),
    ("prefix-split-word", "peacekeep*", doc("peace keeping"), False),
    ("prefix-mid-word", "keep*", doc("peacekeepers"), False),
    ("prefix-cyrillic-continued", "Карабах*", doc("бои в Нагорном Карабахе"), True),
    ("prefix-cyrillic-upper", "Карабах*", doc("КАРАБАХСКИЙ конфликт"), True),
    ("prefix-cyrillic-exact", "Карабах*", doc("Нагорный Карабах"), True),
    ("prefix-cyrillic-absent", "Карабах*", doc("бои в Азербайджане"), False),
    ("prefix-diacritics-folded", "Qarabağ*", doc("QARABAGDA"), True),
    ("prefix-diacritics-other-word", "Qarabağ*", doc("Qaraba"), False),
    ("prefix-in-phrase", '"Нагорн* Карабах*"', doc("бои в Нагорном Карабахе"), True),
    ("prefix-in-phrase-apart", '"Нагорн* Карабах*"', doc("в Нагорном районе Карабаха"), False),
    # AND, OR, NOT, parentheses.
    ("and-both", "Armenia AND Azerbaijan", doc("Armenia", "Azerbaijan"), True),
    ("and-one", "Armenia AND Azerbaijan", doc("Armenia"), False),
    ("or-left", "Armenia OR Azerbaijan", doc("Armenia"), True),
    ("or-right", "Armenia OR Azerbaijan", doc("", "Azerbaijan"), True),
    ("or-none", "Armenia OR Azerbaijan", doc("Georgia"), False),
    ("not-absent", "NOT Russia", doc("Baku"), True),
    ("not-present", "NOT Russia", doc("Russia"), False),
    ("and-not-absent", 'Armenia AND NOT "Grand Prix"', doc("Armenia votes"), True),
    ("and-not-present", 'Armenia AND NOT "Grand Prix"', doc("Armenia", "the Grand Prix"), False),
    ("not-binds-one-operand", "NOT Russia AND Armenia", doc("Russia"), False),
    ("not-binds-one-operand-pos", "NOT Russia AND Armenia", doc("Armenia"), True),
    ("and-tighter-than-or-a", "a OR b AND c", doc("a"), True),
    ("and-tighter-than-or-b", "a OR b AND c", doc("b"), False),
    ("and-tighter-than-or-bc", "a OR b AND c", doc("b c"), True),
    ("and-tighter-than-or-c", "a OR b AND c", doc("c"), False),
    ("and-tighter-on-the-left-c", "a AND b OR c", doc("c"), True),
    ("and-tighter-on-the-left-a", "a AND b OR c", doc("a"), False),
    ("parens-override-a", "(a OR b) AND c", doc("a"), False),
    ("parens-override-bc", "(a OR b) AND c", doc("b c"), True),
    ("parens-nested", "((a OR (b)))", doc("b"), True),
    ("design-rule-fires", '@khankendi AND (@violence OR "ceasefire violation") AND NOT "Grand Prix"',
     doc("Artillery fire reported around Stepanakert"), True),
    ("design-rule-ceasefire", '@khankendi AND (@violence OR "ceasefire violation") AND NOT "Grand Prix"',
     doc("Stepanakert", "a ceasefire violation"), True),
    ("design-rule-grand-prix", '@khankendi AND (@violence OR "ceasefire violation") AND NOT "Grand Prix"',
     doc("Artillery near Stepanakert", "at the Grand Prix"), False),
    ("design-rule-no-violence", '@khankendi AND (@violence OR "ceasefire violation") AND NOT "Grand Prix"',
     doc("Concert in Stepanakert"), False),
    # `a NEAR/n b`: later hit's first word minus earlier hit's last word at most n, either order.
    ("near-2-apart-n2", "Armenia NEAR/2 Azerbaijan", doc("Armenia and Azerbaijan"), True),
    ("near-2-apart-n1", "Armenia NEAR/1 Azerbaijan", doc("Armenia and Azerbaijan"), False),
    ("near-either-order-n2", "Azerbaijan NEAR/2 Armenia", doc("Armenia and Azerbaijan"), True),
    ("near-either-order-n1", "Azerbaijan NEAR/1 Armenia", doc("Armenia and Azerbaijan"), False),
    ("near-adjacent-n1", "Armenia NEAR/1 Azerbaijan", doc("Armenia, Azerbaijan"), True),
    ("near-adjacent-n0", "Armenia NEAR/0 Azerbaijan", doc("Armenia Azerbaijan"), False),
    ("near-far", "Armenia NEAR/5 Azerbaijan", doc("Armenia a b c d e f g Azerbaijan"), False),
    ("near-far-enough", "Armenia NEAR/8 Azerbaijan", doc("Armenia a b c d e f g Azerbaijan"), True),
    ("near-multiword-earlier-n2", '"Nagorno Karabakh" NEAR/2 Azerbaijan', doc("Nagorno-Karabakh and Azerbaijan"),
     True),
    ("near-multiword-earlier-n1", '"Nagorno Karabakh" NEAR/1 Azerbaijan', doc("Nagorno-Karabakh and Azerbaijan"),
     False),
    ("near-multiword-later-n2", 'Azerbaijan NEAR/2 "Nagorno Karabakh"', doc("Azerbaijan seized Nagorno-Karabakh"),
     True),
    ("near-multiword-later-3", 'Azerbaijan NEAR/2 "Nagorno Karabakh"', doc("Azerbaijan has seized Nagorno-Karabakh"),
     False),
    ("near-some-pair", "Armenia NEAR/1 Azerbaijan", doc("Armenia a b c Azerbaijan, Armenia"), True),
    ("near-refs", "@armenia NEAR/3 @violence", doc("Հայաստան reports shelling"), True),
    ("near-refs-far", "@armenia NEAR/1 @violence", doc("Հայաստան reports heavy shelling"), False),
    ("near-no-overlap-self", "Armenia NEAR/3 Armenia", doc("Armenia"), False),
    ("near-no-overlap-self-two", "Armenia NEAR/3 Armenia", doc("Armenia and Armenia"), True),
    ("near-no-overlap-nested", 'Armenia NEAR/5 "EU Mission in Armenia"', doc("EU Mission in Armenia"), False),
    ("near-no-overlap-other", 'Armenia NEAR/5 "EU Mission in Armenia"', doc("Armenia hosts the EU Mission in Armenia"),
     True),
    ("near-one-side-missing", "Armenia NEAR/5 Azerbaijan", doc("Armenia alone"), False),
    # `title:x`: x must hit in the title.
    ("title-term", "title:Armenia", doc("Armenia votes", "Armenia"), True),
    ("title-term-summary-only", "title:Armenia", doc("Vote today", "Armenia votes"), False),
    ("title-term-content-only", "title:Armenia", doc("Vote today", "", "Armenia votes"), False),
    ("title-ref", "title:@khankendi", doc("Curfew in Stepanakert"), True),
    ("title-ref-summary-only", "title:@khankendi", doc("Curfew", "in Stepanakert"), False),
    ("title-phrase", 'title:"mine blast"', doc("Mine blast on the road"), True),
    ("title-phrase-summary-only", 'title:"mine blast"', doc("Road closed", "after a mine blast"), False),
    ("title-group", "title:(Armenia OR Azerbaijan)", doc("Azerbaijan votes"), True),
    ("title-group-summary-only", "title:(Armenia OR Azerbaijan)", doc("Vote today", "Azerbaijan votes"), False),
    ("title-group-and-split", "title:(Armenia AND Azerbaijan)", doc("Armenia votes", "Azerbaijan too"), False),
    ("title-group-and-both", "title:(Armenia AND Azerbaijan)", doc("Armenia and Azerbaijan"), True),
    ("title-group-near", "title:(Armenia NEAR/2 Azerbaijan)", doc("Armenia and Azerbaijan"), True),
    ("title-group-near-summary", "title:(Armenia NEAR/2 Azerbaijan)", doc("News", "Armenia and Azerbaijan"), False),
    ("title-prefix", "title:Armenia*", doc("Armenians vote"), True),
    ("title-prefix-summary-only", "title:Armenia*", doc("Vote", "Armenians vote"), False),
    ("title-binds-one-operand", "title:Armenia AND Baku", doc("Armenia votes", "Baku reacts"), True),
    ("title-binds-one-operand-neg", "title:Armenia AND Baku", doc("Baku reacts", "Armenia votes"), False),
)  # fmt: skip


@pytest.mark.parametrize(("query", "document", "expected"), QUERY_FORMS)
def test_query_forms(query: str, document: Document, expected: bool) -> None:
    assert fires(query, document) is expected


# ---------------------------------------------------------------------------------------------------------
# Matching semantics, everywhere: each row is tried as an entity name (@g), a term-group word and a literal.

SEMANTICS = rows(
    # Whole words only.
    ("whole-word-not-inside-longer", "Armenia", "Armenian troops", False),
    ("whole-word-not-inside-prefixed", "Armenia", "PanArmenia", False),
    ("whole-word-exact", "Armenia", "Troops in Armenia", True),
    ("prefix-hits-longer", "Armenia*", "Armenian troops", True),
    ("prefix-hits-exact", "Armenia*", "Troops in Armenia", True),
    ("whole-word-cyrillic", "Карабах", "в Карабахе", False),
    ("whole-word-armenian", "Ստեփանակերտ", "Ստեփանակերտի", False),
    ("whole-word-georgian", "საქართველო", "საქართველოს", False),
    # Case and diacritics, in many scripts; Latin folds to ASCII as Lucene does.
    ("az-upper-dotted-I", "Xankəndi", "XANKƏNDİ", True),
    ("az-upper-name", "XANKƏNDİ", "xankəndi", True),
    ("az-schwa-to-e", "Xankendi", "Xankəndi", True),
    ("az-e-to-schwa", "Xankəndi", "Xankendi", True),
    ("az-g-breve", "Qarabag", "Qarabağ", True),
    ("az-g-breve-name", "Qarabağ", "QARABAG", True),
    ("az-c-cedilla-dotless-i", "Lacin", "Laçın", True),
    ("az-c-cedilla-name", "Laçın", "LACIN", True),
    ("de-eszett", "strasse", "Straße", True),
    ("de-eszett-name", "Straße", "STRASSE", True),
    ("de-capital-eszett", "Straße", "STRAẞE", True),
    ("pl-l-stroke", "Lodz", "Łódź", True),
    ("da-o-stroke-ae", "Aero", "Ærø", True),
    ("fr-oe-ligature", "oeuvre", "Œuvre", True),
    ("latin-ae-macron", "Aelfric", "Ǣlfric", True),
    ("latin-ae-acute", "aesc", "ǽsc", True),
    ("fullwidth", "Armenia", "ＡＲＭＥＮＩＡ", True),
    ("latin-other-word", "Lacin", "Latin", False),
    ("cyrillic-case", "Степанакерт", "СТЕПАНАКЕРТ", True),
    ("cyrillic-case-name-upper", "ЛАЧИН", "лачин", True),
    ("cyrillic-diacritic", "Пётр", "ПЕТР", True),
    ("cyrillic-other-word", "Степанакерт", "Ханкенди", False),
    ("greek-accents", "Ναγκόρνο Καραμπάχ", "ΝΑΓΚΟΡΝΟ ΚΑΡΑΜΠΑΧ", True),
    ("greek-no-accents", "Ναγκόρνο Καραμπάχ", "Ναγκορνο Καραμπαχ", True),
    ("greek-final-sigma", "Αρμενίας", "ΑΡΜΕΝΙΑΣ", True),
    ("greek-dialytika", "Αζερμπαϊτζάν", "ΑΖΕΡΜΠΑΪΤΖΑΝ", True),
    ("greek-other-word", "Αρμενία", "Αζερμπαϊτζάν", False),
    ("armenian-case", "Ստեփանակերտ", "ՍՏԵՓԱՆԱԿԵՐՏ", True),
    ("armenian-case-name-upper", "ՀԱՅԱՍՏԱՆ", "Հայաստան", True),
    ("armenian-other-word", "Ստեփանակերտ", "Հայաստան", False),
    ("georgian-mtavruli", "საქართველო", "ᲡᲐᲥᲐᲠᲗᲕᲔᲚᲝ", True),
    ("georgian-same", "საქართველო", "საქართველო", True),
    ("georgian-other-word", "საქართველო", "სომხეთი", False),
    ("arabic-harakat", "أذربيجان", "أَذْرَبِيجَان", True),
    ("arabic-harakat-name", "أَذْرَبِيجَان", "أذربيجان", True),
    ("arabic-other-word", "أذربيجان", "أرمينيا", False),
    ("math-bold-capitals", "Armenia", "𝐀𝐑𝐌𝐄𝐍𝐈𝐀", True),
    ("soft-hyphen-is-invisible", "Armenia", "Arme\u00adnia", True),
    ("zero-width-space-separates", "Armenia", "Armenia\u200bAzerbaijan", True),
    # Scripts written without spaces: a name matches as a run of characters.
    ("japanese-inside-sentence", "ナゴルノ・カラバフ", "係争地域のナゴルノ・カラバフで", True),
    ("japanese-part-inside", "カラバフ", "係争地域のナゴルノ・カラバフで", True),
    ("japanese-absent", "ナゴルノ・カラバフ", "係争地域で", False),
    ("japanese-nfd-text", "ナゴルノ・カラバフ", unicodedata.normalize("NFD", "係争地域のナゴルノ・カラバフで"), True),
    ("chinese-inside-sentence", "纳戈尔诺-卡拉巴赫", "阿塞拜疆在纳戈尔诺-卡拉巴赫发动军事行动", True),
    ("chinese-part-inside", "阿塞拜疆", "阿塞拜疆在纳戈尔诺-卡拉巴赫发动", True),
    ("chinese-absent", "亚美尼亚", "阿塞拜疆在纳戈尔诺-卡拉巴赫发动军事行动", False),
    ("thai-inside-sentence", "อาเซอร์ไบจาน", "กองทัพอาเซอร์ไบจานเปิดฉากโจมตี", True),
    ("thai-absent", "อาร์เมเนีย", "กองทัพอาเซอร์ไบจานเปิดฉากโจมตี", False),
    ("latin-next-to-cjk", "Armenia", "在Armenia发", True),
    # Punctuation and dashes separate words.
    ("hyphen-vs-en-dash", "Nagorno-Karabakh", "Nagorno–Karabakh", True),
    ("hyphen-vs-em-dash", "Nagorno-Karabakh", "Nagorno—Karabakh", True),
    ("hyphen-vs-space", "Nagorno-Karabakh", "Nagorno Karabakh", True),
    ("space-vs-hyphen", "Nagorno Karabakh", "Nagorno-Karabakh", True),
    ("en-dash-vs-hyphen", "Nagorno–Karabakh", "Nagorno-Karabakh", True),
    ("hyphen-not-glued", "Nagorno-Karabakh", "NagornoKarabakh", False),
    ("possessive", "Azerbaijan", "Azerbaijan's army", True),
    ("possessive-curly", "Azerbaijan", "Azerbaijan’s army", True),
    ("parenthesised", "Azerbaijan", "(Azerbaijan)", True),
    ("sentence-end", "Azerbaijan", "left Azerbaijan.", True),
    ("quoted", "Azerbaijan", "«Azerbaijan»", True),
    ("demonym-not-name", "Azerbaijan", "Azerbaijani army", False),
)  # fmt: skip


@pytest.mark.parametrize("used_as", ["entity-name", "term-word", "literal"])
@pytest.mark.parametrize(("name", "text", "expected"), SEMANTICS)
def test_matching_semantics(name: str, text: str, expected: bool, used_as: str) -> None:
    if used_as == "literal":
        assert fires(f'"{name}"', doc(text), {}) is expected
    else:
        group = "g_entity" if used_as == "entity-name" else "g_term"
        assert fires(f"@{group}", doc(text), {group: [name, "Zzyzx"]}) is expected


# HTML is text: tags, attributes, comments and scripts never match; entities are decoded.
HTML = rows(
    ("text-in-tags", "<p>Troops left <b>Armenia</b></p>", True),
    ("entity-apostrophe", "<p>Armenia&#8217;s army</p>", True),
    ("named-entity", "<p>Laç&#305;n and Armenia&nbsp;too</p>", True),
    ("script-body", "<script>var c = 'Armenia';</script><p>Nothing here</p>", False),
    ("style-body", "<style>.Armenia { color: red }</style><p>Nothing here</p>", False),
    ("comment", "<!-- Armenia --><p>Nothing here</p>", False),
    ("comment-unclosed", "<p>Nothing here</p><!-- Armenia", False),
    ("soft-hyphen-entity", "<p>Arme&shy;nia</p>", True),
    ("word-split-by-inline-tag", "<p>Arme<b>nia</b></p>", True),
    ("block-elements-separate", "<ul><li>Baku</li><li>Armenia</li></ul>", True),
    ("line-break-separates", "Baku<br>Armenia<br/>Tbilisi", True),
    ("entity-dash", "<p>Nagorno&ndash;Karabakh and Armenia</p>", True),
    ("attribute-values", '<a href="https://x.test/Armenia" title="Armenia">a link</a>', False),
    ("img-alt", '<p>Photo <img alt="Armenia" src="a.png"> here</p>', False),
    ("tag-name", "<armenia>Nothing</armenia> here", False),
)  # fmt: skip


@pytest.mark.parametrize(("summary", "expected"), HTML)
def test_html_is_text(summary: str, expected: bool) -> None:
    document = html_item(title="News", summary=summary)
    assert fires("Armenia", document, {}) is expected
    assert fires("@armenia", document) is expected


def test_html_amp_is_ampersand() -> None:
    document = html_item(title="AT&amp;T in <b>Armenia</b>", summary="<p>AT&amp;T &amp; Armenia</p>")
    assert document.title == "AT&T in Armenia"
    assert document.summary == "AT&T & Armenia"
    assert run({}, [("r", '"AT&T"')], document) == [
        ("r", [(None, "AT&T", "title", 0, 4), (None, "AT&T", "summary", 0, 4)]),
    ]
    assert run({}, [("r", "amp")], document) == []


def test_html_offsets_are_into_the_text() -> None:
    """`start`/`end` are offsets into the field after HTML is turned to text (DESIGN.md §4)."""
    document = html_item(
        title="Shelling",
        summary='<p class="Armenia">The <b>EU Mission</b> in <i>Armenia</i> &amp; Stepanakert</p><!-- Armenia -->',
    )
    text = document.summary
    assert text == "The EU Mission in Armenia & Stepanakert"
    fired = run(GROUPS, [("r", "@eu_mission AND @armenia AND @khankendi")], document)
    assert fired == [
        (
            "r",
            [
                ("eu_mission", "EU Mission in Armenia", "summary", 4, 25),
                ("armenia", "Armenia", "summary", 18, 25),
                ("khankendi", "Stepanakert", "summary", 28, 39),
            ],
        )
    ]


# ---------------------------------------------------------------------------------------------------------
# Every name that matches is a hit, overlapping ones included.


def test_overlapping_names_of_two_entities_are_both_hits() -> None:
    document = doc("The EU Mission in Armenia said")
    fired = run(GROUPS, [("both", "@eu_mission AND @armenia"), ("small", "@armenia"), ("big", "@eu_mission")], document)
    assert [(rule, sorted(hits)) for rule, hits in fired] == [
        ("both", [("armenia", "Armenia", "title", 18, 25), ("eu_mission", "EU Mission in Armenia", "title", 4, 25)]),
        ("small", [("armenia", "Armenia", "title", 18, 25)]),
        ("big", [("eu_mission", "EU Mission in Armenia", "title", 4, 25)]),
    ]


def test_overlapping_names_of_one_entity_are_both_hits() -> None:
    fired = run(GROUPS, [("r", "@karabakh")], doc("Nagorno-Karabakh today"))
    assert sorted(fired[0][1]) == [
        ("karabakh", "Karabakh", "title", 8, 16),
        ("karabakh", "Nagorno-Karabakh", "title", 0, 16),
    ]


def test_every_occurrence_is_a_hit() -> None:
    fired = run(GROUPS, [("r", "@armenia OR Azerbaijan")], doc("Armenia, Azerbaijan", "Armenia and Հայաստան"))
    assert sorted(fired[0][1], key=repr) == sorted(
        [
            ("armenia", "Armenia", "title", 0, 7),
            (None, "Azerbaijan", "title", 9, 19),
            ("armenia", "Armenia", "summary", 0, 7),
            ("armenia", "Հայաստան", "summary", 12, 20),
        ],
        key=repr,
    )


def test_same_name_in_two_groups_hits_for_each() -> None:
    groups = {"place": ["Armenia"], "country": ["Armenia"]}
    fired = run(groups, [("r", "@place AND @country AND Armenia")], doc("In Armenia"))
    assert sorted(fired[0][1], key=lambda h: h[0] or "") == [
        (None, "Armenia", "title", 3, 10),
        ("country", "Armenia", "title", 3, 10),
        ("place", "Armenia", "title", 3, 10),
    ]


# ---------------------------------------------------------------------------------------------------------
# Hit details: ref, text exactly as in the input, field, offsets.

HITS = rows(
    ("literal-ref-none", "Armenia", doc("Troops left Armenia"), [(None, "Armenia", "title", 12, 19)]),
    ("entity-ref-id", "@khankendi", doc("Shelling hits STEPANAKERT"), [("khankendi", "STEPANAKERT", "title", 14, 25)]),
    ("term-ref-id-prefix", "@violence", doc("", "Casualties rose"), [("violence", "Casualties", "summary", 0, 10)]),
    ("term-ref-phrase-prefix", "@violence", doc("", "", "End of antiterrorist operations."),
     [("violence", "antiterrorist operations", "content", 7, 31)]),
    ("prefix-runs-to-word-end", "Armenia*", doc("Armenian's army"), [(None, "Armenian", "title", 0, 8)]),
    ("original-case-and-dotted-I", "@khankendi", doc("IN XANKƏNDİ TODAY"), [("khankendi", "XANKƏNDİ", "title", 3, 11)]),
    ("original-diacritics", "Lacin", doc("Road to Laçın"), [(None, "Laçın", "title", 8, 13)]),
    ("eszett-folds-longer", "Strasse", doc("Die Straße nach"), [(None, "Straße", "title", 4, 10)]),
    ("eszett-in-name", "Straße", doc("Die STRASSE nach"), [(None, "STRASSE", "title", 4, 11)]),
    ("eszett-before-hit", "Armenia", doc("Straße Armenia"), [(None, "Armenia", "title", 7, 14)]),
    ("ligature-fi", "financial", doc("The ﬁnancial times"), [(None, "ﬁnancial", "title", 4, 12)]),
    ("ligature-before-hit", "Armenia", doc("ﬁ ﬁ Armenia"), [(None, "Armenia", "title", 4, 11)]),
    ("combining-inside", "Lacin", doc("To Lac\u0327ın"), [(None, "Lac\u0327ın", "title", 3, 9)]),
    ("combining-before-hit", "Armenia", doc("Jose\u0301 Armenia"), [(None, "Armenia", "title", 6, 13)]),
    ("combining-ends-word", "Jose", doc("Jose\u0301 said"), [(None, "Jose\u0301", "title", 0, 5)]),
    ("arabic-haraka-ends-word", "أذربيجان", doc("جيش أذربيجانَ"), [(None, "أذربيجانَ", "title", 4, 13)]),
    ("japanese", "ナゴルノ・カラバフ", doc("係争地域のナゴルノ・カラバフで"),
     [(None, "ナゴルノ・カラバフ", "title", 5, 14)]),
    ("chinese", "纳戈尔诺-卡拉巴赫", doc("", "阿塞拜疆在纳戈尔诺-卡拉巴赫发动"),
     [(None, "纳戈尔诺-卡拉巴赫", "summary", 5, 14)]),
    ("cyrillic-prefix", "Карабах*", doc("В НАГОРНОМ КАРАБАХЕ"), [(None, "КАРАБАХЕ", "title", 11, 19)]),
    ("dash-in-text", '"Nagorno Karabakh"', doc("In Nagorno–Karabakh"), [(None, "Nagorno–Karabakh", "title", 3, 19)]),
    ("possessive-curly", "Azerbaijan", doc("Azerbaijan’s army"), [(None, "Azerbaijan", "title", 0, 10)]),
    ("title-only-hits", "title:Armenia", doc("Armenia", "Armenia"), [(None, "Armenia", "title", 0, 7)]),
    ("in-every-field", "Armenia", doc("Armenia", "Armenia", "Armenia"),
     [(None, "Armenia", "title", 0, 7), (None, "Armenia", "summary", 0, 7), (None, "Armenia", "content", 0, 7)]),
)  # fmt: skip


@pytest.mark.parametrize(("query", "document", "expected"), HITS)
def test_hit_details(query: str, document: Document, expected: list[HitRow]) -> None:
    fired = run(GROUPS, [("rule", query)], document)
    assert len(fired) == 1
    assert sorted(fired[0][1], key=repr) == sorted(expected, key=repr)


# Characters whose folding is unusual (a ligature with an accent, an Arabic presentation form holding only a
# tatweel and a vowel mark) must not stop the matcher: the text around them is matched as usual.
ODD_CHARACTERS = rows(
    ("ae-macron", "ǣ"),
    ("AE-acute", "Ǽ"),
    ("modifier-capital-AE", "ᴭ"),
    ("arabic-fatha-medial", "ﹷ"),
    ("arabic-shadda-fatha-medial", "ﳲ"),
)  # fmt: skip


@pytest.mark.parametrize("char", ODD_CHARACTERS)
def test_odd_characters_do_not_stop_matching(char: str) -> None:
    document = doc(f"{char} Armenia {char}", char, f"{char}{char}")
    assert run({}, [("r", "Armenia")], document) == [("r", [(None, "Armenia", "title", 2, 9)])]


def test_rules_in_config_order_and_silent_rules_absent() -> None:
    rules = [("zulu", "Armenia"), ("alpha", "Azerbaijan"), ("mike", "Baku"), ("echo", "NOT Armenia")]
    assert [r for r, _ in run({}, rules, doc("Armenia, Azerbaijan and Baku"))] == ["zulu", "alpha", "mike"]
    assert [r for r, _ in run({}, rules, doc("Baku and Armenia"))] == ["zulu", "mike"]
    assert [r for r, _ in run({}, rules, doc("Baku and Azerbaijan"))] == ["alpha", "mike", "echo"]
    assert run({}, rules, doc("Armenia")) == [("zulu", [(None, "Armenia", "title", 0, 7)])]
    assert [r for r, _ in run({}, rules, doc("Tbilisi"))] == ["echo"]
    assert run({}, rules[:3], doc("Tbilisi")) == []


# ---------------------------------------------------------------------------------------------------------
# Query syntax errors: QuerySyntaxError with a 1-based column near the fault.

SYNTAX_ERRORS = rows(
    ("unbalanced-open", "(Armenia OR Azerbaijan", {1, 23}),
    ("unbalanced-open-nested", "Baku AND ((Armenia OR Azerbaijan)", {10, 34}),
    ("unbalanced-close", "Armenia OR Azerbaijan)", {22}),
    ("unbalanced-close-after-group", "(Armenia) OR Azerbaijan)", {24}),
    ("empty-parens", "()", {1, 2}),
    ("unclosed-quote", '"Armenia', {1}),
    ("unclosed-quote-later", 'Armenia AND "mine blast', {13}),
    ("juxtaposed-words", "Karabakh shelling", {10}),
    ("juxtaposed-phrase", 'Armenia "mine blast"', {9}),
    ("juxtaposed-ref", "Armenia @khankendi", {9}),
    ("juxtaposed-group-word", "(Armenia) Baku", {11}),
    ("juxtaposed-word-group", "Armenia (Baku)", {9}),
    ("juxtaposed-after-and", "Baku AND Armenia Azerbaijan", {18}),
    ("juxtaposed-after-not", "NOT Armenia Azerbaijan", {13}),
    ("juxtaposed-groups", "(Armenia)(Baku)", {10}),
    ("juxtaposed-not", "Armenia NOT Baku", {9}),
    ("juxtaposed-lowercase-and", "Armenia and Azerbaijan", {9}),
    ("near-without-n", "Armenia NEAR Azerbaijan", {9}),
    ("near-slash-no-n", "Armenia NEAR/ Azerbaijan", {9}),
    ("near-slash-not-number", "Armenia NEAR/x Azerbaijan", {9}),
    ("dangling-and", "Armenia AND", {9, 12}),
    ("dangling-or", "Armenia OR", {9, 11}),
    ("dangling-not", "Armenia AND NOT", {13, 16}),
    ("dangling-near", "Armenia NEAR/2", {9, 15}),
    ("leading-or", "OR Armenia", {1}),
    ("leading-near", "NEAR/2 Armenia", {1}),
    ("near-negative", "Armenia NEAR/-1 Baku", {9}),
    ("double-operator", "Armenia AND OR Baku", {9, 13}),
    ("dangling-title", "Armenia AND title:", {13, 19}),
    ("dangling-open-paren", "Armenia AND (", {13, 14}),
    ("empty", "", {1}),
    ("empty-phrase", 'Armenia AND ""', {13}),
    ("punctuation-only-phrase", '"-"', {1}),
    ("blank", "   ", {1, 2, 3, 4}),
    ("star-inside-word", "peace*keeping", {1}),
    ("star-leading", "*Karabakh", {1}),
    ("star-alone", "Armenia OR *", {12}),
    ("star-inside-later-word", "Armenia AND Kara*bakh", {13}),
    ("star-inside-phrase-word", 'Armenia AND "peace*keeping talks"', {13, 14}),
)  # fmt: skip


@pytest.mark.parametrize(("query", "columns"), SYNTAX_ERRORS)
def test_syntax_errors(query: str, columns: set[int]) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse(query)
    assert caught.value.column in columns, f"column {caught.value.column}: {caught.value}"


VALID = rows(
    ("word", "Armenia"),
    ("phrase", '"mine blast"'),
    ("ref", "@khankendi"),
    ("prefix", "Карабах*"),
    ("prefix-phrase", '"Нагорн* Карабах*"'),
    ("boolean", 'Armenia AND (Baku OR "mine blast") AND NOT Russia'),
    ("near", "Armenia NEAR/10 @khankendi"),
    ("title-term", "title:Armenia"),
    ("title-ref", "title:@khankendi"),
    ("title-group", "title:(Armenia OR Baku)"),
    ("design-rule", '@karabakh AND (@violence OR "ceasefire violation") AND NOT "Grand Prix"'),
)  # fmt: skip


@pytest.mark.parametrize("query", VALID)
def test_valid_queries_parse(query: str) -> None:
    parse(query)
