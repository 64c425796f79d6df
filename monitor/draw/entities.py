"""The people, places, organisations, groups and events an article is about, ranked by importance to it.

    text ─► sentences (headline, lede, body, headings) ─► capitalised spans (names) ─► cleaned (titles,
    sentence openers, credits, datelines, weekdays) ─► merged (aliases the article gives, surnames, acronyms,
    inflected forms, "Karabakh region" into "Karabakh") ─► kinds ─► ranked (headline and lede weigh more)

Names are read from capitals, as an editor skims: no language model, so it runs offline in milliseconds in
any language that writes names with capitals. What it cannot know it leaves to the operator's edit.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from monitor.draw import language as lang
from monitor.draw.places import Place, countries_in, lookup

WEIGHTS = {"title": 4.0, "lede": 2.0, "body": 1.0, "heading": 0.5}
MAX_ENTITIES = 20
LEDE_WORDS = 60

_TOKEN = re.compile(r"(?:[^\W\d_]\.){2,}|[^\W_][^\W_]*(?:[’'\-‐–][^\W_]+)*")
_SENTENCE = re.compile(r"(?<=[.!?])[\"”’»)]?\s+(?=[\"“«(]?[^\W\d_])")
_ELISION = re.compile(r"^(?:[ldjmnstcq]|qu)[’']", re.IGNORECASE)
_POSSESSIVE = re.compile(r"[’']s?$")
_POSSESSIVE_END = re.compile(r"[’']s$")
_CONTRACTION = re.compile(r"^\w+[’'](?:m|s|ve|re|ll|d|t)$", re.IGNORECASE)
_ALIAS = re.compile(
    r"^\s*(?:\((?:(?:also |often |better |formerly )?(?:known|called|referred to) (?:as )?|or |aka |in \w+ )?"
    r"(?P<paren>[^()]{2,60}?)(?:,? (?:by|to|in|among) [^()]{2,40})?\)"
    r"|,\s*(?:also|better|formerly) (?:known|called) (?:to [^,]{2,30} )?as (?:the )?(?P<known>[^,.;()]{2,60}))"
)


@dataclass
class Entity:
    names: dict[str, None]
    """The display name first, then every other name: the article's own aliases, forms, other scripts."""
    kind: str = "other"
    count: int = 0
    score: float = 0.0
    first: tuple[int, int] = (1 << 30, 0)
    """(sentence, offset) of the first mention: ties in score go to the earlier."""
    sentence: str = ""
    """The sentence it first stands in."""
    person: bool = False
    """Named after a title ("Prime Minister Nikol Pashinyan") or by its surname alone later."""
    place: Place | None = None
    located: int = 0
    """Mentions after "in", "into", "from": a place, however little known."""
    initial_only: bool = True
    """Every mention opens its sentence (a capital that may only mark the sentence's start)."""

    @property
    def display(self) -> str:
        return next(iter(self.names))


@dataclass
class _Sentence:
    text: str
    zone: str
    number: int


@dataclass
class _Span:
    tokens: list[str]
    start: int
    """Character offset of its first token in the sentence."""
    end: int
    initial: bool
    """It opens its sentence."""
    sentence: _Sentence
    person: bool = False

    @property
    def after_preposition(self) -> bool:
        words = self.sentence.text[: self.start].split()
        return bool(words) and words[-1].lower() in lang.PLACE_PREPOSITIONS

    @property
    def text(self) -> str:
        return self.sentence.text[self.start : self.end]


@dataclass
class _Reading:
    language: str
    sentences: list[_Sentence] = field(default_factory=list)
    excluded: set[str] = field(default_factory=set)
    """Names that are the article's credits: reporters, wire services."""


def extract(title: str | None, text: str, language: str | None = None) -> tuple[str, list[Entity]]:
    """The article's language and its entities, most important first."""
    code = language or lang.detect(f"{title or ''}\n{text}")
    reading = _read(title, text, code)
    spans = [span for sentence in reading.sentences for span in _spans(sentence, code)]
    mid_caps = {span.tokens[0] for span in spans if not span.initial and len(span.tokens) > 1}
    mid_caps |= {f"={span.tokens[0]}" for span in spans if not span.initial and len(span.tokens) == 1}
    mid_caps |= {f"~{token}" for span in spans if not span.initial for token in span.tokens}
    spans = [cleaned for span in spans for cleaned in _clean(span, code, mid_caps, reading.excluded)]
    entities = _merge(spans, code)
    _kinds(entities, code)
    ranked = sorted(entities, key=lambda e: (-e.score, e.first))
    keep = ranked[:MAX_ENTITIES]
    return code, keep


