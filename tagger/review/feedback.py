"""Feedback from outside the app (a merchant's or shopper's accept/remove/add on tags, e.g. from a storefront) goes
into the same event store, each event with its source recorded.

One JSON object a line: {"id": PRODUCT, "action": "accept" | "remove" | "add" | "reject", "attribute": HANDLE,
"value": VALUE, "who": NAME, "at": ISO-TIME}; `attribute` and `value` for remove and add. A line that cannot be
applied is reported with its line number and the import goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tagger.review.decisions import Decision, DecisionError
from tagger.review.store import ReviewStore, now_iso
from tagger.taxonomy import Taxonomy

_ACTIONS = {"accept": "accept", "reject": "reject", "remove": "remove_value", "add": "add_value"}


@dataclass
class ImportSummary:
    applied: int = 0
    problems: list[str] = field(default_factory=list)  # "line N: why"


def import_feedback(store: ReviewStore, path: Path, taxonomy: Taxonomy, source: str) -> ImportSummary:
    summary = ImportSummary()
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record_id, decision, who, at = _event(raw)
                store.decide(record_id, decision, taxonomy, who or source, None, source=source, at=at)
                summary.applied += 1
            except (ValueError, DecisionError) as exc:
                summary.problems.append(f"line {line}: {exc}")
    return summary


def _event(raw: bytes) -> tuple[str, Decision, str | None, str | None]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    record_id, action = data.get("id"), data.get("action")
    if not isinstance(record_id, (str, int)) or isinstance(record_id, bool):
        raise ValueError("no product id")
    if action not in _ACTIONS:
        raise ValueError(f"unknown action {action!r}; choose one of {', '.join(_ACTIONS)}")
    attribute, value = data.get("attribute"), data.get("value")
    if action in ("remove", "add") and not (isinstance(attribute, str) and isinstance(value, str)):
        raise ValueError(f"{action} needs an attribute and a value")
    who, at = data.get("who"), data.get("at")
    return (
        str(record_id),
        Decision(_ACTIONS[action], attribute, value),
        str(who) if who else None,
        str(at) if at else now_iso(),
    )
