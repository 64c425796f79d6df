"""A loopback feed farm for the poll-cycle benchmarks: N synthetic news feeds (RSS 2.0, 50 items, ~60 KB,
gzip when asked) served from a separate process, so the farm's CPU never counts against the client.

Every feed has its own loopback address (127.77.x.y, one port for all): monitor caps requests per host, so
2,000 feeds on one address would measure that cap, not the poller. Nothing listens beyond 127.0.0.0/8.

Feeds come in three kinds, fixed by the seed:
- `validated` (most): ETag and Last-Modified; a conditional request for the current version gets a 304;
- `bare`: no validator at all, so every poll is a 200 with the whole body;
- `volatile`: no validator, and a new `lastBuildDate` on every request: the body changes on every poll
  although no item does (a CMS that stamps each render).

The parent drives the farm with a scripted plan per cycle (`Farm.next_cycle(plan)`): which feeds get 1-3
new items, which get a changed body without new items (a new `lastBuildDate`, so a new ETag), the rest stay
as they are. `Plan(force_304=True)` makes every feed answer 304 whatever the request (feeds without
validators get no conditional request, so this is the only way to have a cycle where every feed answers
304; both clients accept a 304 as "not modified"). `reset()` restores the initial state byte for byte, so
two clients can be run through identical cycles one after the other. `inject()` adds one given item to one
feed now (for the alert-latency benchmark) and records when the farm first serves it.

Bodies are rendered and gzipped when they change, never per request (volatile feeds excepted: they are
recompressed at level 1 on each request, as a CMS would). The server is a minimal HTTP/1.1 keep-alive
asyncio protocol: GET only, no request bodies, which is all a feed poller sends.

Run alone for manual testing: `python bench/farm.py --feeds 20` prints the URLs and serves until stdin closes.
The parent talks to the serving process over stdin/stdout, one JSON object per line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from html import escape
from typing import Any, Literal

Kind = Literal["validated", "bare", "volatile"]
ITEMS_PER_FEED = 50
NET = "127.77"
"""Feed i listens on 127.77.(1 + i // 250).(1 + i % 250): all of 127/8 is loopback on Linux."""
MAX_FEEDS = 250 * 254

# --- news-like text --------------------------------------------------------------------------------------
# Plain world news with no name from the watch list, plus a small share of items about the Karabakh
# conflict (they fire the shipped rules) and of near misses (Qarabag the football club, the Baku Grand
# Prix) that mention a watched name in a context the rules exclude.

_COUNTRIES = [
    "Poland",
    "Kenya",
    "Peru",
    "Indonesia",
    "Canada",
    "Chile",
    "Vietnam",
    "Norway",
    "Bangladesh",
    "Ghana",
    "Ecuador",
    "Portugal",
    "Morocco",
    "Mexico",
    "Finland",
    "Malaysia",
    "Nigeria",
    "Colombia",
    "Ireland",
    "Thailand",
    "Argentina",
    "Sweden",
    "Tanzania",
    "Romania",
    "Philippines",
    "Uruguay",
    "Senegal",
    "Austria",
]
_CITIES = [
    "Warsaw",
    "Nairobi",
    "Lima",
    "Jakarta",
    "Ottawa",
    "Santiago",
    "Hanoi",
    "Oslo",
    "Dhaka",
    "Accra",
    "Quito",
    "Lisbon",
    "Rabat",
    "Monterrey",
    "Helsinki",
    "Penang",
    "Lagos",
    "Medellin",
    "Cork",
    "Chiang Mai",
    "Rosario",
    "Gothenburg",
    "Dodoma",
    "Cluj",
    "Cebu",
    "Montevideo",
    "Dakar",
    "Graz",
    "Vancouver",
    "Krakow",
    "Mombasa",
]
_OFFICIALS = [
    "the finance minister",
    "the prime minister",
    "a government spokesperson",
    "the central bank governor",
    "the health minister",
    "the mayor",
    "the opposition leader",
    "the interior ministry",
    "the labour minister",
    "a senior diplomat",
    "the transport minister",
    "the environment agency",
    "the national statistics office",
    "the education minister",
    "the energy regulator",
    "a union representative",
    "the trade minister",
]
_GROUPS = [
    "farmers",
    "teachers",
    "nurses",
    "dock workers",
    "taxi drivers",
    "students",
    "pensioners",
    "doctors",
    "railway staff",
    "small businesses",
    "tenants",
    "fishermen",
    "airline pilots",
    "civil servants",
]
_COMPANIES = [
    "Northwind Energy",
    "Helio Motors",
    "Barents Shipping",
    "Crescent Telecom",
    "Altura Mining",
    "Vela Foods",
    "Quantia Bank",
    "Orbis Airlines",
    "Meridian Pharma",
    "Cobalt Logistics",
    "Solano Retail",
    "Tessera Steel",
]
_TOPICS = [
    "public transport",
    "housing",
    "the state pension",
    "water supply",
    "road safety",
    "fuel prices",
    "hospital waiting lists",
    "school funding",
    "broadband coverage",
    "air quality",
    "food prices",
    "youth unemployment",
    "the minimum wage",
    "flood defences",
    "renewable energy",
    "rail freight",
]
_VERBS = [
    "would review",
    "plans to expand",
    "has agreed to fund",
    "will phase out",
    "intends to overhaul",
    "is expected to cut",
    "has promised to protect",
    "could delay",
    "wants to simplify",
    "will audit",
    "is preparing to reform",
    "has pledged to double",
    "might scrap",
    "is under pressure to freeze",
]
_WHEN = [
    "before the end of the year",
    "within six months",
    "next spring",
    "by 2030",
    "over the next decade",
    "in the coming weeks",
    "after the summer recess",
    "from January",
    "ahead of the budget",
    "this quarter",
]
_SOURCES = [
    "the national news agency",
    "local media",
    "officials",
    "a report published on Monday",
    "court documents",
    "people familiar with the matter",
    "the regional broadcaster",
    "a statement from the ministry",
]
_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_SECTIONS = ["World", "Europe", "Africa", "Americas", "Asia", "Business", "Politics", "Top stories", "Latest"]
_OUTLET_A = ["Harbor", "Northern", "Capital", "Evening", "Daily", "Coastal", "Morning", "Metro", "Union", "Valley"]
_OUTLET_B = ["Courier", "Ledger", "Herald", "Chronicle", "Tribune", "Gazette", "Observer", "Dispatch", "Post"]
_AUTHORS = [
    "Anna Kowalska",
    "James Mwangi",
    "Lucia Quispe",
    "Budi Santoso",
    "Claire Tremblay",
    "Diego Rojas",
    "Linh Nguyen",
    "Ingrid Dahl",
    "Rahim Chowdhury",
    "Ama Mensah",
    "Joao Pereira",
    "Sara Lindqvist",
]

_TITLES = [
    "{country} central bank {holds} rates as inflation {eases} to {pct}%",
    "{city} council approves {num} million budget for {topic} after long debate",
    "Floods force thousands from their homes in {country} after {small} days of heavy rain",
    "{company} shares {jump} {pct}% after quarterly results {beat} forecasts",
    "Election in {country}: governing party leads early count with {pct}% of the vote",
    "{groups_cap} in {city} strike over pay, disrupting {topic} for a {nth} day",
    "{country} unveils plan to overhaul {topic} as costs keep rising",
    "Heatwave in {country} pushes power demand to record, grid operator warns",
    "{company} to cut {num} jobs in {city} amid slowing demand for its products",
    "Court in {city} blocks government reform of {topic}, citing rights concerns",
    "{country} and {country2} sign trade deal cutting tariffs on farm goods",
    "Protesters march in {city} against changes to {topic} and higher living costs",
    "Earthquake of magnitude {mag} strikes off the coast of {country}; no tsunami alert",
    "{city} airport reopens after storm grounded {num} flights for two days",
    "Parliament in {country} passes law on {topic} after months of negotiation",
]
_CONFLICT_TITLES = [
    "Shelling reported near Stepanakert as the Lachin corridor remains closed",
    "Red Cross convoy reaches Karabakh through the Lachin corridor after weeks of blockade",
    "Refugees from Nagorno-Karabakh arrive in Goris as the exodus continues",
    "Azerbaijan says its antiterrorist operation in Karabakh will go on",
    "Artillery fire heard in Stepanakert as casualties mount among civilians",
    "Food and fuel run short in Stepanakert while the Lachin corridor stays shut",
    "Thousands queue on the road out of Karabakh as the Lachin corridor reopens",
]
_CONFLICT_SENTENCES = [
    "Residents of Stepanakert described hours of shelling and said shelters were running out of food.",
    "The Lachin corridor, the only road linking Karabakh to Armenia, has been closed to civilian traffic.",
    "Aid workers in Goris said buses carrying refugees from Nagorno-Karabakh arrived throughout the night.",
    "The International Committee of the Red Cross said its convoy carried medicine and flour to Karabakh.",
]
_NEAR_MISS_TITLES = [
    "Qarabag beat {country} champions 2-1 in Champions League qualifier",
    "Baku Grand Prix: pole position for the defending champion after a wet qualifying session",
]


@dataclass(frozen=True)
class Article:
    """One item's text; the same article may appear in several feeds (wire copy)."""

    title: str
    paragraphs: tuple[str, ...]
    category: str
    author: str


def _fill(template: str, rng: random.Random) -> str:
    countries = rng.sample(_COUNTRIES, 2)
    return template.format(
        country=countries[0],
        country2=countries[1],
        city=rng.choice(_CITIES),
        topic=rng.choice(_TOPICS),
        company=rng.choice(_COMPANIES),
        groups_cap=rng.choice(_GROUPS).capitalize(),
        num=rng.randint(12, 950),
        pct=f"{rng.uniform(0.5, 48):.1f}",
        small=rng.randint(2, 9),
        mag=f"{rng.uniform(4.5, 7.4):.1f}",
        nth=rng.choice(["second", "third", "fourth", "fifth"]),
        holds=rng.choice(["holds", "raises", "cuts"]),
        eases=rng.choice(["eases", "climbs", "stalls"]),
        jump=rng.choice(["jump", "slide", "climb", "fall"]),
        beat=rng.choice(["beat", "miss", "match"]),
    )


_SYLLABLES = [
    "ka",
    "ro",
    "mi",
    "ten",
    "vas",
    "lo",
    "dre",
    "an",
    "sel",
    "bor",
    "ni",
    "ta",
    "vel",
    "mar",
    "os",
    "ki",
    "len",
    "tu",
    "ra",
    "zem",
    "pe",
    "lin",
    "gor",
    "da",
    "vik",
    "no",
    "har",
    "si",
    "bel",
    "chu",
    "fer",
    "mon",
    "el",
    "ost",
]
_ROLES = [
    "an economist at the University of {place}",
    "a spokesperson for the {place} chamber of commerce",
    "who chairs the parliamentary committee on {topic}",
    "a senior analyst at {company}",
    "the head of the {place} residents' association",
    "a researcher at the {place} Institute",
    "a former deputy minister",
    "who runs a small business in {city}",
    "a lawyer representing {groups}",
]
_QUOTE_A = [
    "We have been waiting for this for years",
    "Nobody here believes the numbers",
    "It is a step in the right direction",
    "This will hit the poorest households hardest",
    "The details still matter more than the headline",
    "People are tired of promises",
    "We expected more from this government",
    "It is too early to judge",
    "There is no money left for anything else",
    "Our members will not accept it",
    "The market has already priced it in",
]
_QUOTE_B = [
    "and the next few months will show whether it works",
    "but the timing could hardly be worse",
    "so we will keep pressing for changes",
    "although the opposition sees it differently",
    "and families in {city} are already feeling it",
    "because the costs keep piling up",
    "while the regions are left to fend for themselves",
    "unless parliament rewrites the bill",
]
_ADVERBS = ["sharply", "slightly", "steadily", "unexpectedly", "again", "for the first time since 2019", "modestly"]
_NOUNS = [
    "exports",
    "tax revenue",
    "ticket sales",
    "rents",
    "hospital admissions",
    "car sales",
    "wheat harvests",
    "tourist arrivals",
    "bond yields",
    "household savings",
    "factory orders",
    "electricity use",
]


def _name(rng: random.Random, parts: int = 2) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(parts)).capitalize()