# --- reading ------------------------------------------------------------------------------------------------


def _read(title: str | None, text: str, code: str) -> _Reading:
    reading = _Reading(code)
    number = 0
    if title:
        reading.sentences.append(_Sentence(title.strip(), "title", number))
        number += 1
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    lede_left = LEDE_WORDS
    for paragraph in paragraphs:
        credit = lang.BYLINE.match(paragraph)
        if credit and len(paragraph) < 200:
            reading.excluded.update(n.strip() for n in re.split(r",|;| and | et | y | und | и ", credit.group(1)))
            continue
        paragraph = _drop_dateline(paragraph)
        for names in lang.IN_TEXT_BYLINE.findall(paragraph):
            reading.excluded.update(n.strip() for n in re.split(r"\s(?:and|und|et|y|и|і)\s", names))
        heading = _is_heading(paragraph)
        for piece in _SENTENCE.split(paragraph):
            if not piece.strip():
                continue
            zone = "heading" if heading else "body"
            if not heading and lede_left > 0:
                zone = "lede"
                lede_left -= len(piece.split())
            reading.sentences.append(_Sentence(piece.strip(), zone, number))
            number += 1
    return reading


def _drop_dateline(paragraph: str) -> str:
    """The text after a dateline ("YEREVAN, Sept 19 (Reuters) -"): the city it was filed from is not news."""
    match = re.match(
        r"^[A-ZÀ-ÞА-Я][A-ZÀ-ÞА-Я .'\-]{2,40}(?:,[^—–\-]{0,40})?\s*(?:\([^)]{1,40}\))?\s*[—–\-]+\s*", paragraph
    )
    return paragraph[match.end() :] if match else paragraph


def _is_heading(paragraph: str) -> bool:
    """A section heading: short, no closing stop, most words capitalised (they would all read as names)."""
    words = paragraph.split()
    if not words or len(words) > 14 or paragraph.rstrip()[-1:] in '.!?"”»':
        return False
    capitals = sum(1 for w in words if w[:1].isupper())
    return capitals >= max(2, len(words) * 0.5)


def _spans(sentence: _Sentence, code: str) -> Iterable[_Span]:
    tokens = list(_TOKEN.finditer(sentence.text))
    run: list[re.Match[str]] = []

    def flush() -> Iterable[_Span]:
        while run and run[-1].group().lower() in lang.CONNECTORS:
            run.pop()
        if run:
            first = run[0]
            before = sentence.text[: first.start()].rstrip(" \"“«'‘(")
            initial = not before or before[-1] in ":;—–"
            yield _Span([t.group() for t in run], first.start(), run[-1].end(), initial, sentence)
        run.clear()

    for index, token in enumerate(tokens):
        word = token.group()
        joined = not run or _joined(sentence.text[run[-1].end() : token.start()])
        if not joined:
            yield from flush()
        if _capital(word):
            if run and run[-1].group().isupper() and len(run[-1].group()) > 1 and not word.isupper():
                yield from flush()  # "ЗСУ Дениса Рашплю": an acronym, then a name
            run.append(token)
            if _POSSESSIVE_END.search(word):  # "Azerbaijan's Aghdam road": two names
                yield from flush()
        elif (run and code in ("ru", "uk") and _org_chain(run, word)) or (
            run and word.lower() in lang.CONNECTORS and _name_follows(tokens, index + 1)
        ):
            run.append(token)
        else:
            yield from flush()
    yield from flush()


def _org_chain(run: list[re.Match[str]], word: str) -> bool:
    """A lowercase word that continues a Russian or Ukrainian organisation's name: its head noun
    ("Слідчий комітет") and the words after it ("институт интеллектуальной собственности")."""
    lower = word.lower()
    if lower.startswith(lang.ORG_STEMS):
        return True
    has_head = any(t.group().lower().startswith(lang.ORG_STEMS) for t in run)
    return has_head and len(run) < 6 and lower.endswith(_GENITIVE) and not lang.is_common(lower, "ru")


