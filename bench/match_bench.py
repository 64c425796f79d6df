"""Matching throughput of monitor's Matcher against a plain `re` alternation, at 10 to 10,000 names (DESIGN.md §9).

Prints figures only; nothing here asserts a time. Everything is generated from a seeded `random.Random`, so two
runs see the same watch list and the same items:

- names look like a real watch list: people (first + last name), places (1-3 words, some hyphenated), and
  organisations (2-4 words), some with Azerbaijani/Turkish diacritics (`Qarabağ`, `Xankəndi`-like) and some in
  Cyrillic; 100 names per entity group, plus two term groups (`violence`, `diplomacy`);
- one rule per entity group (`@gN`, `@gN AND (@violence OR @diplomacy)`, `@gN NEAR/15 (...)`) and two global
  rules, so rule evaluation is part of the cost;
- items of about 1 KB (title ~80 chars, summary ~900 chars) of news-like English prose; about 10% mention 1-3
  watch-list names, about 30% carry a term word, and some carry common words that are prefixes of names
  (a first name alone, the first word of an organisation, a clipped place name).

The baseline is ONE compiled `re` alternation of every name and term word, case-insensitive, `\\b(?:...)\\b`,
longest first, run with `finditer` over title + summary. It does strictly less work than monitor: no folding
(case only, no diacritics or scripts), no overlapping hits, no rule evaluation. At 10,000 names it is slow, so
it is timed on as many items as fit a fixed time budget (the count is printed).

Usage: python bench/match_bench.py [--items N] [--sizes 10,1000,10000] [--repeat 3]
No network at all.
"""

from __future__ import annotations

import argparse
import platform
import random
import re
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version

from monitor.pipeline.match import Matcher, RuleSpec
from monitor.pipeline.query import parse
from monitor.records import Document

SEED = 20230919
GROUP_SIZE = 100
REGEX_BUDGET_S = 2.0  # per repetition: the regex baseline runs on at most this much wall time of items

# --- watch-list names ---------------------------------------------------------------------------------------

_ONSETS = ["", "b", "d", "g", "k", "l", "m", "n", "r", "s", "t", "v", "z", "sh", "kh", "ch", "q", "x", "y", "h", "j"]
_VOWELS = ["a", "a", "e", "i", "o", "u", "a", "e", "i", "o"]
_CODAS = ["", "", "", "", "", "", "n", "r", "l", "k", "m", "z", "d", "t", "kh"]
# Letters a name written in Azerbaijani/Turkish spelling may carry instead of the plain ones.
_DIACRITIC = {"a": "ə", "e": "ə", "i": "ı", "o": "ö", "u": "ü", "g": "ğ", "c": "ç", "s": "ş", "sh": "ş"}
_CYRILLIC = {
    "sh": "ш", "kh": "х", "ch": "ч", "ts": "ц", "gh": "г", "a": "а", "b": "б", "d": "д", "e": "е", "f": "ф",
    "g": "г", "h": "х", "i": "и", "j": "дж", "k": "к", "l": "л", "m": "м", "n": "н", "o": "о", "p": "п",
    "q": "к", "r": "р", "s": "с", "t": "т", "u": "у", "v": "в", "x": "х", "y": "й", "z": "з",
}  # fmt: skip
_CYRILLIC_KEYS = sorted(_CYRILLIC, key=len, reverse=True)
_SURNAME_ENDINGS = ["ov", "ova", "yan", "ev", "li", "adze", "enko", "oglu", "zade", "shvili", "in", ""]
_PLACE_WORDS = ["Upper", "Lower", "Old", "New", "Valley", "Pass", "Corridor", "District", "Bridge", "Heights"]
_ORG_TEMPLATES = [
    "{w} Defence Ministry", "National Bank of {w}", "{w} Popular Front", "{w} {v} Party",
    "Union of {w} Engineers", "{w} Border Service", "{w} Human Rights Centre", "State Committee of {w}",
    "{w} {v} Oil Company", "{w} Red Crescent", "Democratic Movement of {w}", "{w} Press Agency",
]  # fmt: skip


def _word(rng: random.Random, syllables: tuple[int, int] = (2, 3)) -> str:
    parts = []
    for _ in range(rng.randint(*syllables)):
        parts.append(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS))
    return "".join(parts).capitalize()


def _dress(rng: random.Random, name: str) -> str:
    """Rewrite a plain Latin name: some get diacritics, some are written in Cyrillic, most stay as they are."""
    roll = rng.random()
    if roll < 0.2:
        dressed = name
        for plain in rng.sample(sorted(_DIACRITIC), 3):
            dressed = dressed.replace(plain, _DIACRITIC[plain], 1)
        return dressed
    if roll < 0.3:
        letters: list[str] = []
        i, lower = 0, name.lower()
        while i < len(lower):
            key = next((k for k in _CYRILLIC_KEYS if lower.startswith(k, i)), None)
            letters.append(_CYRILLIC[key] if key else lower[i])
            i += len(key) if key else 1
        return re.sub(r"(^|[ -])(\w)", lambda m: m.group(1) + m.group(2).upper(), "".join(letters))
    return name


