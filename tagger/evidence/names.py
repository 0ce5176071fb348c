"""Every name a closed value answers to: its own name, the parts of "Small (S)", the taxonomy's aliases
(`Attribute.aliases`) and the shipped common aliases (aliases.yaml: gender, age, colour shades, sizes)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from tagger.evidence.quantity import Range, parse_range
from tagger.evidence.text import is_number, key
from tagger.taxonomy import Attribute

_PARENTHESES = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")
# Catch-all values: their name in a text ("other features") never says the product has them.
CATCH_ALL = frozenset(key(w) for w in ("other", "others", "none", "unknown", "not applicable", "n/a"))
_HYPHEN = re.compile(r"(?<=[^\W\d_])-(?=[^\W\d_])")


@dataclass(frozen=True)
class Name:
    words: tuple[str, ...]  # normalized
    value: str  # the taxonomy value it names
    alias: bool  # not the value's own name
    weak: bool  # counts only next to the attribute's name ("Size: M")


@dataclass(frozen=True)
class AttributeNames:
    handle: str
    names: tuple[Name, ...]
    ranges: tuple[tuple[Range, str], ...]  # (amounts a value covers, the value)
    cues: frozenset[tuple[str, ...]]  # the attribute's own name, whose nearness makes weak names count


@lru_cache(maxsize=1)
def common_aliases() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(resources.files("tagger.evidence").joinpath("aliases.yaml").read_text())
    return data


def labels(attribute: Attribute) -> set[str]:
    """What a text may call the attribute: its handle and name, case aside ("target_gender", "target gender")."""
    return {attribute.handle.casefold(), attribute.name.casefold(), attribute.handle.replace("_", " ").casefold()}


def _own_names(value: str) -> list[str]:
    """A value's names: "Small (S)" is also "Small" and "S", "Level 2 (6-12 months)" also "6-12 months", "Wi-Fi"
    also "WiFi"."""
    match = _PARENTHESES.match(value)
    names = [value, match.group(1), match.group(2)] if match and match.group(1) else [value]
    return names + [_HYPHEN.sub("", n) for n in names if _HYPHEN.search(n)]


def _common(attribute: Attribute, by_fold: dict[str, str]) -> tuple[list[tuple[str, str]], set[tuple[str, ...]]]:
    """(name, value) pairs from the shipped alias set that apply to this attribute, and its weak words."""
    data = common_aliases()
    called = labels(attribute)
    pairs: list[tuple[str, str]] = []
    weak: set[tuple[str, ...]] = set()
    for group in data["groups"]:
        if not called & {a.casefold() for a in group["attributes"]}:
            continue
        value = next((by_fold[v.casefold()] for v in group["values"] if v.casefold() in by_fold), None)
        if value is None:
            continue
        pairs += [(w, value) for w in group.get("words", [])]
        pairs += [(w, value) for w in group.get("weak", [])]
        weak |= {key(w) for w in group.get("weak", [])}
    if called & {a.casefold() for a in data["color_attributes"]}:
        for shade in data["shades"]:
            if shade["shade"].casefold() in by_fold:
                pairs += [(w, by_fold[shade["shade"].casefold()]) for w in shade.get("words", [])]
            elif shade["base"].casefold() in by_fold:
                base = by_fold[shade["base"].casefold()]
                pairs += [(w, base) for w in [shade["shade"], *shade.get("words", [])]]
    return pairs, weak


def _is_weak(words: tuple[str, ...], weak_words: set[tuple[str, ...]]) -> bool:
    # One letter ("S", "M") or a bare number (a size "10") says nothing on its own.
    single = len(words) == 1 and (len(words[0]) <= 1 or is_number(words[0]))
    return single or words in weak_words


def attribute_names(attribute: Attribute) -> AttributeNames:
    """The name table of a closed attribute."""
    by_fold = {v.casefold(): v for v in attribute.values}
    pairs = [(name, value, False) for value in attribute.values for name in _own_names(value)]
    taxonomy_aliases: dict[str, tuple[str, ...]] = getattr(attribute, "aliases", None) or {}
    pairs += [
        (name, value, True) for value, names in taxonomy_aliases.items() if value in by_fold.values() for name in names
    ]
    common, weak_words = _common(attribute, by_fold)
    pairs += [(name, value, True) for name, value in common]
    names: dict[tuple[tuple[str, ...], str], Name] = {}
    for text, value, alias in pairs:
        words = key(text)
        if words and words not in CATCH_ALL and (words, value) not in names:
            names[words, value] = Name(words, value, alias, _is_weak(words, weak_words))
    ranges = tuple((r, v) for v in attribute.values for n in _own_names(v) if (r := parse_range(n)) is not None)
    cues = frozenset(k for k in (key(attribute.name), key(attribute.handle.replace("_", " "))) if k)
    return AttributeNames(attribute.handle, tuple(names.values()), ranges, cues)