_GENITIVE = ("ой", "ей", "ых", "их", "ого", "его", "ости", "ства", "ии", "ия", "а", "ы", "и", "ів", "ої", "ості")
"""Endings of the words after an organisation's head noun ("собственности", "безпеки"); a verb
("сообщить") ends the name."""


def _name_follows(tokens: list[re.Match[str]], index: int) -> bool:
    """A capitalised word comes next, after at most one more connector ("of the Red Cross")."""
    for token in tokens[index : index + 2]:
        if _capital(token.group()):
            return True
        if token.group().lower() not in lang.CONNECTORS:
            return False
    return False


def _joined(gap: str) -> bool:
    return gap.strip() in ("", "&")  # "Armed Conflict Location & Event Data Project"


def _capital(word: str) -> bool:
    core = _ELISION.sub("", word)
    return core[:1].isupper()


# --- cleaning -----------------------------------------------------------------------------------------------


def _clean(span: _Span, code: str, mid_caps: set[str], excluded: set[str]) -> Iterable[_Span]:
    tokens = [_POSSESSIVE.sub("", _ELISION.sub("", t)) for t in span.tokens]
    if span.text in excluded or any(span.text in name or name in span.text for name in excluded if name):
        return
    # A sentence's first word is capitalised anyway: a name only if the article capitalises it elsewhere too
    # (alone, for a name of one word).
    while tokens and span.initial and lang.is_common(tokens[0], code):
        tokens = tokens[1:]  # "The Economic Community ...", "In Yerevan"
    if tokens and span.initial and _frequent(tokens[0], code, 3.0) and not _known_place(tokens[0], code):
        seen = f"={tokens[0]}" if len(tokens) == 1 else tokens[0]
        if seen not in mid_caps and (len(tokens) == 1 or not _name_like(tokens)):
            tokens = tokens[1:]  # "Meanwhile", "Defense officials"
    # Where only names take capitals, the first word of a sentence is a name if the article writes it with a
    # capital elsewhere too, or it is a country or an acronym ("Tempestade Eleanor": a storm named Eleanor).
    first = tokens[0] if tokens else ""
    if (tokens and span.initial and code in lang.CASED_NAMES_ONLY and tokens == span.tokens[-len(tokens) :]
            and f"~{first}" not in mid_caps and not first.isupper() and not _known_place(first)):  # fmt: skip
        tokens = tokens[1:]
    if tokens and (_CONTRACTION.match(tokens[0]) or (len(tokens[0]) >= 4 and tokens[0].isupper()
                   and _frequent(tokens[0], code, 4.5))):  # fmt: skip
        tokens = tokens[1:]  # "I'm", "It's"; "TIME", "TV": a word in capitals, not an acronym
    while tokens and tokens[0].lower() in lang.CONNECTORS:
        tokens = tokens[1:]
    # Titles stand before a person's name: "Armenian Prime Minister Nikol Pashinyan".
    titled = [i for i, t in enumerate(tokens) if _title(tokens, i)]
    person = False
    if titled:
        last = titled[-1]
        before = [t for t in tokens[: titled[0]] if t.lower() not in lang.MODIFIERS]
        after = tokens[last + 1 :]
        while after and after[0].lower() in lang.CONNECTORS:
            after = after[1:]
        if before:
            yield _Span(before, span.start, span.end, span.initial, span.sentence)
        tokens, person = after, bool(after)
    if code in lang.INFLECTED and len(tokens) > 1:
        at = next((i for i, t in enumerate(tokens[:-1]) if _known_place(t, code)), None)
        if at is not None:  # "Премьер-министр Армении Никол Пашинян": Armenia's, then a person
            yield _Span(tokens[: at + 1], span.start, span.end, span.initial, span.sentence)
            tokens, person = tokens[at + 1 :], True
    tokens = [t for t in tokens if t.lower() not in lang.WEEKDAYS_MONTHS]
    if not tokens or all(t.lower() in lang.CREDITS for t in tokens) or " ".join(tokens).lower() in lang.CREDITS:
        return
    if len(tokens) == 1 and ((len(tokens[0]) < 3 and not tokens[0].isupper()) or lang.is_common(tokens[0], code)):
        return  # "Km/h"
    if len(tokens) == 1 and tokens[0].isupper() and len(tokens[0]) <= 3 and _frequent(tokens[0], "en", 5.0):
        return  # "TV"
    if code == "de" and len(tokens) == 1 and not tokens[0].isupper() and not _frequent(tokens[0], "en", 2.5):
        return  # German capitalises every noun: a name of one word is one English writes too (Intel, Google)
    yield _Span(tokens, span.start, span.end, span.initial, span.sentence, person)


