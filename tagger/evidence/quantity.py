"""Quantities: a value named as an amount or a range ("128 GB", "32-64 GB", "Up to 1 L", "0-6 months") and the
amounts a text states ("128GB", "1.7 L"), so that an amount supports every value whose range holds it."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tagger.evidence.text import Word, is_number

# Unit spellings (normalized words, see tagger.evidence.text) -> one unit. Only amounts with a unit are read: a bare
# number in a text is too often a model number or a count.
UNITS: dict[str, str] = {
    **dict.fromkeys(["kb", "kilobyte"], "kb"),
    **dict.fromkeys(["mb", "megabyte"], "mb"),
    **dict.fromkeys(["gb", "gigabyte", "gig"], "gb"),
    **dict.fromkeys(["tb", "terabyte"], "tb"),
    **dict.fromkeys(["ml", "milliliter", "millilitre"], "ml"),
    **dict.fromkeys(["l", "liter", "litre", "ltr", "lt"], "l"),
    **dict.fromkeys(["mm", "millimeter", "millimetre"], "mm"),
    **dict.fromkeys(["cm", "centimeter", "centimetre"], "cm"),
    **dict.fromkeys(["inch", "in"], "in"),
    **dict.fromkeys(["ft", "foot", "feet"], "ft"),
    **dict.fromkeys(["g", "gram", "gm", "gr"], "g"),
    **dict.fromkeys(["kg", "kilogram", "kilo"], "kg"),
    **dict.fromkeys(["lb", "pound", "lbs"], "lb"),
    **dict.fromkeys(["oz", "ounce"], "oz"),
    **dict.fromkeys(["mah"], "mah"),
    **dict.fromkeys(["w", "watt"], "w"),
    **dict.fromkeys(["v", "volt"], "v"),
    **dict.fromkeys(["hz"], "hz"),
    **dict.fromkeys(["ghz"], "ghz"),
    **dict.fromkeys(["mhz"], "mhz"),
    **dict.fromkeys(["month", "mo"], "month"),
    **dict.fromkeys(["year", "yr"], "year"),
    **dict.fromkeys(["piece", "pc", "pcs"], "piece"),
}
_NUMBER = r"(\d+(?:[.,]\d+)?)"
_FLUID = r"fl\.?\s*oz"  # "fl oz", "fl. oz", "floz": fluid ounces are ounces, as in a text's amounts
_RANGE = re.compile(
    rf"^\s*(?:(?P<upto>up to|under|less than|max\.?|maximum|<=?)\s*|(?P<over>over|more than|at least|min\.?|>=?)\s*)?"
    rf"{_NUMBER}\s*(?:(?:-|\u2013|to)\s*{_NUMBER}\s*)?(?P<plus>\+)?\s*(?P<unit>(?P<fluid>{_FLUID})|[^\W\d_]+)\.?\s*(?P<plus2>\+)?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    unit: str

    def holds(self, amount: float, unit: str) -> bool:
        return unit == self.unit and self.low - 1e-9 <= amount <= self.high + 1e-9


def _float(text: str) -> float:
    return float(text.replace(",", "."))


def parse_range(name: str) -> Range | None:
    """The amounts a value's name covers, or None when it names no amount with a known unit."""
    from tagger.evidence.text import normalize_word

    match = _RANGE.match(name)
    if match is None:
        return None
    unit = "oz" if match.group("fluid") else UNITS.get(normalize_word(match.group("unit")))
    if unit is None:
        return None
    first = _float(match.group(3))
    second = _float(match.group(4)) if match.group(4) else None
    if match.group("upto"):
        return Range(0.0, first, unit)
    if match.group("over") or match.group("plus") or match.group("plus2"):
        return Range(first, math.inf, unit)
    return Range(first, second if second is not None else first, unit)


@dataclass(frozen=True)
class Amount:
    value: float
    unit: str
    first: int  # index of the number's word
    last: int  # index of the unit's word


def amounts(words: Sequence[Word], text: str) -> list[Amount]:
    """Every amount with a unit in the text: "128GB", "1.7 L", and both ends of "3-5 years"."""
    found = []
    for i, word in enumerate(words):
        if not is_number(word.norm):
            continue
        nxt = words[i + 1] if i + 1 < len(words) else None
        if nxt is not None and nxt.norm in UNITS and nxt.start - word.end <= 1:
            found.append(Amount(float(word.norm), UNITS[nxt.norm], i, i + 1))
            continue
        after = words[i + 2] if i + 2 < len(words) else None
        if nxt is not None and after is not None and _fluid_ounce(word, nxt, after, text):
            found.append(Amount(float(word.norm), "oz", i, i + 2))  # "8 fl oz", "1.0Fl.oz", "32 fl. oz"
            continue
        if nxt is not None and after is not None and is_number(nxt.norm) and after.norm in UNITS:
            gap = text[word.end : nxt.start].strip().lower()
            if gap in ("-", "\u2013", "to"):  # "3-5 years": the first number has the second's unit
                found.append(Amount(float(word.norm), UNITS[after.norm], i, i))
    return found


def _fluid_ounce(number: Word, fl: Word, oz: Word, text: str) -> bool:
    return (
        fl.norm == "fl"
        and UNITS.get(oz.norm) == "oz"
        and fl.start - number.end <= 1
        and text[fl.end : oz.start].strip() in ("", ".")
    )