def watch_list(count: int, seed: int = SEED) -> list[str]:
    """`count` distinct names, a deterministic mix of people, places and organisations."""
    rng = random.Random(seed)
    first_names = [_word(rng, (2, 3)) for _ in range(300)]
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        kind = rng.random()
        if kind < 0.45:
            name = f"{rng.choice(first_names)} {_word(rng)}{rng.choice(_SURNAME_ENDINGS)}"
        elif kind < 0.75:
            words = [_word(rng) for _ in range(rng.choice((1, 1, 2, 3)))]
            if len(words) > 1 and rng.random() < 0.5:
                name = "-".join(words[:2]) + "".join(" " + w for w in words[2:])
            elif rng.random() < 0.2:
                name = f"{words[0]} {rng.choice(_PLACE_WORDS)}"
            else:
                name = " ".join(words)
        else:
            name = rng.choice(_ORG_TEMPLATES).format(w=_dress(rng, _word(rng)), v=_word(rng, (1, 2)))
        if kind < 0.75:
            name = _dress(rng, name)
        if name.casefold() not in seen:
            seen.add(name.casefold())
            names.append(name)
    return names


TERMS: dict[str, list[str]] = {
    "violence": ["shelling", "artillery", "mine blast", "casualt*", "drone strike", "clashes", "gunfire", "sniper"],
    "diplomacy": ["ceasefire", "peace talks", "envoy", "mediation", "negotiat*", "summit", "peace deal"],
}


def groups_and_rules(names: Sequence[str]) -> tuple[dict[str, list[str]], list[RuleSpec]]:
    """Entity groups of GROUP_SIZE names and the term groups; one rule per entity group plus two global ones."""
    groups: dict[str, list[str]] = {}
    rules: list[RuleSpec] = []
    for index, start in enumerate(range(0, len(names), GROUP_SIZE)):
        gid = f"g{index}"
        groups[gid] = list(names[start : start + GROUP_SIZE])
        shape = index % 8
        if shape < 2:
            query = f"@{gid}"
        elif shape < 7:
            query = f"@{gid} AND (@violence OR @diplomacy)"
        else:
            query = f"@{gid} NEAR/15 (@violence OR @diplomacy)"
        rules.append(RuleSpec(f"watch-{gid}", "urgent" if shape == 7 else "normal", parse(query)))
    groups.update(TERMS)
    rules.append(RuleSpec("ceasefire-broken", "high", parse('"ceasefire violation" OR "ceasefire violations"')))
    rules.append(RuleSpec("violence-headline", "normal", parse('title:@violence AND NOT "Grand Prix"')))
    return groups, rules


# --- items -------------------------------------------------------------------------------------------------

_SUBJECTS = [
    "Officials", "The government", "Local residents", "Security forces", "The foreign ministry", "Witnesses",
    "Aid agencies", "Opposition leaders", "The president's office", "Analysts", "Diplomats", "Police",
    "The defence ministry", "Lawmakers", "Human rights groups", "The prime minister", "Regional authorities",
]  # fmt: skip
_VERBS = [
    "said", "reported", "denied", "confirmed", "warned", "announced", "accused", "rejected", "called for",
    "welcomed", "criticised", "described", "questioned", "promised", "acknowledged",
]  # fmt: skip
_OBJECTS = [
    "new measures to restore order", "a plan to reopen the main road", "reports of a build-up of troops",
    "the decision to close the border crossing", "fresh sanctions on several companies",
    "the evacuation of thousands of civilians", "a proposal for international monitors",
    "the arrest of a senior official", "an increase in fuel prices", "delays in humanitarian deliveries",
    "the results of the parliamentary vote", "a review of the national budget", "restrictions on the media",
    "the return of displaced families", "plans for a new gas pipeline", "the release of detained journalists",
]  # fmt: skip
_TAILS = [
    "on Tuesday", "late on Monday", "earlier this week", "according to a statement", "in a televised address",
    "at a news conference in the capital", "citing unnamed sources", "after a meeting of the security council",
    "as the crisis deepened", "amid growing international pressure", "in a post on social media",
]  # fmt: skip
_FILLER = [
    "The situation remained tense, and many families said they had little food or fuel left.",
    "Prices of bread and medicine have risen sharply since the summer, shop owners said.",
    "The United Nations said it was following developments closely and urged restraint.",
    "Independent verification of the claims was not immediately possible.",
    "Several international flights were delayed, and the airport was briefly closed.",
    "The national currency fell to a record low against the dollar on the news.",
    "Schools in the region will stay closed until further notice, the education office said.",
]  # fmt: skip
_TERM_PHRASES = [
    "Heavy shelling was reported overnight near the front line.",
    "Artillery fire could be heard from the outskirts of the town.",
    "Medical workers said the number of casualties was likely to rise.",
    "A drone strike hit a supply depot, the military said.",
    "Sporadic gunfire continued into the evening.",
    "Both sides agreed to a ceasefire that took effect at noon.",
    "A special envoy arrived for a new round of peace talks.",
    "Mediation efforts by neighbouring states have so far stalled.",
    "Negotiators said a summit could take place next month.",
]  # fmt: skip
_HEADLINES = [
    "{s} {v} {o}",
    "{s} {v} {o} {t}",
    "Region braces as {s_l} {v} {o}",
    "{s} {v} {o} amid tensions",
]


