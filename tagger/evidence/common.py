"""What every catalog's extractive attributes have in common: the words of a gender, an age or a colour, and amounts
in an attribute's units (aliases.yaml's `colors` and `amounts`).

An extractive attribute has no list of values to match, and without a labeled pool no dictionary either, so these
are the evidence that remains: "Women's" for a gender, "Black/White" for a colour, "12 oz" for a net content. Each is
a span of the text, written as the text writes it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from tagger.evidence.names import common_aliases, labels
from tagger.evidence.quantity import amounts
from tagger.evidence.text import Word, key
from tagger.taxonomy import Attribute

LONGEST = 4  # words in the longest common name ("for him and her")
# What joins names side by side into one value ("Black/White", "Baby & Toddler", "Infants, Babies, and Kids"):
# a mark between them, or the word "and" ("&" is that word too, tagger.evidence.text) after at most a comma.
_MARK = re.compile(r"\s*[/+,-]\s*")
_BEFORE_AND = re.compile(r"\s*,?\s*")


@dataclass(frozen=True)
class Vocabulary:
    names: frozenset[tuple[str, ...]]  # normalized
    units: frozenset[str]  # tagger.evidence.quantity's units


def vocabulary(attribute: Attribute) -> Vocabulary | None:
    """The common names and units of an extractive attribute, or None when its name is none of aliases.yaml's."""
    return _vocabulary(frozenset(labels(attribute)))


@lru_cache(maxsize=1024)
def _vocabulary(called: frozenset[str]) -> Vocabulary | None:
    data = common_aliases()

    def named(kind: str) -> bool:
        return bool(called & {a.casefold() for a in data[kind]})

    texts: list[str] = []
    if named("gender_attributes") or named("age_attributes"):
        groups = [g for g in data["groups"] if called & {a.casefold() for a in g["attributes"]}]
        texts += [t for group in groups for t in (*group["values"], *group.get("words", []))]
    if named("color_attributes"):
        texts += data["colors"]
        texts += [t for shade in data["shades"] for t in (shade["shade"], shade["base"], *shade.get("words", []))]
    amounts_ = [entry for entry in data["amounts"] if called & {a.casefold() for a in entry["attributes"]}]
    units = {unit for entry in amounts_ for unit in entry["units"]}
    names = frozenset(k for k in map(key, texts) if k)
    return Vocabulary(names, frozenset(units)) if names or units else None


def common_spans(vocabulary: Vocabulary, found: Sequence[Word], text: str) -> list[tuple[int, int]]:
    """(first word, last word) of every common name (names side by side joined into one) and every amount in the
    vocabulary's units written as an amount alone: not inside a part number ("00W1306", "CR272 w/", "9-1-24-24L")
    and not across a mark ("36\"L" is 36 inches long, not 36 litres)."""
    spans = _names(vocabulary.names, found, text) if vocabulary.names else []
    for amount in amounts(found, text) if vocabulary.units else []:
        number, unit = found[amount.first], found[amount.last]
        if amount.unit in vocabulary.units and amount.last > amount.first and _alone(text, number, unit):
            spans.append((amount.first, amount.last))
    return spans


def _alone(text: str, number: Word, unit: Word) -> bool:
    before = text[number.start - 1] if number.start else " "
    after = text[unit.end] if unit.end < len(text) else " "
    glued = text[number.end : unit.start] in ("", " ", "-")
    return (before.isspace() or before in "([,/") and not after.isalnum() and glued


def _name_at(names: frozenset[tuple[str, ...]], norms: Sequence[str], i: int) -> int:
    """The last word of the longest name starting at word i, or -1."""
    for n in range(min(LONGEST, len(norms) - i), 0, -1):
        if tuple(norms[i : i + n]) in names:
            return i + n - 1
    return -1


def _names(names: frozenset[tuple[str, ...]], found: Sequence[Word], text: str) -> list[tuple[int, int]]:
    norms = [w.norm for w in found]
    spans = []
    i = 0
    while i < len(found):
        last = _name_at(names, norms, i)
        if last < 0:
            i += 1
            continue
        while (following := _joined(found, text, last)) >= 0 and (end := _name_at(names, norms, following)) >= 0:
            last = end
        spans.append((i, last))
        i = last + 1
    return spans


def _joined(found: Sequence[Word], text: str, last: int) -> int:
    """The first word of what a join after word `last` leads to, or -1 where nothing joins it."""

    def gap(i: int) -> str:
        return text[found[i - 1].end : found[i].start]

    following = last + 1
    if following >= len(found):
        return -1
    if found[following].norm == "and" and _BEFORE_AND.fullmatch(gap(following)):
        following += 1
        return following if following < len(found) and not gap(following).strip() else -1
    return following if _MARK.fullmatch(gap(following)) else -1
