"""The last gate: every value the model returned is checked against the taxonomy before it is written.

Backends promise conformance (a grammar, a server's structured-output mode), but a server can ignore a schema and a
grammar can be bypassed, so nothing is trusted. A category that is not in the taxonomy fails the row; an attribute
value that is not allowed is dropped with a warning, so the rest of the row's work is kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tagger.errors import TaggerError
from tagger.taxonomy import Attribute, Category


class AnswerError(TaggerError, ValueError):
    """The model's answer is unusable: not JSON, or naming something outside the taxonomy. `kind` goes into the
    error record."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _json_object(text: str, truncated: bool) -> dict[str, Any]:
    try:
        answer = json.loads(text)
    except json.JSONDecodeError as exc:
        why = "the output was cut at the token limit" if truncated else f"{exc.msg} at column {exc.colno}"
        raise AnswerError("invalid_output", f"model output is not JSON ({why}): {text[:200]!r}") from exc
    if not isinstance(answer, dict):
        raise AnswerError("invalid_output", f"model output is not a JSON object: {text[:200]!r}")
    return answer


def read_category(text: str, allowed: Mapping[str, Category], truncated: bool = False) -> Category:
    """The category named by a stage-1 answer; its path must be a key of `allowed` (exactly, or but for case)."""
    answer = _json_object(text, truncated)
    path = answer.get("category")
    if not isinstance(path, str):
        raise AnswerError("invalid_output", f"model output has no category: {text[:200]!r}")
    # The case-folded lookup is built only on a miss: a constrained backend always hits exactly.
    found = allowed.get(path) or {p.casefold(): c for p, c in allowed.items()}.get(path.casefold())
    if found is None:
        raise AnswerError("not_in_taxonomy", f"category {path[:200]!r} is not an allowed category")
    return found


@dataclass
class Attributes:
    values: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _pattern(value: str) -> re.Pattern[str] | None:
    needle = _squash(value)
    if not needle:
        return None
    return re.compile(r"\s+".join(re.escape(word) for word in needle.split(" ")), flags=re.IGNORECASE)


def find_span(value: str, text: str) -> str | None:
    """`value` as it is written in `text` (case and runs of spaces aside), or None when the text does not hold it."""
    pattern = _pattern(value)
    match = pattern.search(text) if pattern else None
    return match.group(0) if match else None


def find_spans(value: str, text: str, limit: int) -> list[tuple[int, int]]:
    """Where `value` stands in `text` (as `find_span` finds it): the first `limit` [start, end) ranges."""
    pattern = _pattern(value)
    if pattern is None:
        return []
    return [match.span() for _, match in zip(range(limit), pattern.finditer(text), strict=False)]


def _allowed_value(attribute: Attribute, value: str, product_text: str) -> str | None:
    if attribute.extractive:
        return find_span(value, product_text)
    if value in attribute.values:
        return value
    return {v.casefold(): v for v in attribute.values}.get(value.casefold())


def read_attributes(
    text: str, attributes: Sequence[Attribute], product_text: str, truncated: bool = False
) -> Attributes:
    """Stage-2 values, each checked: in the attribute's list, or (extractive) a verbatim span of the product text."""
    answer = _json_object(text, truncated)
    known = {a.handle: a for a in attributes}
    result = Attributes()
    for handle, raw in answer.items():
        attribute = known.get(handle)
        if attribute is None:
            result.warnings.append(f"dropped unknown attribute {handle[:80]!r}")
            continue
        items = raw if isinstance(raw, list) else [] if raw is None else [raw]
        kept: list[str] = []
        for item in items:
            value = _allowed_value(attribute, item, product_text) if isinstance(item, str) else None
            if value is None:
                what = "not in the product text" if attribute.extractive else "not an allowed value"
                result.warnings.append(f"dropped {handle}={str(item)[:80]!r}: {what}")
            elif value not in kept:  # small models repeat values; a set of tags has no duplicates
                kept.append(value)
        if len(kept) > 1 and not attribute.multi:
            result.warnings.append(f"kept the first of {len(kept)} values for single-valued {handle}")
            kept = kept[:1]
        if kept:
            result.values[handle] = kept
    return result