@dataclass(frozen=True)
class ItemMix:
    """What the generated items hold, to print beside the figures."""

    with_names: int
    with_terms: int
    with_decoys: int


def _sentence(rng: random.Random) -> str:
    return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}."


def _decoys(names: Sequence[str]) -> list[str]:
    """Common words and name parts that start a name without being one: `Ilham` of `Ilham Aliyev`, `Stepan`."""
    out: list[str] = []
    for name in names:
        first = re.split(r"[\s-]", name)[0]
        if " " in name or "-" in name:
            out.append(first)
        if len(first) > 6:
            out.append(first[: len(first) // 2 + 1])
    return out


def make_items(names: Sequence[str], count: int, seed: int) -> tuple[list[Document], ItemMix]:
    """`count` items of ~1 KB: ~10% mention 1-3 of `names`, ~30% carry a term word, ~20% a decoy prefix."""
    rng = random.Random(seed)
    decoys = _decoys(names) or ["Nation"]
    items: list[Document] = []
    with_names = with_terms = with_decoys = 0
    for number in range(count):
        subject = rng.choice(_SUBJECTS)
        title = rng.choice(_HEADLINES).format(
            s=subject, s_l=subject.lower(), v=rng.choice(_VERBS), o=rng.choice(_OBJECTS), t=rng.choice(_TAILS)
        )
        sentences: list[str] = []
        has_term = False
        while sum(len(s) + 1 for s in sentences) < 880:
            roll = rng.random()
            if roll < 0.03:
                sentences.append(rng.choice(_TERM_PHRASES))
                has_term = True
            else:
                sentences.append(_sentence(rng) if roll < 0.75 else rng.choice(_FILLER))
        if rng.random() < 0.10:
            with_names += 1
            for name in rng.sample(list(names), min(len(names), rng.randint(1, 3))):
                where = rng.randrange(len(sentences) + 1)
                if where == len(sentences):
                    title = f"{name}: {title}"
                else:
                    suffix = "'s" if rng.random() < 0.3 else ""
                    sentences[where] = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {name}{suffix} role " + (
                        sentences[where][0].lower() + sentences[where][1:]
                    )
        if rng.random() < 0.20:
            with_decoys += 1
            for decoy in rng.sample(decoys, min(len(decoys), rng.randint(1, 3))):
                where = rng.randrange(len(sentences))
                sentences[where] = (
                    f"A spokesman named {decoy} said that " + sentences[where][0].lower() + sentences[where][1:]
                )
        with_terms += has_term
        items.append(Document(f"item-{number}", title[:100], " ".join(sentences)))
    return items, ItemMix(with_names, with_terms, with_decoys)


# --- timing ------------------------------------------------------------------------------------------------


def regex_for(groups: dict[str, list[str]]) -> re.Pattern[str]:
    """ONE alternation of every name and term word: escaped, longest first, `\\b...\\b`, case-insensitive."""
    patterns = sorted({n for names in groups.values() for n in names}, key=len, reverse=True)
    alternatives = [re.escape(p[:-1]) + r"\w*" if p.endswith("*") else re.escape(p) for p in patterns]
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


def run_monitor(matcher: Matcher, items: Sequence[Document]) -> int:
    """Number of items on which some rule fired."""
    return sum(1 for item in items if matcher.match(item))


def run_regex(pattern: re.Pattern[str], items: Sequence[Document]) -> int:
    """Number of items with some hit; every hit is produced, as a matcher would have to."""
    fired = 0
    for item in items:
        hits = 0
        for _ in pattern.finditer(item.title + "\n" + item.summary):
            hits += 1
        fired += hits > 0
    return fired


@dataclass(frozen=True)
class Timing:
    wall_rate: float
    cpu_rate: float
    items: int
    fired: int


def best_of(repeat: int, run: Callable[[Sequence[Document]], int], items: Sequence[Document]) -> Timing:
    """Best items/s over `repeat` passes, by wall clock (perf_counter) and by CPU (process_time)."""
    best_wall = best_cpu = float("inf")
    fired = 0
    for _ in range(repeat):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        fired = run(items)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, max(cpu, 1e-9))
    return Timing(len(items) / best_wall, len(items) / best_cpu, len(items), fired)


