"""Words of a text with their offsets, normalized so that spellings of one name compare equal.

Matching runs on these words, never on the raw characters, so a span always starts and ends on a word of the cleaned
field and `field_text[start:end]` is exactly what the product says. Normalization: case-folded, a possessive dropped
("Men's" = "Men"), a plural made singular ("Sleeves" = "Sleeve"), digits and letters split ("128GB" = "128 GB"),
punctuation dropped ("Wi-Fi" = "Wi Fi", "White/Gray" = "White Gray"), "&" read as "and", numbers written one way
("1,000" = "1000", "1.50" = "1.5").
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

# A number (with its separators), a run of letters (with inner apostrophes: "men's", "o'neill"), or "&".
_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['\u2019][^\W\d_]+)*['\u2019]?|&")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+")
# What parts a title: a comma, a bracket, a colon, or a dash, bar or slash between spaces ("Shoe, Black - Size 9").
SEPARATOR = re.compile(r"\s[-|/\u2013\u2014~]\s|[,;:()\[\]|]")


class Word(NamedTuple):  # a tuple: texts have many words, and a frozen dataclass is slow to make
    norm: str
    start: int
    end: int


def _number(text: str) -> str:
    if _THOUSANDS.fullmatch(text):
        return text.replace(",", "")
    text = text.replace(",", ".")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


@lru_cache(maxsize=65536)
def normalize_word(text: str) -> str:
    """One word's comparable form."""
    if text[0].isdigit():
        return _number(text)
    if text == "&":
        return "and"
    word = text.casefold().replace("\u2019", "'")
    if word.endswith("'s"):
        word = word[:-2]
    word = word.replace("'", "")
    return singular(word)


def singular(word: str) -> str:
    """A plural's singular, by suffix alone; both sides of a comparison go through it, so a wrong stem still
    compares equal to itself ("canvas" -> "canva" on either side)."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str, limit: int | None = None) -> list[Word]:
    """The words of `text` in order (the first `limit` of them)."""
    found = []
    for match in _WORD.finditer(text):
        found.append(Word(normalize_word(match.group()), *match.span()))
        if limit is not None and len(found) >= limit:
            break
    return found


def key(text: str) -> tuple[str, ...]:
    """A name's comparable form: its normalized words."""
    return tuple(w.norm for w in words(text))


def is_number(norm: str) -> bool:
    return norm[:1].isdigit()