def _known_place(word: str, code: str = "en") -> bool:
    """A country's name, in any form the article's language gives it ("Армении")."""
    from monitor.draw.places import countries_in

    if countries_in([word]):
        return True
    return code in lang.INFLECTED and stem_of(code, word) in _country_stems(code)


@cache
def _country_stems(code: str) -> frozenset[str]:
    from monitor.draw.places import _countries

    return frozenset(stem_of(code, name) for name in _countries() if " " not in name and len(name) >= 4)


def _name_like(tokens: list[str]) -> bool:
    """Several capitalised words that hold together as one name: "Economic Community of West African States"
    opening a sentence is still that organisation."""
    words = {t.lower() for t in tokens}
    return len(tokens) >= 3 and bool(words & (lang.ORG_WORDS | lang.EVENT_WORDS | lang.PLACE_WORDS))


def _title(tokens: list[str], index: int) -> bool:
    word = tokens[index].lower().rstrip(".")
    if word not in lang.TITLES:
        return False
    if word in lang.MODIFIERS:
        return index + 1 < len(tokens) and tokens[index + 1].lower() in lang.TITLES
    return True


def _frequent(word: str, code: str, bar: float = 4.0) -> bool:
    from wordfreq import zipf_frequency

    return bool(
        zipf_frequency(word.lower(), code if code in ("en", "fr", "es", "de", "it", "ru", "uk") else "en") >= bar
    )


# --- merging ------------------------------------------------------------------------------------------------


def _merge(spans: list[_Span], code: str) -> list[Entity]:
    # A heading's words (and a headline's in title case) count only for what the text names the same way.
    said = {" ".join(s.tokens) for s in spans if s.sentence.zone not in ("heading", "title")}
    spans = [kept for s in spans for kept in _said(s, said)]
    names = [" ".join(s.tokens) for s in spans]
    counted = Counter(names)
    # Towns only for names that are not everyday words ("Hey" is no town in a quote); countries for all.
    wanted = {n for n in counted if not n.isupper() and not (len(n.split()) == 1 and _frequent(n, code))}
    places = _plausible(lookup(wanted | {h for n in counted if (h := _head(n))}) | countries_in(counted))
    canonical: dict[str, str] = {}
    aliases: dict[str, dict[str, None]] = defaultdict(dict)
    surnamed: set[str] = set()
    # Demonyms are their place: "Armenians", "Azerbaijani".
    for name in counted:
        place = _demonym_of(name, places) if name not in places else None
        if place is None and name not in places:
            place = _demonym_of(name, _all_countries())
            if place is not None:
                places[place] = _all_countries()[place]  # "Armenian separatists": Armenia, though unnamed
        if place is not None:
            canonical[name] = place
    # "Karabakh region", "Karabakh Armenians": a known name and a common word or demonym are the known name.
    for name in counted:
        words = name.split()
        if name in canonical or len(words) < 2:
            continue
        head, last = " ".join(words[:-1]), words[-1]
        if counted[head] >= 2 and (_frequent(last, code, 3.0) or _demonym_of(last, places)) and \
                last.lower() not in lang.PLACE_WORDS | lang.ORG_WORDS | lang.EVENT_WORDS:  # fmt: skip
            canonical[name] = head
    # Names the article gives as another's: "(ICRC)", "(known as Stepanakert by Armenians)".
    for span, name in zip(spans, names, strict=True):
        for alias in _aliases(span, name):
            if alias != name and alias not in canonical:
                canonical[alias] = name
                aliases[name].setdefault(alias)
    # An acronym the article uses apart from its name: "NLD" for "National League for Democracy".
    for name in counted:
        if name not in canonical and name.replace(".", "").isupper() and len(name) >= 2:
            spelled = [m for m in counted if " " in m and m not in canonical and _acronym_of(name, m)]
            if len(spelled) == 1:
                canonical[name] = spelled[0]
                aliases[spelled[0]].setdefault(name)
    # Forms of one name (Украина, Украины): the commonest stands for them.
    for name, head in _forms(counted, code).items():
        if name != head and name not in canonical:
            canonical[name] = head
            aliases[head].setdefault(name)
    # A surname after the full name, "Karabakh" after "Nagorno-Karabakh".
    multi = [n for n in counted if (len(n.split()) > 1 or "-" in n) and n not in canonical]
    for name in counted:
        if name not in canonical and not name.isupper() and not (" " not in name and _frequent(name, code)):
            longer = _part_of(name, multi, counted, code)
            if longer is not None:
                canonical[name] = longer
                aliases[longer].setdefault(name)
                if " " in longer and not set(longer.lower().split()) & (lang.PLACE_WORDS | lang.ORG_WORDS):
                    surnamed.add(longer)  # "Aung San Suu Kyi", then "Suu Kyi": a person

    def root(name: str) -> str:
        seen: set[str] = set()
        while name in canonical and name not in seen:
            seen.add(name)
            name = canonical[name]
        return name

    entities: dict[str, Entity] = {}
    for span, name in zip(spans, names, strict=True):
        key = root(name)
        entity = entities.setdefault(key, Entity({key: None}))
        entity.count += 1
        entity.score += WEIGHTS[span.sentence.zone]
        entity.person = entity.person or span.person or key in surnamed
        entity.located += span.after_preposition
        entity.initial_only = entity.initial_only and span.initial
        position = (span.sentence.number, span.start)
        if position < entity.first:
            entity.first, entity.sentence = position, span.sentence.text
    for name, extra in aliases.items():
        target = entities.get(root(name))
        if target is not None:
            for alias in (name, *extra):
                target.names.setdefault(alias)
    for key, entity in entities.items():
        entity.place = places.get(key) or places.get(_head(key) or "")
    return [e for e in entities.values() if _strong(e, code)]


