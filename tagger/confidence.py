"""The model's own probability of each value in a JSON answer, read off the log-probabilities of its tokens.

A backend gives the generated tokens in order with their logprobs under the constraint (`Completion.tokens`: the
log-softmax of the masked logits, so a token the constraint forces has probability 1). Token texts join to the
answer text, so each token covers a range of characters [start, end) of it. A token whose text is empty (a byte of a
character that the next token completes) is taken to cover the first character of the next token.

The answer is a JSON object: `{"category": "<path>"}` (stage 1) or `{handle: value | [values] | null, ...}` (stage
2). Each value is given a *decision span* of characters, and its probability is the product of the probabilities
of every token that overlaps that span:

- a value that is not a list (a string, a number, `null`): from the first character of its key's name to the last
  character of the value (its closing quote). This holds the choice between null and a value (the token that
  opens the value: `":"` against `":null`), every token that spells the value, and the token that closes it;
- an empty list: from the key's name to the closing `]`: the probability that the attribute has no value;
- the first item of a list: from the key's name to the item's last character: the choice of a list that is not
  empty (`[` then `"` against `]`), and the item's own tokens;
- a later item: from the character after the previous item to the item's last character: the decision to go on
  with the list (the `,` against `]`) and the item's own tokens. So it is the item's probability given the items
  before it.

Why the key's name is in the span: the keys are required in tagger's schemas, so their tokens are forced (logprob
0) and cost nothing; were a key optional, the token that starts it is the decision that the attribute is present.
The span starts after the key's opening quote so that a token closing the previous value (`","`) is not charged to
this one when the two are separate tokens.

What this is not: (1) a token is counted whole, so a token that spans the end of one value and the start of the
next (`"],"`) counts in both; (2) it is the probability of the token sequence the model took, not of the string:
llguidance allows other tokenizations of the same text (`":"` or `":` then `"`), whose mass is not added; so
scoring every alternative of an enum this way gives probabilities that sum to at most 1; (3) it is the model's
probability at temperature 1 under the mask, not calibrated: calibration comes after, on the dev sets.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tagger.backends.base import TokenLogprob

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


@dataclass(frozen=True)
class ValueProbability:
    key: str  # the top-level key: an attribute handle, or "category"
    index: int | None  # the item's position in a list; None for a value that is not a list item
    value: Any  # the decoded JSON value: a string, a number, None for null, [] for an empty list
    start: int  # the decision span in the answer text, [start, end)
    end: int
    probability: float


def token_offsets(text: str, tokens: Sequence[TokenLogprob]) -> list[tuple[int, int]]:
    """The [start, end) characters of `text` each token covers (an empty token: the next character)."""
    if "".join(t.text for t in tokens) != text:
        raise ValueError("the token texts do not join to the answer text")
    offsets, at = [], 0
    for token in tokens:
        end = at + len(token.text)
        offsets.append((at, end if end > at else min(at + 1, len(text))))
        at = end
    return offsets


def span_probability(offsets: Sequence[tuple[int, int]], tokens: Sequence[TokenLogprob], start: int, end: int) -> float:
    """The product of the probabilities of the tokens that overlap the characters [start, end)."""
    ends = [e for _, e in offsets]  # non-decreasing, as tokens follow each other
    first = bisect.bisect_right(ends, start)
    logprob = 0.0
    for i in range(first, len(tokens)):
        token_start, token_end = offsets[i]
        if token_start >= end:
            break
        if token_end > start:
            logprob += tokens[i].logprob
    return math.exp(logprob)


def value_probabilities(text: str, tokens: Sequence[TokenLogprob]) -> list[ValueProbability]:
    """Every value of the answer object with its probability (module docstring), in the order of the text.
    No tokens (a backend that gives none): no values. Raises ValueError for text that is not a JSON object or
    tokens that do not spell it."""
    if not tokens:
        return []
    offsets = token_offsets(text, tokens)
    found: list[tuple[str, int | None, Any, int, int]] = []
    for key, key_start, value, value_end, items in _entries(text):
        if not items:  # a scalar, null, an object, or an empty list
            found.append((key, None, value, key_start, value_end))
            continue
        start = key_start
        for index, (item, item_end) in enumerate(items):
            found.append((key, index, item, start, item_end))
            start = item_end
    return [
        ValueProbability(key, index, value, start, end, span_probability(offsets, tokens, start, end))
        for key, index, value, start, end in found
    ]


def category_probability(text: str, tokens: Sequence[TokenLogprob]) -> float | None:
    """The probability of the path in a `{"category": ...}` answer; None without tokens or without that key."""
    return next((v.probability for v in value_probabilities(text, tokens) if v.key == "category"), None)


def attribute_probabilities(text: str, tokens: Sequence[TokenLogprob]) -> dict[str, dict[str | None, float]]:
    """`{handle: {value: probability}}` of an attribute answer. A value said twice keeps its first probability (as
    validation keeps its first occurrence); the key None holds the probability of "no value" (null or [])."""
    found: dict[str, dict[str | None, float]] = {}
    for v in value_probabilities(text, tokens):
        values = found.setdefault(v.key, {})
        name = (
            None if v.value is None or v.value == [] else v.value if isinstance(v.value, str) else json.dumps(v.value)
        )
        values.setdefault(name, v.probability)
    return found


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _WHITESPACE:
        at += 1
    return at


def _expect(text: str, at: int, char: str) -> int:
    at = _skip(text, at)
    if not text.startswith(char, at):
        raise ValueError(f"expected {char!r} at character {at} of the answer")
    return at + 1


def _decode(text: str, at: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, at)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a JSON answer: {exc}") from None


def _entries(text: str) -> list[tuple[str, int, Any, int, list[tuple[Any, int]]]]:
    """(key, where its name starts, value, where the value ends, [(item, where it ends)] for a list) per entry."""
    entries = []
    at = _expect(text, 0, "{")
    if text.startswith("}", _skip(text, at)):
        return []
    while True:
        at = _skip(text, at)
        name_start = at + 1  # after the key's opening quote
        key, after_key = _decode(text, at)
        if not isinstance(key, str):
            raise ValueError(f"expected a key at character {at} of the answer")
        at = _skip(text, _expect(text, after_key, ":"))
        items: list[tuple[Any, int]] = []
        if text.startswith("[", at):
            value, end = _list(text, at + 1, items)
        else:
            value, end = _decode(text, at)
        entries.append((key, name_start, value, end, items))
        at = _skip(text, end)
        if text.startswith("}", at):
            if _skip(text, at + 1) != len(text):
                raise ValueError(f"text after the answer object at character {at + 1}")
            return entries
        at = _expect(text, at, ",")


def _list(text: str, at: int, items: list[tuple[Any, int]]) -> tuple[list[Any], int]:
    values: list[Any] = []
    at = _skip(text, at)
    if text.startswith("]", at):
        return values, at + 1
    while True:
        item, at = _decode(text, _skip(text, at))
        values.append(item)
        items.append((item, at))
        at = _skip(text, at)
        if text.startswith("]", at):
            return values, at + 1
        at = _expect(text, at, ",")
