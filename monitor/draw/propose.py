"""From an article's entities to a watch list: other-language names, key-phrase term groups, starter rules,
and the keywords.toml (or JSON) `monitor draw` prints.

The starter rules ask for the story, not its countries: the entities below country level (a town, a person,
an organisation) together with the article's key phrases, and the countries only all together and with
those phrases, so an item that merely names one of the countries does not alert.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from monitor.draw import language as lang
from monitor.draw.article import Article
from monitor.draw.entities import Entity, extract, stem_of
from monitor.draw.scripts import cyrillic, declined

TERMS = 12
"""Key phrases in the group the rules use."""
SPECIFIC = 4
"""Entities below country level a rule names."""
_WORD = re.compile(r"[^\W\d_][^\W\d_'’\-]*")


@dataclass(frozen=True)
class Proposal:
    source: str
    title: str
    language: str
    entities: list[dict[str, Any]]
    """id, kind, names, count, sentence: most important first."""
    terms: list[dict[str, Any]]
    """id, words."""
    rules: list[dict[str, Any]]
    """id, query, priority."""

    def to_json(self) -> dict[str, Any]:
        return {"source": {"title": self.title, "article": self.source}, "language": self.language,
                "entities": self.entities, "terms": self.terms, "rules": self.rules}  # fmt: skip


def propose(article: Article, name: str | None = None) -> Proposal:
    from monitor.errors import QuerySyntaxError
    from monitor.pipeline.query import check_term

    code, entities = extract(article.title, article.text)
    used: set[str] = set()
    rows: list[dict[str, Any]] = []
    countries = [e for e in entities if e.place is not None and e.place.country][:2]
    for entity in entities:
        names = [n for n in _names(entity, code) if _usable(n, check_term, QuerySyntaxError)]
        if not names:
            continue
        ident = _unique(_ident(entity.display), used)
        rows.append({"id": ident, "kind": entity.kind, "names": names, "count": entity.count,
                     "sentence": entity.sentence, "role": _role(entity, countries),
                     "core": entity.count >= 2 or entity.first[0] == 0})  # fmt: skip
    base: str = name or next((r["id"] for r in rows if r["role"] == "local"), rows[0]["id"] if rows else "story")
    phrases = [p for p in key_phrases(article, entities, code) if _usable(p, check_term, QuerySyntaxError)]
    terms = [{"id": _unique(f"{base}_key", used), "words": phrases[:TERMS]}] if phrases else []
    rules = _rules(base.replace("_", "-"), rows, terms)
    title = article.title or _first_sentence(article.text)
    for row in rows:
        row.pop("role")
        row.pop("core")
    return Proposal(article.source, title, code, rows, terms, rules)


def _names(entity: Entity, code: str) -> list[str]:
    names = list(entity.names)
    if entity.kind == "person" and len(entity.display.split()) > 1:
        surname = entity.display.split()[-1]
        from wordfreq import zipf_frequency

        if len(surname) >= 5 and zipf_frequency(surname.lower(), "en") < 3.0:
            names.append(surname)  # the surname alone, as the next article will write it
    if code in lang.INFLECTED:
        names.extend(_wildcards(names, code))
    if entity.place is not None:
        names.extend(entity.place.names)
        if entity.place.capital:
            # "Baku says", "talks between Yerevan and Baku": the government, by its capital (and the capital's
            # names in other scripts). Alone, a country never alerts: the rules ask for more.
            from monitor.draw.places import lookup

            capital = lookup([entity.place.capital]).get(entity.place.capital)
            names.extend(capital.names if capital is not None else [entity.place.capital])
    elif code not in ("ru", "uk") and entity.kind in ("person", "place"):
        # No gazetteer entry: the article's names in Cyrillic, one word at a time (they decline).
        for name in list(names):
            if len(name.split()) == 1:
                names.extend(n for n in (cyrillic(name),) if n is not None)
    names.extend(w for w in map(declined, names) if w is not None)
    return list(dict.fromkeys(names))


def _wildcards(names: list[str], code: str) -> list[str]:
    """A name's forms by a trailing wildcard on its stem: "Украин*" for Украина, Украины, Украине."""
    out = []
    for name in names:
        words = name.split()
        if len(words) == 1 and "*" not in name and declined(name) is None:  # declining scripts have theirs
            stem = stem_of(code, name)
            if len(stem) >= 4 and name.lower().startswith(stem) and stem != name.lower():
                out.append(name[: len(stem)] + "*")
    return out


def _usable(name: str, check: Any, error: type[Exception]) -> bool:
    try:
        check(name, 1)
    except error:
        return False
    return '"' not in name and len(name) <= 120


def key_phrases(article: Article, entities: list[Entity], code: str) -> list[str]:
    """The article's own words for what happens (YAKE's idea, by word frequency): frequent in the article,
    rare in the language, not a name; a word's family by a trailing wildcard on its stem."""
    from wordfreq import zipf_frequency

    named = {w.lower() for e in entities for n in e.names for w in re.split(r"[\s\-]+", n)}
    text = f"{article.title or ''}\n{article.text}"
    lowered = [w.lower() for w in _WORD.findall(text) if not w[:1].isupper()]
    counts = Counter(w for w in lowered if len(w) > 3 and not lang.is_common(w, code) and w not in named)
    language = code if code in ("en", "fr", "es", "de", "it", "ru", "uk") else "en"
    scored: dict[str, float] = {}
    for word, count in counts.items():
        zipf = zipf_frequency(word, language)
        if zipf >= 4.5 or (count < 2 and zipf > 3.5):
            continue  # everyday words say nothing of the story
        scored[word] = count * (6.0 - max(zipf, 1.0))
    ranked = sorted(scored, key=lambda w: -scored[w])
    out: list[str] = []
    stems: set[str] = set()
    for word in ranked:
        stem = stem_of(code, word)
        if stem in stems:
            continue
        stems.add(stem)
        out.append(stem + "*" if len(stem) >= 5 and word.startswith(stem) and stem != word else word)
        if len(out) >= TERMS * 2:
            break
    return out