BIG_TOWN = 100_000


def _plausible(places: dict[str, Place]) -> dict[str, Place]:
    """A town is the one the article means when it is large, or in a country the article names: "Rahman" is
    a surname, not the village in Afghanistan."""
    codes = {p.code for p in places.values() if p.country}
    return {n: p for n, p in places.items() if p.country or p.population >= BIG_TOWN or p.code in codes}


def _said(span: _Span, said: set[str]) -> list[_Span]:
    """The span, or in a heading or title-case headline the longest run of its words the text names."""
    if span.sentence.zone not in ("heading", "title") or (span.sentence.zone == "title" and not _title_case(span)):
        return [span]
    tokens = span.tokens
    for size in range(len(tokens), 0, -1):
        for start in range(len(tokens) - size + 1):
            if " ".join(tokens[start : start + size]) in said:
                return [_Span(tokens[start : start + size], span.start, span.end, False, span.sentence, span.person)]
    return []


def _title_case(span: _Span) -> bool:
    """An English headline In Title Case (other languages capitalise only names in headlines)."""
    if span.sentence.zone == "title" and not _english(span.sentence.text):
        return False
    words = [w for w in span.sentence.text.split() if w[:1].isalpha()]
    return len(words) > 3 and sum(1 for w in words if w[:1].isupper()) >= 0.6 * len(words)


def _english(text: str) -> bool:
    return lang.detect(text) == "en" if len(text.split()) > 6 else True


def _head(name: str) -> str | None:
    """ "Lachin" of "Lachin Corridor": a place word after a name."""
    words = name.split()
    return " ".join(words[:-1]) if len(words) > 1 and words[-1].lower() in lang.PLACE_WORDS else None


@cache
def _all_countries() -> dict[str, Place]:
    from monitor.draw.places import _countries

    return {p.name: p for p in _countries().values()}


def _demonym_of(word: str, places: dict[str, Place]) -> str | None:
    """The place an adjective or people is of: "Armenian(s)" of Armenia, "Azerbaijani" of Azerbaijan."""
    if " " in word or len(word) < 5 or not re.search(r"(?:an|ans|ian|ians|i|is|ese|ish|er|ers)$", word):
        return None
    for name in places:
        stem = name[: max(5, len(name) - 2)]
        if word != name and word.startswith(stem) and " " not in name:
            return name
    return None


def _strong(entity: Entity, code: str) -> bool:
    """Enough to propose: named more than once, or once but unmistakably (a known place, a name of several
    words, a titled person, an acronym, an alias given)."""
    if entity.count >= 2 or entity.place is not None or len(entity.names) > 1:
        return True
    if entity.first[0] == 0 and code != "de":
        return True  # in the headline (a German headline's capitals are its nouns)
    display = entity.display
    return (entity.person or len(display.split()) > 1 or (display.isupper() and 2 <= len(display) <= 8)
            or (code in lang.CASED_NAMES_ONLY and not entity.initial_only))  # fmt: skip