def regex_sample(pattern: re.Pattern[str], items: Sequence[Document]) -> Sequence[Document]:
    """The first items that the regex gets through in about REGEX_BUDGET_S (calibrated on 20 items)."""
    probe = items[: min(20, len(items))]
    start = time.perf_counter()
    run_regex(pattern, probe)
    per_item = (time.perf_counter() - start) / max(len(probe), 1)
    return items[: max(len(probe), min(len(items), int(REGEX_BUDGET_S / max(per_item, 1e-9))))]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Matching throughput of monitor's Matcher against a regex baseline.")
    parser.add_argument("--items", type=int, default=5000, help="items per timed pass (default 5000)")
    parser.add_argument("--sizes", default="10,1000,10000", help="watch-list sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="passes per figure; the best is kept (default 3)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    all_names = watch_list(max(sizes))

    print(f"monitor match bench: Python {platform.python_version()}, pyahocorasick {version('pyahocorasick')},")
    print(f"  {args.items} items per pass, best of {args.repeat}, single process; items/s by wall / by CPU time.")
    print("  baseline: ONE `re` alternation of all names and term words, IGNORECASE, \\b(?:...)\\b, longest first,")
    print("  finditer over title+summary. It does strictly LESS work than monitor: no case/diacritic/script folding")
    print("  beyond IGNORECASE, no overlapping hits, no rule evaluation. It runs on the first items that fit")
    print(f"  {REGEX_BUDGET_S:.0f} s per pass (column n).")
    print()
    header = (
        f"{'names':>6} {'groups':>6} {'rules':>5} {'item B':>6} {'w/name':>6} {'w/term':>6} {'decoy':>6} | "
        f"{'build ms':>8} {'monitor/s':>10} {'cpu/s':>10} {'fired':>5} | "
        f"{'build ms':>8} {'regex/s':>9} {'cpu/s':>9} {'n':>5} {'fired':>5} | {'mon/re':>7}"
    )
    print(header)
    print("-" * len(header))
    results: dict[int, tuple[Timing, Timing]] = {}
    for size in sizes:
        names = all_names[:size]
        groups, rules = groups_and_rules(names)
        items, mix = make_items(names, args.items, SEED + size)
        mean_bytes = sum(len((i.title + i.summary).encode()) for i in items) / len(items)

        start = time.perf_counter()
        matcher = Matcher(groups, rules, entity_ids=[g for g in groups if g not in TERMS])
        build_monitor = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        pattern = regex_for(groups)
        build_regex = (time.perf_counter() - start) * 1000

        mon = best_of(args.repeat, partial(run_monitor, matcher), items)
        sample = regex_sample(pattern, items)
        reg = best_of(args.repeat, partial(run_regex, pattern), sample)
        # Items with a hit, scaled to the whole pass, so the two "fired" columns compare.
        reg_fired = round(reg.fired * len(items) / len(sample))
        results[size] = (mon, reg)
        pct = 100 / len(items)
        print(
            f"{size:>6} {len(groups) - len(TERMS):>6} {len(rules):>5} {mean_bytes:>6.0f} "
            f"{mix.with_names * pct:>5.1f}% {mix.with_terms * pct:>5.1f}% {mix.with_decoys * pct:>5.1f}% | "
            f"{build_monitor:>8.1f} {mon.wall_rate:>10,.0f} {mon.cpu_rate:>10,.0f} {mon.fired:>5} | "
            f"{build_regex:>8.1f} {reg.wall_rate:>9,.0f} {reg.cpu_rate:>9,.0f} {reg.items:>5} {reg_fired:>5} | "
            f"{mon.wall_rate / reg.wall_rate:>6.1f}x",
            flush=True,
        )
    print()
    print("fired: items on which some rule fired (monitor) / items with any hit (regex, scaled to the pass).")
    if 10000 in results:
        mon, reg = results[10000]
        ratio = mon.wall_rate / reg.wall_rate
        verdict = "holds" if mon.wall_rate >= 20000 else "MISSED"
        print(f"target at 10,000 names: >= 20,000 items/s on one core: {mon.wall_rate:,.0f} items/s -> {verdict}")
        verdict = "holds" if ratio >= 10 else "MISSED"
        print(f"target at 10,000 names: >= 10x the regex baseline: {ratio:.1f}x -> {verdict}")
    else:
        print("targets are stated at 10,000 names: add 10000 to --sizes to check them")
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"process max RSS: {maxrss_mb:,.0f} MB")


if __name__ == "__main__":
    main()