def _role(entity: Entity, countries: list[Entity]) -> str:
    """country: one of the story's two countries; local: a place, person or event of the story itself, which
    alone says the item is about it (a town in those countries, a place the article is about, a person it
    names with one of the countries); else background (a third country, an organisation that acts
    everywhere), which alerts only with the countries."""
    if any(entity is c for c in countries):
        return "country"
    if entity.place is not None and entity.place.country:
        return "background"
    codes = {c.place.code for c in countries if c.place is not None}
    if entity.kind == "place":
        if entity.place is not None:
            return "local" if entity.place.code in codes else "background"
        return "local" if entity.count >= 2 else "background"
    if entity.kind in ("person", "event", "group"):
        named = [n.casefold()[:5] for c in countries for n in c.names if len(n) >= 5]
        if entity.count >= 2 or any(stem in entity.sentence.casefold() for stem in named):
            return "local"
    return "background"


def _rules(base: str, rows: list[dict[str, Any]], terms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """story: a place, person or event the article is about, named more than once (alone, it is the
    story); context: one it names once, with the story's words or its other places; countries: both
    countries together; key: either country with the story's key phrases."""
    core = [r["id"] for r in rows if r["role"] == "local" and r["core"]]
    minor = [r["id"] for r in rows if r["role"] == "local" and not r["core"]]
    countries = [r["id"] for r in rows if r["role"] == "country"]
    key = f"@{terms[0]['id']}" if terms else None
    rules = []
    if core:
        rules.append({"id": f"{base}-story", "query": " OR ".join(f"@{i}" for i in core), "priority": "high"})
    company = [f"@{i}" for i in core] + ([key] if key else [])
    if minor and company:
        rules.append({"id": f"{base}-context", "priority": "normal",
                      "query": f"({' OR '.join(f'@{i}' for i in minor)}) AND ({' OR '.join(company)})"})  # fmt: skip
    if len(countries) == 2:
        rules.append({"id": f"{base}-countries", "query": f"@{countries[0]} AND @{countries[1]}", "priority": "normal"})
    if countries and key:
        either = " OR ".join(f"@{c}" for c in countries)
        rules.append({"id": f"{base}-key", "query": f"({either}) AND {key}", "priority": "normal"})
    return rules


_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i", "й": "y",
    "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f",
    "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu",
    "я": "ya", "і": "i", "ї": "yi", "є": "ye", "ґ": "g",
}  # fmt: skip


def _ident(display: str) -> str:
    """An id for the name: `[a-z0-9_]+`, Latin letters without accents (Cyrillic transliterated)."""
    import unicodedata

    text = "".join(_CYRILLIC.get(c, c) for c in display.lower())
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    ident = re.sub(r"[^a-z0-9]+", "_", text).strip("_")[:40].strip("_")
    return ident or "entity"


def _unique(ident: str, used: set[str]) -> str:
    candidate, number = ident, 2
    while candidate in used:
        candidate, number = f"{ident}_{number}", number + 1
    used.add(candidate)
    return candidate


def _first_sentence(text: str) -> str:
    first = text.strip().split("\n", 1)[0]
    sentence = re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0]
    return sentence if len(sentence) <= 140 else sentence[:137].rsplit(" ", 1)[0] + "…"


# --- output ------------------------------------------------------------------------------------------------


def to_toml(proposal: Proposal) -> str:
    q = _quoted
    lines = [
        "# A watch list drawn by `monitor draw` from the article below: entities in order of importance to it,",
        "# key phrases, and starter rules. Read it, edit it, then run `monitor check` and `monitor backtest`.",
        f"# drawn from: {_one_line(proposal.source)} (language: {proposal.language})",
        "schema = 1",
        "",
        "[source]",
        f"title = {q(proposal.title)}",
        "",
    ]
    for entity in proposal.entities:
        mentions = "mention" if entity["count"] == 1 else "mentions"
        lines += [
            f"[entities.{entity['id']}]",
            f"# {entity['count']} {mentions}; first in: {_one_line(entity['sentence'], 150)}",
            f'kind = "{entity["kind"]}"',
            f"names = [{', '.join(q(n) for n in entity['names'])}]",
            "",
        ]
    for group in proposal.terms:
        lines += [f"[terms.{group['id']}]", "# the article's key phrases, rarest in the language first",
                  f"words = [{', '.join(q(w) for w in group['words'])}]", ""]  # fmt: skip
    for rule in proposal.rules:
        lines += ["[[rules]]", f"id = {q(rule['id'])}", f"query = {q(rule['query'])}",
                  f"priority = {q(rule['priority'])}", ""]  # fmt: skip
    return "\n".join(lines)


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string


def _one_line(text: str, most: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= most else flat[: most - 1].rsplit(" ", 1)[0] + "…"
