"""What every catalog's extractive attributes have in common: the words of a gender, an age or a colour, and amounts
in an attribute's units (aliases.yaml's `colors` and `amounts`).

An extractive attribute has no list of values to match, and without a labeled pool no dictionary either, so these
are the evidence that remains: "Women's" for a gender, "Black/White" for a colour, "12 oz" for a net content. Each is
a span of the text, written as the text writes it. Titles write a variant's colour in a part of its own, by its full
name ("Ballet Flat, Nautical Navy, 4 M US"), and an amount beside its equivalent ("5 Ounce (148ml)"): the value is
that part, that pair.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from tagger.evidence.names import common_aliases, labels
from tagger.evidence.quantity import Amount, amounts
from tagger.evidence.text import SEPARATOR, Word, is_number, key
from tagger.taxonomy import Attribute

LONGEST = 4  # words in the longest common name ("for him and her")
MAX_PART = 4  # words in the longest colour part ("Black and Cobalt Blue")
# What joins names side by side into one value ("Black/White", "Baby & Toddler", "Infants, Babies, and Kids"):
# a mark between them, or the word "and" ("&" is that word too, tagger.evidence.text) after at most a comma.
_MARK = re.compile(r"\s*[/+,-]\s*")
_BEFORE_AND = re.compile(r"\s*,?\s*")
# What sets an amount's equivalent in another unit beside it: a slash, or brackets ("5 Ounce (148ml)").
_SLASH = re.compile(r"\s*/\s*")
_OPEN = re.compile(r"\s*\(\s*")
_CLOSE = re.compile(r"\s*\)")


@dataclass(frozen=True)
class Vocabulary:
    names: frozenset[tuple[str, ...]]  # normalized
    units: frozenset[str]  # tagger.evidence.quantity's units
    colors: bool = False  # the names are colours: a colour written as a title's part of its own is that whole part
    other_senses: frozenset[str] = frozenset()  # normalized colour words that also name something else


def vocabulary(attribute: Attribute) -> Vocabulary | None:
    """The common names and units of an extractive attribute, or None when its name is none of aliases.yaml's."""
    return _vocabulary(frozenset(labels(attribute)))


@lru_cache(maxsize=1024)
def _vocabulary(called: frozenset[str]) -> Vocabulary | None:
    data = common_aliases()

    def named(kind: str) -> bool:
        return bool(called & {a.casefold() for a in data[kind]})

    texts: list[str] = []
    colors = named("color_attributes")
    if named("gender_attributes") or named("age_attributes"):
        groups = [g for g in data["groups"] if called & {a.casefold() for a in g["attributes"]}]
        texts += [t for group in groups for t in (*group["values"], *group.get("words", []))]
    if colors:
        texts += data["colors"]
        texts += [t for shade in data["shades"] for t in (shade["shade"], shade["base"], *shade.get("words", []))]
    amounts_ = [entry for entry in data["amounts"] if called & {a.casefold() for a in entry["attributes"]}]
    units = {unit for entry in amounts_ for unit in entry["units"]}
    names = frozenset(k for k in map(key, texts) if k)
    if not names and not units:
        return None
    other_senses = frozenset(w for t in data["colors_other_senses"] for w in key(t)) if colors else frozenset()
    return Vocabulary(names, frozenset(units), colors, other_senses)


class Spot(NamedTuple):
    first: int  # word
    last: int  # word
    end: int  # character: past the last word, or past the bracket that closes an equivalent ("5 Ounce (148ml)")