def _person(rng: random.Random) -> str:
    return f"{_name(rng, rng.randint(2, 3))} {_name(rng, rng.randint(2, 4))}"


_SENTENCES = [
    "Speaking in {city} on {weekday}, {official} said the government {verb} {topic} {when}.",
    "According to {source}, about {thousands} {groups} are affected by the changes to {topic}.",
    "Critics argue the plan does little for {groups}, who have seen costs rise by {pct_int}% since last year.",
    "{company} said in a statement that it {verb} its operations in {country} {when}.",
    "The measure still needs the approval of parliament in {country}, where the coalition of {name} and {name3} "
    "holds a narrow majority of {seats} seats.",
    "Analysts in {city} expect growth of {growth}% this year, down from {growth2}% in an earlier forecast, "
    "{source} reported.",
    "{noun_cap} in {country} rose {adverb} in {month}, to {thousands}.",
    '"{quote_a}, {quote_b}," said {person}, {role}.',
    "The {name3} district of {city} was among the worst affected, with {homes} homes and {seats} schools "
    "reported damaged.",
    "{person}, who leads the {name} party, called the decision {judgement} and demanded a vote {when}.",
    "Figures released by the statistics office on {weekday} showed {noun} {trend} for a {nth} month, "
    "at {billions} billion.",
    "Representatives of {groups} said they would meet {official} again {when} to discuss {topic}.",
]


