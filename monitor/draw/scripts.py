"""Names in other scripts that need no dictionary: a Latin name written in Cyrillic, and the forms a name
takes in languages that decline it, by a trailing wildcard.

Transliteration is only reliable one way and for some names: English spellings of names from the former
Soviet Union, the Caucasus and Central Asia (Karabakh, Pashinyan, Khankendi) come from Russian ones and go
back letter by letter (Карабах, Пашинян, Ханкенди). A name that is wrong this way simply never matches.
"""

from __future__ import annotations

import unicodedata

_DIGRAPHS = (("shch", "щ"), ("kh", "х"), ("zh", "ж"), ("ch", "ч"), ("sh", "ш"), ("ts", "ц"), ("ya", "я"),
             ("yu", "ю"), ("yo", "ё"), ("ye", "е"), ("ck", "к"))  # fmt: skip
_LETTERS = {
    "a": "а", "b": "б", "c": "к", "d": "д", "e": "е", "f": "ф", "g": "г", "h": "х", "i": "и", "j": "дж", "k": "к",
    "l": "л", "m": "м", "n": "н", "o": "о", "p": "п", "q": "к", "r": "р", "s": "с", "t": "т", "u": "у", "v": "в",
    "w": "в", "x": "кс", "z": "з",
}  # fmt: skip
_VOWELS = set("aeiouy")
_DECLINING = ("CYRILLIC", "ARMENIAN", "GEORGIAN")
"""Scripts of languages that decline names: Степанакерт, Степанакерта, Степанакерте."""


def cyrillic(name: str) -> str | None:
    """The name in Cyrillic letters, if it is plain Latin (no accents, no apostrophes), else None."""
    if not name.isascii() or not all(c.isalpha() or c in " -" for c in name):
        return None
    return " ".join("-".join(_word(part) for part in word.split("-")) for word in name.split())


def _word(word: str) -> str:
    lower = word.lower()
    out: list[str] = []
    i = 0
    while i < len(lower):
        for latin, letter in _DIGRAPHS:
            if lower.startswith(latin, i):
                out.append(letter)
                i += len(latin)
                break
        else:
            char = lower[i]
            after = lower[i + 1 : i + 2]
            if char in "iy" and i > 0 and lower[i - 1] in _VOWELS and (not after or after not in _VOWELS):
                out.append("й")  # Azerbaijan: Азербайджан
            elif char == "y":
                out.append("ы" if i > 0 and lower[i - 1] not in _VOWELS else "й")
            else:
                out.append(_LETTERS.get(char, char))
            i += 1
    text = "".join(out)
    return text[:1].upper() + text[1:]


def declined(name: str) -> str | None:
    """A wildcard for the forms of a one-word name in a declining script (Степанакерт*, Армени*), else None."""
    if " " in name or len(name) < 5 or name.endswith("*") or _script(name) not in _DECLINING:
        return None
    if _script(name) == "CYRILLIC" and name[-1].lower() in "аяоеиыйьъ":
        return name[:-1] + "*"
    return name + "*"


def _script(text: str) -> str:
    for char in text:
        if char.isalpha():
            return unicodedata.name(char, "").split(" ")[0]
    return ""