def common_spans(vocabulary: Vocabulary, found: Sequence[Word], text: str) -> list[Spot]:
    """Every common name (names side by side joined into one) and every amount in the vocabulary's units written as
    an amount alone: not inside a part number ("00W1306", "CR272 w/", "9-1-24-24L") and not across a mark ("36\"L"
    is 36 inches long, not 36 litres). An amount and its equivalent in another unit are one ("3.5oz/100g")."""
    spans = _names(vocabulary.names, found, text) if vocabulary.names else []
    if vocabulary.colors:
        spans = _color_parts(vocabulary, found, text, spans)
    spots = [Spot(first, last, found[last].end) for first, last in spans]
    alone = [
        a
        for a in (amounts(found, text) if vocabulary.units else [])
        if a.unit in vocabulary.units and a.last > a.first and _alone(text, found, a)
    ]
    i = 0
    while i < len(alone):
        amount = alone[i]
        spot = Spot(amount.first, amount.last, found[amount.last].end)
        if i + 1 < len(alone) and (joined := _equivalent(found, text, amount, alone[i + 1])) is not None:
            spot, i = joined, i + 1
        spots.append(spot)
        i += 1
    return spots


def _equivalent(found: Sequence[Word], text: str, amount: Amount, other: Amount) -> Spot | None:
    """The amount and the next one as one value where the next restates it in another unit right after it:
    "5 Ounce (148ml)", "3.5oz/100g", "50ml / 1.69oz"."""
    if other.unit == amount.unit or other.first != amount.last + 1:
        return None
    gap = text[found[amount.last].end : found[other.first].start]
    end = found[other.last].end
    if _SLASH.fullmatch(gap):
        return Spot(amount.first, other.last, end)
    close = _CLOSE.match(text, end)
    if _OPEN.fullmatch(gap) and close is not None:
        return Spot(amount.first, other.last, close.end())
    return None


def _color_parts(
    vocabulary: Vocabulary, found: Sequence[Word], text: str, spans: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """A colour written in a title's part of its own ("Flat, Nautical Navy, 4 M US") is that part, as variant
    titles write a colour's full name. A colour that is also something else ("Cream", "Clear", "Gold") counts only
    where the part is that colour alone ("Day Cream SPF 30", "Free & Clear" and "Australian Gold" are no colours).
    Where a part names a colour, the colour words of running text are names ("Pink Princess Face Mask, (White
    Lace)", "Sonic Blue Technology, White") and are not offered."""
    parts: list[tuple[int, int]] = []
    loose: list[tuple[int, int]] = []
    for first, last in spans:
        other_sense = all(w.norm in vocabulary.other_senses for w in found[first : last + 1])
        part = _part(found, text, first, last)
        if part is not None and _repeats(found, [s for s in spans if part[0] <= s[0] and s[1] <= part[1]]):
            part = None  # "Black Black Capacity", "Navy Blue Polyethylene Blue": words scraped together, no name
        if part is not None and (part == (first, last) or not other_sense):
            if part not in parts:  # two colours of one part ("Black and Cobalt Blue") are that part once
                parts.append(part)
        elif not other_sense:
            loose.append((first, last))
    return parts or loose


def _repeats(found: Sequence[Word], spans: list[tuple[int, int]]) -> bool:
    norms = [w.norm for first, last in spans for w in found[first : last + 1]]
    return len(norms) != len(set(norms))


def _part(found: Sequence[Word], text: str, first: int, last: int) -> tuple[int, int] | None:
    """(first word, last word) of the title's part around words first..last: between separators, not the title's
    leading part (a brand and product name), at most MAX_PART words and no number; None where there is none."""
    start = max((m.end() for m in SEPARATOR.finditer(text, 0, found[first].start)), default=0)
    after = SEPARATOR.search(text, found[last].end)
    end = after.start() if after else len(text)
    inside = [i for i, w in enumerate(found) if w.start >= start and w.end <= end]
    if not start or not inside or len(inside) > MAX_PART or any(is_number(found[i].norm) for i in inside):
        return None
    return inside[0], inside[-1]


def _alone(text: str, found: Sequence[Word], amount: Amount) -> bool:
    number, unit, last = found[amount.first], found[amount.first + 1], found[amount.last]
    before = text[number.start - 1] if number.start else " "
    after = text[last.end] if last.end < len(text) else " "
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