class _Slots(dict[str, str]):
    """Template slots drawn on first use, so a sentence pays only for the slots it has."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng

    def __missing__(self, key: str) -> str:
        value = _DRAW[key](self, self.rng)
        self[key] = value
        return value


_DRAW: dict[str, Callable[[_Slots, random.Random], str]] = {
    "city": lambda s, r: r.choice(_CITIES), "country": lambda s, r: r.choice(_COUNTRIES),
    "official": lambda s, r: r.choice(_OFFICIALS), "topic": lambda s, r: r.choice(_TOPICS),
    "when": lambda s, r: r.choice(_WHEN), "source": lambda s, r: r.choice(_SOURCES),
    "verb": lambda s, r: r.choice(_VERBS), "weekday": lambda s, r: r.choice(_WEEKDAYS),
    "groups": lambda s, r: r.choice(_GROUPS), "company": lambda s, r: r.choice(_COMPANIES),
    "noun": lambda s, r: r.choice(_NOUNS), "noun_cap": lambda s, r: r.choice(_NOUNS).capitalize(),
    "adverb": lambda s, r: r.choice(_ADVERBS), "month": lambda s, r: r.choice(["March", "June", "August", "October"]),
    "thousands": lambda s, r: f"{r.randint(2, 990)},{r.randint(100, 999)}",
    "pct_int": lambda s, r: str(r.randint(3, 30)), "growth": lambda s, r: f"{r.uniform(0.2, 4.5):.1f}",
    "growth2": lambda s, r: f"{r.uniform(1, 5):.1f}", "seats": lambda s, r: str(r.randint(1, 40)),
    "homes": lambda s, r: str(r.randint(12, 480)), "billions": lambda s, r: f"{r.uniform(1, 99):.1f}",
    "name": lambda s, r: _name(r), "name3": lambda s, r: _name(r, 3), "person": lambda s, r: _person(r),
    "quote_a": lambda s, r: r.choice(_QUOTE_A), "quote_b": lambda s, r: r.choice(_QUOTE_B).format(city=s["city"]),
    "role": lambda s, r: r.choice(_ROLES).format(place=_name(r, 3), topic=s["topic"], city=s["city"],
                                                 company=s["company"], groups=s["groups"]),
    "judgement": lambda s, r: r.choice(["reckless", "overdue", "a betrayal", "cautious", "a good start"]),
    "trend": lambda s, r: r.choice(["falling", "rising", "flat"]),
    "nth": lambda s, r: r.choice(["second", "third", "sixth"]),
}  # fmt: skip


def _sentence(rng: random.Random) -> str:
    return rng.choice(_SENTENCES).format_map(_Slots(rng))


_POOL: list[str] = []
POOL_SIZE = 30_000
"""Items draw their sentences from a fixed pool: 100,000 items are rendered in seconds, and a sentence
repeats about once per feed (350 sentences from 30,000), which does not flatter compression."""


def _paragraphs(rng: random.Random, extra: str | None = None) -> tuple[str, ...]:
    """About 1 KB of prose in three paragraphs; `extra` goes first (the lede of a conflict item)."""
    if not _POOL:
        pool_rng = random.Random("sentences")
        _POOL.extend(_sentence(pool_rng) for _ in range(POOL_SIZE))
    sentences = [_POOL[int(rng.random() * POOL_SIZE)] for _ in range(7)]
    if extra is not None:
        sentences[0] = extra
    return (" ".join(sentences[:3]), " ".join(sentences[3:5]), " ".join(sentences[5:]))


def make_article(rng: random.Random, kind: Literal["news", "conflict", "near_miss"] = "news") -> Article:
    if kind == "conflict":
        title = rng.choice(_CONFLICT_TITLES)
        title = f"{title}, {rng.choice(['officials say', 'witnesses say', 'reports say', 'aid groups say'])}"
        lede = rng.choice(_CONFLICT_SENTENCES)
        return Article(title, _paragraphs(rng, lede), "World", rng.choice(_AUTHORS))
    template = rng.choice(_NEAR_MISS_TITLES if kind == "near_miss" else _TITLES)
    section = "Sport" if kind == "near_miss" else rng.choice(_SECTIONS)
    return Article(_fill(template, rng), _paragraphs(rng), section, rng.choice(_AUTHORS))


def probe_article(number: int, seed: int) -> Article:
    """A distinct item that fires the watch list: its own event (people and places no other item names) near
    Stepanakert, so the story layer sees a story of its own, not another outlet's copy of a wire story."""
    rng = random.Random(f"probe:{seed}:{number}")
    who, where, what = _name(rng, 3), _name(rng, 3), _name(rng, 2)
    title = f"{who} says {what} convoy reached {where} near Stepanakert overnight (report {number:04d})"
    lede = f"{who}, speaking in {where}, said the {what} convoy had crossed from Goris before dawn."
    return Article(title, _paragraphs(rng, lede), "World", rng.choice(_AUTHORS))