def _aliases(span: _Span, name: str) -> list[str]:
    """Other names the article gives right after this one: "(ICRC)", "(known as Stepanakert by Armenians)",
    ", also known as Artsakh,"."""
    after = span.sentence.text[span.end :]
    match = _ALIAS.match(after)
    if not match:
        return []
    alias = (match.group("paren") or match.group("known") or "").strip().strip("\"“”'")
    alias = re.sub(r"^(?:the|la|le|el|les|los|die|der)\s+", "", alias, flags=re.IGNORECASE)
    if not alias or not _capital(alias) or len(alias.split()) > 6:
        return []
    if alias.isupper() and len(alias) <= 8 and not _acronym_of(alias, name):
        return []
    return [alias]


def _acronym_of(acronym: str, name: str) -> bool:
    """ICRC of "International Committee of the Red Cross", ECOWAS of "Economic Community of West African
    States" (its "of" gives a letter too)."""
    words = [w for w in re.split(r"[\s\-]+", name) if w]
    initials = "".join(w[0] for w in words if w[0].isupper()).upper()
    every = "".join(w[0] for w in words).upper()
    letters = acronym.replace(".", "").upper()
    return letters in (initials, every) or (len(letters) >= 3 and letters in initials)


def _part_of(name: str, multi: list[str], counted: Counter[str], code: str = "en") -> str | None:
    """The longer name this one ends (a surname, "Suu Kyi" of "Aung San Suu Kyi", "Karabakh" of
    "Nagorno-Karabakh", "Пашиняна" of "Никол Пашинян"): the only one, or one named at least twice as often
    as any other. Not an organisation's last word: "Dhaka" is not "University of Dhaka"."""
    words = re.split(r"[\s\-]+", name)
    key = [stem_of(code, w) for w in words] if code in lang.INFLECTED else words

    def ends(longer: str) -> bool:
        tail = re.split(r"[\s\-]+", longer)[-len(words) :]
        return ([stem_of(code, w) for w in tail] if code in lang.INFLECTED else tail) == key

    found = [m for m in multi if m != name and ends(m) and not {w.lower() for w in m.split()} & lang.ORG_WORDS]
    if len(found) == 1:
        return found[0]
    found.sort(key=lambda m: -counted[m])
    return found[0] if len(found) > 1 and counted[found[0]] >= 2 * counted[found[1]] else None


def _forms(counted: Counter[str], code: str) -> dict[str, str]:
    """Each inflected form of a name, to its commonest form ("Украины" to "Украина")."""
    if code not in lang.INFLECTED:
        return {}
    stem = _stemmer(code)
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for name in counted:
        groups[tuple(stem(w) for w in name.split())].append(name)
    forms: dict[str, str] = {}
    for members in groups.values():
        head = min(members, key=lambda n: (len(n), -counted[n]))  # Пашинян, not Пашиняна
        for member in members:
            forms[member] = head
    return forms


@cache
def _stemmer(code: str) -> Any:
    import Stemmer

    stemmer = Stemmer.Stemmer(lang.STEMMERS.get(code, "russian" if code == "uk" else "english"))
    return lambda word: stemmer.stemWord(word.lower())


# --- kinds ----------------------------------------------------------------------------------------------


def _kinds(entities: list[Entity], code: str) -> None:
    for entity in entities:
        words = {w.lower() for name in entity.names for w in re.split(r"[\s\-]+", name)}
        if entity.place is not None or words & lang.PLACE_WORDS or entity.located >= max(2, entity.count * 0.3):
            entity.kind = "place"
        elif words & lang.EVENT_WORDS:
            entity.kind = "event"
        elif words & lang.ORG_WORDS or any(n.isupper() and 2 <= len(n) <= 8 for n in entity.names):
            entity.kind = "org"
        elif entity.person or (
            len(entity.display.split()) in (2, 3) and any(len(n.split()) == 1 for n in entity.names)
        ):
            entity.kind = "person"
        elif entity.display.endswith(("ians", "ans", "is", "ese")):
            entity.kind = "group"


def stem_of(code: str, word: str) -> str:
    """The word's stem in the article's language (lower case): what its forms share."""
    return str(_stemmer(code)(word))
