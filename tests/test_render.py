"""render: alert and digest messages per channel format (DESIGN.md §7; RELIABILITY.md cases 10 and 38).

Every `AlertView` here is built by hand. What is checked: each part of an alert is in the message, the time is
shown in the channel's zone, matched names are marked at their offsets, text from feeds stays inert text in
every format (no tag, no link, no Slack mention, no emphasis it did not ask for), long text is clipped with
the link kept, and a digest lists the most urgent stories first, at most DIGEST_MAX of them.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.pipeline.render import DIGEST_MAX, SUMMARY_CHARS, Format, highlight, render_alert, render_digest
from monitor.records import AlertView, Hit

FORMATS: tuple[Format, ...] = ("text", "markdown", "html")
BAKU = ZoneInfo("Asia/Baku")
DETECTED = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)
LINK = "https://www.rferl.org/a/khankendi-shelling/33000001.html"
TITLE = "Shelling reported near Khankendi overnight"
MARKS = {"text": ("«", "»"), "markdown": ("**", "**"), "html": ("<b>", "</b>")}


def hit(text: str, within: str, field: str = "title", occurrence: int = 0) -> Hit:
    """A hit on `text` where it stands in `within` (its `occurrence`-th appearance)."""
    start = -1
    for _ in range(occurrence + 1):
        start = within.index(text, start + 1)
    return Hit("entity", text, field, start, start + len(text))  # type: ignore[arg-type]


def alert(**changes: object) -> AlertView:
    view = AlertView(
        alert_id=1,
        story_id=1,
        title=TITLE,
        link=LINK,
        outlet="RFE/RL",
        also=("Reuters", "AP"),
        published=None,
        detected=DETECTED,
        rules=("karabakh-escalation", "khankendi-any"),
        priority="urgent",
        hits=(hit("Shelling", TITLE), hit("Khankendi", TITLE)),
        summary="Residents of Khankendi said artillery fire began after midnight.",
    )
    return replace(view, **changes)  # type: ignore[arg-type]


def unescaped(markdown: str) -> str:
    """The characters of `markdown` that no backslash protects."""
    out, i = [], 0
    while i < len(markdown):
        if markdown[i] == "\\":
            i += 2
            continue
        out.append(markdown[i])
        i += 1
    return "".join(out)


def visible(body: str, fmt: Format) -> str:
    """What a reader sees: marks and tags gone, escapes undone, look-alike angle brackets read as brackets."""
    if fmt == "html":
        body = html.unescape(re.sub(r"<[^<>]*>", "", body))
    elif fmt == "markdown":
        body = re.sub(r"\\(.)", r"\1", re.sub(r"(?<!\\)\*\*", "", body))
    else:
        body = body.replace("«", "").replace("»", "")
    return body.replace("‹", "<").replace("›", ">")


# --- what an alert says ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_alert_has_headline_outlet_time_rules_priority_link_and_also(fmt: Format) -> None:
    message = render_alert(alert(), fmt, BAKU)
    seen = visible(message.body, fmt)
    assert message.format == fmt
    assert message.title == f"[URGENT] {TITLE}"
    assert seen.splitlines()[0] == TITLE
    assert "RFE/RL" in seen
    assert "2025-03-10 12:00" in seen  # 08:00 UTC is 12:00 in Baku (UTC+4)
    assert "08:00" not in seen
    assert "karabakh-escalation" in seen and "khankendi-any" in seen
    assert "urgent" in seen
    assert LINK in seen
    assert "also: Reuters, AP" in seen
    assert "artillery fire began after midnight" in seen


@pytest.mark.parametrize("fmt", FORMATS)
def test_link_is_a_link_in_its_format(fmt: Format) -> None:
    body = render_alert(alert(), fmt, BAKU).body
    expected = {"text": LINK, "markdown": f"<{LINK}>", "html": f'<a href="{LINK}">{LINK}</a>'}[fmt]
    assert expected in body.splitlines() or expected + "<br>" in body.splitlines()


def test_no_also_line_when_no_other_outlet() -> None:
    assert "also:" not in render_alert(alert(also=()), "text", BAKU).body


@pytest.mark.parametrize(
    ("zone", "published", "shown"),
    [
        ("Asia/Baku", None, "2025-03-10 12:00"),  # detection time when the feed gave no date
        ("UTC", None, "2025-03-10 08:00"),
        ("America/New_York", None, "2025-03-10 04:00"),  # EDT (UTC-4) since 9 March 2025
        ("Asia/Tokyo", None, "2025-03-10 17:00"),
        ("Asia/Baku", datetime(2025, 3, 10, 7, 30, tzinfo=UTC), "2025-03-10 11:30"),  # the published time
        ("Asia/Baku", datetime(2025, 3, 9, 22, 15, tzinfo=UTC), "2025-03-10 02:15"),  # across midnight
    ],
)
def test_time_is_shown_in_the_channels_zone(zone: str, published: datetime | None, shown: str) -> None:
    for fmt in FORMATS:
        body = render_alert(alert(published=published), fmt, ZoneInfo(zone)).body
        assert shown in visible(body, fmt), (fmt, body)


@pytest.mark.parametrize("fmt", FORMATS)
def test_matched_names_listed_once_each_and_marked(fmt: Format) -> None:
    hits = (hit("Khankendi", TITLE), hit("Khankendi", alert().summary, "summary"), hit("Shelling", TITLE))
    body = render_alert(alert(hits=hits), fmt, BAKU).body
    left, right = MARKS[fmt]
    (line,) = [line for line in body.splitlines() if line.startswith("matched:")]
    assert line.removesuffix("<br>") == f"matched: {left}Khankendi{right}, {left}Shelling{right}"


# --- highlights --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "first_line"),
    [
        ("text", "«Shelling» reported near «Khankendi» overnight"),
        ("markdown", "**Shelling** reported near **Khankendi** overnight"),
        ("html", "<b>Shelling</b> reported near <b>Khankendi</b> overnight<br>"),
    ],
)
def test_headline_marks_hits_at_their_offsets(fmt: Format, first_line: str) -> None:
    assert render_alert(alert(), fmt, BAKU).body.splitlines()[0] == first_line


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        # overlapping spans ("mine blast", "blast near") merge into one mark
        ([(0, 10), (5, 15)], "**mine blast near** the Lachin road"),
        # one span inside another
        ([(0, 15), (5, 10)], "**mine blast near** the Lachin road"),
        # the same span twice
        ([(20, 26), (20, 26)], "mine blast near the **Lachin** road"),
        # separate spans stay separate, whatever order the hits come in
        ([(20, 26), (0, 4)], "**mine** blast near the **Lachin** road"),
        # a hit past the end of the text is ignored, not a crash
        ([(20, 26), (25, 99)], "mine blast near the **Lachin** road"),
    ],
)
def test_highlight_merges_overlapping_spans(spans: list[tuple[int, int]], expected: str) -> None:
    text = "mine blast near the Lachin road"
    hits = [Hit(None, text[s:e], "title", s, e) for s, e in spans]
    assert highlight(text, hits, "title", "markdown") == expected


def test_highlight_only_marks_hits_of_its_field() -> None:
    text = "Khankendi and Khankendi"
    hits = [Hit("e", "Khankendi", "summary", 0, 9), Hit("e", "Khankendi", "title", 14, 23)]
    assert highlight(text, hits, "title", "text") == "Khankendi and «Khankendi»"
    assert highlight(text, hits, "summary", "text") == "«Khankendi» and Khankendi"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("html", "<b>AT&amp;T</b> &lt;b&gt; <b>M&amp;S</b>"),
        ("markdown", r"**AT&T** ‹b› **M&S**"),
        ("text", "«AT&T» ‹b› «M&S»"),
    ],
)
def test_highlight_offsets_refer_to_the_raw_text_not_the_escaped_one(fmt: Format, expected: str) -> None:
    text = "AT&T <b> M&S"
    hits = [Hit("e", "AT&T", "title", 0, 4), Hit("e", "M&S", "title", 9, 12)]
    assert highlight(text, hits, "title", fmt) == expected


@pytest.mark.parametrize("fmt", FORMATS)
def test_summary_hits_are_marked_in_the_summary(fmt: Format) -> None:
    summary = "Artillery fire near Khankendi, witnesses said."
    view = alert(summary=summary, hits=(hit("Khankendi", summary, "summary"),))
    body = render_alert(view, fmt, BAKU).body
    left, right = MARKS[fmt]
    summary_lines = [line for line in body.splitlines() if "witnesses" in line]
    assert len(summary_lines) == 1
    assert f"{left}Khankendi{right}" in summary_lines[0]
    # the headline has no hit of its own: the summary's offsets are not applied to it
    assert left not in body.splitlines()[0]


# --- feed text is inert (RELIABILITY.md case 10) -----------------------------------------------------------

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "<!channel> <!here> <!everyone>",
    "<@U123> <#C042|general>",
    "<b>bold</b> <i>it</i> <a href='https://evil.example'>x</a>",
    "<a@b.c>",
    "[x](http://evil.example) ![img](http://evil.example/p.png)",
    "*bold* **strong** _it_ __under__ `code` ~strike~",
    "# Heading",
    "> quoted | piped",
    "<https://evil.example|click here>",
]


def hostile_alert(payload: str) -> AlertView:
    return alert(
        title=f"Khankendi {payload}",
        summary=f"Khankendi {payload}",
        outlet=f"Outlet {payload}",
        also=(f"Other {payload}",),
        hits=(hit("Khankendi", "Khankendi"), hit("Khankendi", "Khankendi", "summary")),
        link=None,
    )


@pytest.mark.parametrize("payload", HOSTILE)
def test_html_body_has_only_its_own_tags(payload: str) -> None:
    body = render_alert(hostile_alert(payload), "html", BAKU).body
    outside_own_tags = re.sub(r"<b>|</b>|<br>", "", body)
    assert "<" not in outside_own_tags and ">" not in outside_own_tags
    for raw in ("<script", "<img", "<!channel", "<!here", "<@U123", "<a@b.c", "<a href"):
        assert raw not in body
    assert set(re.findall(r"<[^<>]*>", body)) <= {"<b>", "</b>", "<br>"}
    # inert, not deleted: the reader still sees what the feed said
    seen = visible(body, "html")
    assert f"Khankendi {payload}" in seen and f"Outlet {payload}" in seen and f"Other {payload}" in seen


@pytest.mark.parametrize("payload", HOSTILE)
def test_markdown_body_escapes_every_control_character(payload: str) -> None:
    body = render_alert(hostile_alert(payload), "markdown", BAKU).body
    bare = unescaped(body).replace("**", "")  # the renderer's own marks are the only emphasis allowed
    assert not set(bare) & set("[]()*_`<>#|~!"), bare
    for raw in ("<!channel", "<!here", "<@U123", "<script", "](http", "<a@b.c>"):
        assert raw not in body
    seen = visible(body, "markdown")
    assert f"Khankendi {payload}" in seen and f"Outlet {payload}" in seen and f"Other {payload}" in seen


@pytest.mark.parametrize("payload", HOSTILE)
def test_text_body_neutralises_angle_brackets(payload: str) -> None:
    message = render_alert(hostile_alert(payload), "text", BAKU)
    for part in (message.body, message.title):
        assert "<" not in part and ">" not in part
    seen = visible(message.body, "text")
    assert f"Khankendi {payload}" in seen and f"Outlet {payload}" in seen and f"Other {payload}" in seen


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("payload", HOSTILE)
def test_title_has_no_angle_brackets(fmt: Format, payload: str) -> None:
    title = render_alert(hostile_alert(payload), fmt, BAKU).title
    assert "<" not in title and ">" not in title
    assert title.startswith("[URGENT] Khankendi ")


def test_markdown_title_cannot_form_a_link_or_emphasis() -> None:
    """A service without a title field (Telegram) gets the heading at the top of the body, in the body's
    format: it must be escaped like the body, or `[x](http://evil)` becomes a live link."""
    view = alert(title="Khankendi [x](http://evil.example) *bold* _it_", hits=())
    heading = render_alert(view, "markdown", BAKU).heading
    assert heading.startswith("**") and heading.endswith("**")
    feed_part = heading.removeprefix("**").removesuffix("**").removeprefix("\\[URGENT\\] ")
    assert not set(unescaped(feed_part)) & set("[]()*_"), heading


def test_html_title_is_escaped_html() -> None:
    """In HTML the heading keeps a bare `&` or a literal `&lt;b&gt;` from the feed as that text."""
    view = alert(title="Q&A: AT&T says &lt;b&gt; is not a tag", hits=())
    heading = render_alert(view, "html", BAKU).heading
    title = heading.removeprefix("<b>").removesuffix("</b>")
    assert re.search(r"&(?!amp;|lt;|gt;|quot;|#x27;)", title) is None, title
    assert html.unescape(title) == "[URGENT] Q&A: AT&T says &lt;b&gt; is not a tag"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        " javascript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "ftp://example.com/feed",
        "//evil.example/no-scheme",
        "",
    ],
)
def test_only_http_links_are_rendered(fmt: Format, link: str) -> None:
    body = render_alert(alert(link=link), fmt, BAKU).body
    assert "href" not in body
    assert "script" not in body.lower() and "data:" not in body and "file:" not in body
    assert "evil.example" not in body and "ftp:" not in body
    assert "also: Reuters, AP" in visible(body, fmt)  # the rest of the message is still there


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("link", ["http://example.com/a", "https://example.com/a?b=1&c=2"])
def test_http_links_are_rendered(fmt: Format, link: str) -> None:
    body = render_alert(alert(link=link), fmt, BAKU).body
    assert link in visible(body, fmt)
    if fmt == "html":
        assert f'<a href="{html.escape(link)}">' in body


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "link",
    [
        "https://example.com/a<!channel>b?<@U123>",
        'https://example.com/"><script>alert(1)</script>',
    ],
)
def test_an_http_link_cannot_carry_markup(fmt: Format, link: str) -> None:
    """`safe_link` (and so `Item.link`) keeps `<` in an http(s) URL: a feed's `<link>` of
    `https://example.com/a&lt;!channel&gt;b` arrives as such. The renderer must not pass it on raw."""
    body = render_alert(alert(link=link), fmt, BAKU).body
    for raw in ("<!channel", "<@U123", "<script", '"><'):
        assert raw not in body, body
    assert "example.com" in body


# --- long text (RELIABILITY.md case 38) --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_long_summary_is_clipped_and_the_link_kept(fmt: Format) -> None:
    summary = "Khankendi " + "artillery fire continued overnight " * 400  # ~14,000 characters
    view = alert(summary=summary, hits=(hit("Khankendi", summary, "summary"), hit("overnight", summary, "summary")))
    body = render_alert(view, fmt, BAKU).body
    (line,) = [line for line in body.splitlines() if "artillery" in line]
    seen = visible(line, fmt)
    assert len(seen) <= SUMMARY_CHARS + 1
    assert seen.endswith("…")
    assert MARKS[fmt][0] + "Khankendi" in line  # a hit inside the kept part is still marked
    assert LINK in visible(body, fmt)
    assert body.rstrip().endswith(("also: Reuters, AP", "also: Reuters, AP<br>"))
    assert len(body) < 4096  # Telegram's limit


LONG_TITLE = "Khankendi " + "shelling reported along the line of contact " * 250  # ~11,000 characters


@pytest.mark.parametrize("fmt", FORMATS)
def test_long_headline_is_clipped_in_the_title(fmt: Format) -> None:
    title = render_alert(alert(title=LONG_TITLE, hits=()), fmt, BAKU).title
    assert title.startswith("[URGENT] Khankendi shelling")
    assert len(title) <= 220
    assert title.endswith("…")


@pytest.mark.parametrize("fmt", FORMATS)
def test_long_headline_is_clipped_in_the_body_and_the_link_kept(fmt: Format) -> None:
    """`Item` titles are cut to 300 characters upstream, but the renderer takes any `AlertView` and is the
    last place a message is bounded: the headline line is printed whole today."""
    body = render_alert(alert(title=LONG_TITLE, hits=(hit("Khankendi", LONG_TITLE),)), fmt, BAKU).body
    assert LINK in visible(body, fmt)
    assert "…" in body.splitlines()[0]
    assert len(body) < 4096, len(body)  # Telegram's limit


@pytest.mark.parametrize("fmt", FORMATS)
def test_control_characters_are_removed(fmt: Format) -> None:
    view = alert(title="Khankendi\x00 \x1b[31mred\x07", summary="a\x00b\x1b[0m", outlet="RFE\x08/RL", hits=())
    message = render_alert(view, fmt, BAKU)
    for part in (message.title, message.body):
        assert not set(part) & {"\x00", "\x1b", "\x07", "\x08"}
    assert "RFE/RL" in visible(message.body, fmt)


# --- digest ------------------------------------------------------------------------------------------------

PRIORITIES = ("low", "normal", "high", "urgent")


def story(n: int, priority: str) -> AlertView:
    title = f"Story {n:03d} about Khankendi"
    return alert(
        alert_id=n,
        story_id=n,
        title=title,
        link=f"https://example.com/story/{n}",
        priority=priority,
        detected=DETECTED + timedelta(minutes=n),
        hits=(hit("Khankendi", title),),
    )


def story_lines(body: str) -> list[str]:
    return [line for line in body.splitlines() if "Story" in line]


@pytest.mark.parametrize("fmt", FORMATS)
def test_digest_lists_most_urgent_first(fmt: Format) -> None:
    # low first in input order, so sorting (not input order) must put urgent on top
    stories = [story(n, PRIORITIES[n % 4]) for n in range(12)]
    message = render_digest(stories, fmt, BAKU, "Morning digest")
    lines = story_lines(message.body)
    assert len(lines) == 12
    ranks = [next(i for i, p in enumerate(("urgent", "high", "normal", "low")) if f"[{p}]" in line) for line in lines]
    assert ranks == sorted(ranks)
    assert lines[0].startswith("[urgent]")
    assert lines[-1].startswith("[low]")
    assert message.title == "Morning digest: 12 stories"
    for n in range(12):
        assert sum(f"Story {n:03d}" in visible(line, fmt) for line in lines) == 1
        assert f"https://example.com/story/{n}" in message.body


@pytest.mark.parametrize("fmt", FORMATS)
def test_digest_line_has_marked_headline_outlet_zone_time_and_link(fmt: Format) -> None:
    (line,) = story_lines(render_digest([story(0, "high")], fmt, BAKU, "Digest").body)
    left, right = MARKS[fmt]
    assert f"{left}Khankendi{right}" in line
    seen = visible(line, fmt)
    assert "RFE/RL" in seen and "2025-03-10 12:00" in seen and "https://example.com/story/0" in seen


@pytest.mark.parametrize("fmt", FORMATS)
def test_digest_caps_the_list_and_says_how_many_more(fmt: Format) -> None:
    total = DIGEST_MAX + 17
    stories = [story(n, "urgent" if n >= total - 5 else "normal") for n in range(total)]
    message = render_digest(stories, fmt, BAKU, "Evening digest")
    lines = story_lines(message.body)
    assert len(lines) == DIGEST_MAX
    assert message.body.splitlines()[-1].startswith("… and 17 more")
    assert message.title == f"Evening digest: {total} stories"
    # the five urgent stories, detected last, are all listed, at the top
    assert all(line.startswith("[urgent]") for line in lines[:5])
    assert not any(line.startswith("[urgent]") for line in lines[5:])


def test_digest_at_the_cap_has_no_more_line() -> None:
    message = render_digest([story(n, "normal") for n in range(DIGEST_MAX)], "text", BAKU, "Digest")
    assert len(story_lines(message.body)) == DIGEST_MAX
    assert "more" not in message.body


@pytest.mark.parametrize("fmt", FORMATS)
def test_digest_escapes_feed_text(fmt: Format) -> None:
    view = replace(story(1, "high"), title="Story <script>alert(1)</script> <!channel> [x](http://evil.example)")
    view = replace(view, hits=(), outlet="<@U123>")
    body = render_digest([view], fmt, BAKU, "Digest").body
    for raw in ("<script", "<!channel", "<@U123"):
        assert raw not in body
    if fmt == "markdown":
        assert not set(unescaped(body.rsplit(" <https://", 1)[0]).replace("**", "")[len("[high]") :]) & set("[]<>")
    assert "Story <script>alert(1)</script> <!channel> [x](http://evil.example)" in visible(body, fmt)


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_an_update_and_a_spread_say_what_changed_before_the_headline(fmt: Format) -> None:
    update = render_alert(alert(kind="update", note="now urgent", priority="urgent"), fmt, ZoneInfo("UTC"))
    assert update.title.startswith("[URGENT] update: now urgent: ")
    spread = render_alert(alert(kind="spread", note="now in 3 outlets"), fmt, ZoneInfo("UTC"))
    assert "now in 3 outlets: " in spread.title and all(name in spread.title for name in alert().also)
    digest = render_digest([alert(kind="update", note="now urgent")], fmt, ZoneInfo("UTC"), "digest")
    assert "update: now urgent: " in digest.body