# --- feeds -----------------------------------------------------------------------------------------------


def feed_kinds(feeds: int, seed: int, bare: float = 0.03, volatile: float = 0.03) -> list[Kind]:
    """The kind of each feed: fixed by the seed, so the parent can plan without asking the farm."""
    rng = random.Random(f"kinds:{seed}")
    kinds: list[Kind] = ["validated"] * feeds
    picked = rng.sample(range(feeds), round(feeds * bare) + round(feeds * volatile))
    for n, index in enumerate(picked):
        kinds[index] = "bare" if n < round(feeds * bare) else "volatile"
    return kinds


def address(index: int, hosts: int) -> str:
    slot = index % hosts
    return f"{NET}.{1 + slot // 250}.{1 + slot % 250}"


@dataclass(frozen=True)
class Plan:
    """One cycle's changes. Feeds in neither `new` nor `changed` stay as they are."""

    new: Mapping[int, int] = field(default_factory=dict)
    """feed index → how many new items it gets (1-3)."""
    changed: frozenset[int] = frozenset()
    """Feeds whose body changes (a new lastBuildDate, so a new ETag) with no new item."""
    force_304: bool = False
    """Every feed answers 304 this cycle, whatever the request."""

    def to_json(self) -> dict[str, Any]:
        return {
            "new": {str(k): v for k, v in self.new.items()},
            "changed": sorted(self.changed),
            "force_304": self.force_304,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Plan:
        return Plan(
            {int(k): int(v) for k, v in data.get("new", {}).items()},
            frozenset(data.get("changed", ())),
            bool(data.get("force_304", False)),
        )


def steady_plan(kinds: list[Kind], rng: random.Random, new_share: float = 0.1, changed_share: float = 0.1) -> Plan:
    """A steady cycle: `new_share` of the feeds get 1-3 new items, `changed_share` a changed body with no new
    item (every volatile and bare feed first, since they cannot answer 304), the rest answer 304."""
    feeds = len(kinds)
    new = {i: rng.randint(1, 3) for i in rng.sample(range(feeds), round(feeds * new_share))}
    no_304 = [i for i, k in enumerate(kinds) if k != "validated" and i not in new]
    rest = [i for i, k in enumerate(kinds) if k == "validated" and i not in new]
    fill = max(0, round(feeds * changed_share) - len(no_304))
    return Plan(new, frozenset(no_304) | frozenset(rng.sample(rest, min(fill, len(rest)))))


@dataclass
class _Feed:
    index: int
    kind: Kind
    path: str
    title: str
    link: str
    cdata: bool
    serials: list[int]
    """Items in the feed, newest first, by serial number."""
    built: float
    version: int = 0
    etag: str = ""
    last_modified: str = ""
    modified_at: float = 0.0
    head: str = ""
    items_xml: bytes = b""
    raw: bytes = b""
    gz: bytes = b""


class _State:
    """The farm inside the serving process: feeds, their items, their rendered bodies, counters."""

    def __init__(self, feeds: int, seed: int, match_share: float) -> None:
        self.seed, self.match_share = seed, match_share
        self.start = time.time()
        self.kinds = feed_kinds(feeds, seed)
        self.wire = [self._wire_article(i) for i in range(max(50, feeds * 2))]
        self.extra: dict[tuple[int, int], tuple[Article, float]] = {}
        """Injected items: (feed, serial) → (article, pubDate)."""
        self.probes: dict[int, tuple[int, int, float, float | None]] = {}
        """probe number → (feed, serial, injected at, first served at)."""
        self.feeds = [self._new_feed(i) for i in range(feeds)]
        self.by_path = {f.path: f for f in self.feeds}
        self.item_cache: dict[tuple[int, int], bytes] = {}
        for f in self.feeds:
            self._render(f)
        self.initial = [
            (
                list(f.serials),
                f.built,
                f.version,
                f.etag,
                f.last_modified,
                f.modified_at,
                f.head,
                f.items_xml,
                f.raw,
                f.gz,
            )
            for f in self.feeds
        ]
        self.force_304 = False
        self.counts: dict[str, int] = {}

    def _wire_article(self, number: int) -> Article:
        return make_article(random.Random(f"wire:{self.seed}:{number}"))

    def _new_feed(self, index: int) -> _Feed:
        rng = random.Random(f"feed:{self.seed}:{index}")
        outlet = f"The {rng.choice(_OUTLET_A)} {rng.choice(_OUTLET_B)}"
        section = rng.choice(_SECTIONS)
        domain = f"www.{outlet.split()[1].lower()}{outlet.split()[2].lower()}{index}.example"
        return _Feed(
            index=index,
            kind=self.kinds[index],
            path=f"/rss/{section.lower().replace(' ', '-')}-{index}.xml",
            title=f"{outlet} — {section}",
            link=f"https://{domain}/{section.lower().replace(' ', '-')}",
            cdata=rng.random() < 0.5,
            serials=list(range(ITEMS_PER_FEED - 1, -1, -1)),
            built=self.start,
        )

    def _article(self, feed: int, serial: int) -> tuple[Article, float]:
        if (feed, serial) in self.extra:
            return self.extra[(feed, serial)]
        rng = random.Random(f"item:{self.seed}:{feed}:{serial}")
        # Initial items span the last ~2 days, one about every hour; later ones are dated when they appear.
        when = self.start - (ITEMS_PER_FEED - 1 - serial) * 3500 - rng.uniform(0, 1800)
        roll = rng.random()
        if roll < self.match_share:
            return make_article(rng, "conflict"), when
        if roll < self.match_share + 0.005:
            return make_article(rng, "near_miss"), when
        if roll < 0.15:
            return self.wire[rng.randrange(len(self.wire))], when
        return make_article(rng), when

    def _item_xml(self, feed: _Feed, serial: int) -> bytes:
        cached = self.item_cache.get((feed.index, serial))
        if cached is not None:
            return cached
        article, when = self._article(feed.index, serial)
        slug = "-".join(article.title.lower().replace(",", "").replace(":", "").split()[:8])
        link = f"{feed.link.rsplit('/', 1)[0]}/{time.strftime('%Y/%m/%d', time.gmtime(when))}/{slug}-{serial}"
        html = "".join(f"<p>{escape(p, quote=False)}</p>" for p in article.paragraphs)
        description = f"<![CDATA[{html}]]>" if feed.cdata else escape(html, quote=False)
        xml = (
            f"<item>\n<title>{escape(article.title, quote=False)}</title>\n<link>{escape(link)}</link>\n"
            f'<guid isPermaLink="false">{feed.link.split("/")[2]}-{serial:06d}</guid>\n'
            f"<pubDate>{formatdate(when, usegmt=True)}</pubDate>\n<dc:creator>{article.author}</dc:creator>\n"
            f"<category>{article.category}</category>\n<description>{description}</description>\n</item>\n"
        ).encode()
        self.item_cache[(feed.index, serial)] = xml
        return xml

    def _render(self, feed: _Feed) -> None:
        """Render and compress `feed` after a change; a new version gets new validators."""
        feed.version += 1
        feed.modified_at = max(time.time(), feed.modified_at + 1)
        feed.built = feed.modified_at
        feed.etag = f'"{feed.index:x}-{feed.version:x}-{self.seed:x}"'
        feed.last_modified = formatdate(feed.modified_at, usegmt=True)
        feed.head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>\n'
            f"<title>{escape(feed.title, quote=False)}</title>\n<link>{feed.link}</link>\n"
            f"<description>Latest news from {escape(feed.title, quote=False)}</description>\n"
            f'<language>en</language>\n<atom:link href="{feed.link}/rss.xml" rel="self" type="application/rss+xml"/>\n'
            "<ttl>10</ttl>\n"
        )
        feed.items_xml = b"".join(self._item_xml(feed, s) for s in feed.serials) + b"</channel>\n</rss>\n"
        if feed.kind != "volatile":
            feed.raw = self._body(feed, feed.built)
            feed.gz = _gzip(feed.raw, 6)

    def _body(self, feed: _Feed, built: float) -> bytes:
        date = f"<lastBuildDate>{formatdate(built, usegmt=True)}</lastBuildDate>\n"
        return (feed.head + date).encode() + feed.items_xml

    # --- control ---

    def apply(self, plan: Plan) -> None:
        now = time.time()
        self.force_304 = plan.force_304
        for index, count in plan.new.items():
            feed = self.feeds[index]
            top = feed.serials[0] if feed.serials else -1
            for serial in range(top + 1, top + 1 + count):
                rng = random.Random(f"new:{self.seed}:{index}:{serial}")
                kind: Literal["news", "conflict"] = "conflict" if rng.random() < self.match_share else "news"
                article = self.wire[rng.randrange(len(self.wire))] if rng.random() < 0.15 else make_article(rng, kind)
                self.extra[(index, serial)] = (article, now)
                feed.serials.insert(0, serial)
            self._drop_old(feed)
            self._render(feed)
        for index in plan.changed:
            if index not in plan.new:
                self._render(self.feeds[index])

    def _drop_old(self, feed: _Feed) -> None:
        for serial in feed.serials[ITEMS_PER_FEED:]:
            self.item_cache.pop((feed.index, serial), None)
        del feed.serials[ITEMS_PER_FEED:]

    def inject(self, index: int, number: int, article: Article) -> float:
        feed = self.feeds[index]
        serial = feed.serials[0] + 1
        now = time.time()
        self.extra[(index, serial)] = (article, now)
        feed.serials.insert(0, serial)
        self._drop_old(feed)
        self._render(feed)
        at = time.time()
        self.probes[number] = (index, serial, at, None)
        return at

    def reset(self) -> None:
        for feed, saved in zip(self.feeds, self.initial, strict=True):
            (
                serials,
                feed.built,
                feed.version,
                feed.etag,
                feed.last_modified,
                feed.modified_at,
                feed.head,
                feed.items_xml,
                feed.raw,
                feed.gz,
            ) = saved
            feed.serials = list(serials)
        self.extra.clear()
        self.probes.clear()
        self.item_cache.clear()
        self.force_304 = False
        self.counts = {}

    def take_counts(self) -> dict[str, int]:
        counts, self.counts = self.counts, {}
        return counts

    # --- serving ---

    def respond(self, head: bytes) -> tuple[bytes, bool]:
        """The whole response to one request head, and whether to close the connection after it."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        close = headers.get("connection", "").lower() == "close" or (len(parts) > 2 and parts[2] == "HTTP/1.0")
        now = time.time()
        date = f"Date: {_http_date(now)}\r\n"
        if len(parts) < 2 or parts[0] != "GET":
            return self._plain(405, "Method Not Allowed", date), True
        feed = self.by_path.get(parts[1].split("?", 1)[0])
        if feed is None:
            return self._plain(404, "Not Found", date), close
        if self.force_304 or (feed.kind == "validated" and self._fresh(feed, headers)):
            self._count("304")
            validators = ""
            if feed.kind == "validated":
                validators = f"ETag: {feed.etag}\r\nLast-Modified: {feed.last_modified}\r\n"
            return f"HTTP/1.1 304 Not Modified\r\n{date}{validators}Cache-Control: max-age=60\r\n\r\n".encode(), close
        gzip_ok = "gzip" in headers.get("accept-encoding", "")
        if feed.kind == "volatile":
            feed.built = max(now, feed.built + 1)  # a new lastBuildDate on every request
            raw = self._body(feed, feed.built)
            body = _gzip(raw, 1) if gzip_ok else raw
        else:
            raw, body = feed.raw, feed.gz if gzip_ok else feed.raw
        self._count("200")
        self._count("bytes", len(body))
        self._seen(feed, now)
        extra = "Content-Encoding: gzip\r\n" if gzip_ok else ""
        if feed.kind == "validated":
            extra += f"ETag: {feed.etag}\r\nLast-Modified: {feed.last_modified}\r\n"
        head_out = (
            f"HTTP/1.1 200 OK\r\n{date}Content-Type: application/rss+xml; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Vary: Accept-Encoding\r\nCache-Control: max-age=60\r\n\r\n"
        )
        return head_out.encode() + body, close

    def _fresh(self, feed: _Feed, headers: Mapping[str, str]) -> bool:
        tags = headers.get("if-none-match")
        if tags is not None:
            return any(t.strip().removeprefix("W/") == feed.etag for t in tags.split(",")) or tags.strip() == "*"
        since = headers.get("if-modified-since")
        if since is None:
            return False
        try:
            return parsedate_to_datetime(since).timestamp() >= int(feed.modified_at)
        except (TypeError, ValueError, IndexError):
            return False

    def _seen(self, feed: _Feed, now: float) -> None:
        if not self.probes:
            return
        for number, (index, serial, at, served) in self.probes.items():
            if served is None and index == feed.index and serial in feed.serials:
                self.probes[number] = (index, serial, at, now)

    def _count(self, key: str, amount: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + amount

    @staticmethod
    def _plain(status: int, reason: str, date: str) -> bytes:
        return f"HTTP/1.1 {status} {reason}\r\n{date}Content-Length: 0\r\n\r\n".encode()


_DATE_CACHE: list[Any] = [0, ""]


def _http_date(now: float) -> str:
    second = int(now)
    if _DATE_CACHE[0] != second:
        _DATE_CACHE[:] = [second, formatdate(second, usegmt=True)]
    return str(_DATE_CACHE[1])


def _gzip(data: bytes, level: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


class _Http(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > 65536:
                    self.transport.close()
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            response, close = self.state.respond(head)
            self.transport.write(response)
            if close:
                self.transport.close()
                return


async def _serve(feeds: int, seed: int, hosts: int, match_share: float) -> None:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    state = _State(feeds, seed, match_share)
    servers: list[asyncio.AbstractServer] = []
    port = 0
    for _attempt in range(8):  # a port free on every address; another program may hold one of them
        try:
            first = await loop.create_server(lambda: _Http(state), address(0, hosts), 0, reuse_address=True)
            port = first.sockets[0].getsockname()[1]
            servers = [first]
            for slot in range(1, min(hosts, feeds)):
                servers.append(
                    await loop.create_server(lambda: _Http(state), address(slot, hosts), port, reuse_address=True)
                )
            break
        except OSError:
            for server in servers:
                server.close()
            servers = []
    if not servers:
        raise SystemExit("farm: no port free on every farm address")
    out = sys.stdout
    urls = [f"http://{address(f.index, hosts)}:{port}{f.path}" for f in state.feeds]
    sizes = [len(f.raw or state._body(f, f.built)) for f in state.feeds]
    gz = [len(f.gz or _gzip(state._body(f, f.built), 6)) for f in state.feeds]
    ready = {
        "ready": True,
        "port": port,
        "urls": urls,
        "kinds": state.kinds,
        "setup_s": round(time.perf_counter() - started, 2),
        "raw_bytes": sum(sizes),
        "gzip_bytes": sum(gz),
    }
    out.write(json.dumps(ready) + "\n")
    out.flush()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while True:
            line = await reader.readline()
            if not line:
                return  # the parent is gone: stop
            command = json.loads(line)
            reply = _control(state, command)
            out.write(json.dumps(reply) + "\n")
            out.flush()
            if command.get("op") == "stop":
                return
    finally:
        for server in servers:
            server.close()


def _control(state: _State, command: Mapping[str, Any]) -> dict[str, Any]:
    op = command.get("op")
    if op == "cycle":
        counts = state.take_counts()
        started = time.perf_counter()
        state.apply(Plan.from_json(command["plan"]))
        return {"ok": True, "counts": counts, "apply_s": round(time.perf_counter() - started, 3)}
    if op == "reset":
        state.reset()
        return {"ok": True}
    if op == "counts":
        return {"ok": True, "counts": state.take_counts()}
    if op == "inject":
        article = Article(command["title"], tuple(command["paragraphs"]), "World", "Staff")
        return {"ok": True, "at": state.inject(int(command["feed"]), int(command["number"]), article)}
    if op == "probes":
        return {"ok": True, "probes": {str(k): [v[2], v[3]] for k, v in state.probes.items()}}
    if op == "stop":
        return {"ok": True}
    return {"ok": False, "error": f"unknown op {op!r}"}


# --- the parent's handle ---------------------------------------------------------------------------------


class Farm:
    """The parent's handle on a farm running in its own process. Use as a context manager."""

    def __init__(self, feeds: int, seed: int = 1, *, hosts: int | None = None, match_share: float = 0.02) -> None:
        if not 1 <= feeds <= MAX_FEEDS:
            raise ValueError(f"feeds must be 1..{MAX_FEEDS}")
        self.feeds, self.seed, self.hosts, self.match_share = feeds, seed, hosts or feeds, match_share
        self.urls: list[str] = []
        self.kinds: list[Kind] = []
        self.info: dict[str, Any] = {}
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()  # one request/reply at a time, whatever thread calls

    def start(self) -> Farm:
        command = [
            sys.executable,
            __file__,
            "--serve",
            "--feeds",
            str(self.feeds),
            "--seed",
            str(self.seed),
            "--hosts",
            str(self.hosts),
            "--match-share",
            str(self.match_share),
        ]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self._read()
        self.urls, self.kinds = self.info["urls"], self.info["kinds"]
        return self

    def _read(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the farm process exited (status {self._process.poll()})")
        reply: dict[str, Any] = json.loads(line)
        if reply.get("ok") is False:
            raise RuntimeError(f"farm: {reply.get('error')}")
        return reply

    def _call(self, **command: Any) -> dict[str, Any]:
        assert self._process is not None and self._process.stdin is not None
        with self._lock:
            self._process.stdin.write(json.dumps(command) + "\n")
            self._process.stdin.flush()
            return self._read()

    def next_cycle(self, plan: Plan) -> dict[str, Any]:
        """Apply a cycle's changes now; returns the request counts of the period that just ended."""
        return self._call(op="cycle", plan=plan.to_json())

    def reset(self) -> None:
        """Back to the initial feeds, byte for byte; counters and injected items are dropped."""
        self._call(op="reset")

    def counts(self) -> dict[str, int]:
        """Responses since the last cycle, reset or counts: {"200": n, "304": n, "bytes": n}."""
        counts: dict[str, int] = self._call(op="counts")["counts"]
        return counts

    def inject(self, feed: int, number: int, article: Article) -> float:
        """Add one item at the top of `feed` now; returns the time (epoch s) from which it is served."""
        at: float = self._call(
            op="inject", feed=feed, number=number, title=article.title, paragraphs=list(article.paragraphs)
        )["at"]
        return at

    def probes(self) -> dict[int, tuple[float, float | None]]:
        """Injected items: number → (injected at, first served at or None)."""
        return {int(k): (v[0], v[1]) for k, v in self._call(op="probes")["probes"].items()}

    def stop(self) -> None:
        if self._process is None:
            return
        try:
            if self._process.poll() is None:
                self._call(op="stop")
        except (OSError, RuntimeError, ValueError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Farm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _check_loopback(urls: Iterable[str]) -> None:
    for url in urls:
        host = url.split("/")[2].split(":")[0]
        assert host.startswith("127."), url
        socket.inet_aton(host)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hosts", type=int, default=0, help="distinct addresses (default: one per feed)")
    parser.add_argument("--match-share", type=float, default=0.02, help="share of items that fire the watch list")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.feeds, args.seed, args.hosts or args.feeds, args.match_share))
        return
    with Farm(args.feeds, args.seed, hosts=args.hosts or None, match_share=args.match_share) as farm:
        _check_loopback(farm.urls)
        print(f"{len(farm.urls)} feeds ready in {farm.info['setup_s']} s; Ctrl-D stops", file=sys.stderr)
        for url in farm.urls:
            print(url)
        sys.stdin.read()


if __name__ == "__main__":
    main()
