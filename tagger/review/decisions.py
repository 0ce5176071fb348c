"""What a reviewer can do to a record's tags, checked against the taxonomy: the only values a decision can leave
are those the record's category allows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tagger.taxonomy import Taxonomy

ACTIONS = ("accept", "reject", "set_category", "set_value", "remove_value", "add_value")
MAX_VALUE_CHARS = 200  # a free-text (extractive) value a reviewer types


class DecisionError(ValueError):
    """A decision the taxonomy or the record does not allow."""


@dataclass
class Tags:
    """A record's tags under review: its category id and attribute values (as tagger writes them)."""

    category: str
    attributes: dict[str, list[str]] = field(default_factory=dict)
    status: str = "pending"  # pending, accepted, rejected

    def to_json(self) -> dict[str, Any]:
        return {"category": self.category, "attributes": self.attributes, "status": self.status}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tags:
        return cls(data["category"], {k: list(v) for k, v in data["attributes"].items()}, data["status"])


@dataclass(frozen=True)
class Decision:
    action: str
    attribute: str | None = None
    value: str | None = None  # the value acted on (set_value: the old one; add_value: the new one)
    new_value: str | None = None  # set_value: the value it becomes; set_category: the category id


def apply(tags: Tags, decision: Decision, taxonomy: Taxonomy) -> tuple[Tags, Any, Any]:
    """The tags after `decision`, and what changed: (new tags, the value before, the value after)."""
    new = Tags(tags.category, {k: list(v) for k, v in tags.attributes.items()}, tags.status)
    action = decision.action
    if action == "accept":
        new.status = "accepted"
        return new, tags.status, new.status
    if action == "reject":
        new.status = "rejected"
        return new, tags.status, new.status
    if action == "set_category":
        return _set_category(new, decision.new_value, taxonomy)
    handle = _attribute(new, decision.attribute, taxonomy)
    values = new.attributes.get(handle, [])
    if action == "remove_value":
        if decision.value not in values:
            raise DecisionError(f"{handle} has no value {decision.value!r}")
        new.attributes[handle] = [v for v in values if v != decision.value]
        if not new.attributes[handle]:
            del new.attributes[handle]
        return new, decision.value, None
    if action == "set_value":
        if decision.value not in values:
            raise DecisionError(f"{handle} has no value {decision.value!r}")
        value = _allowed(handle, decision.new_value, taxonomy)
        new.attributes[handle] = list(dict.fromkeys(value if v == decision.value else v for v in values))
        return new, decision.value, value
    if action == "add_value":
        value = _allowed(handle, decision.value, taxonomy)
        if value in values:
            raise DecisionError(f"{handle} already has {value!r}")
        # A single-valued attribute keeps one value: adding replaces it.
        new.attributes[handle] = [*values, value] if taxonomy.attributes[handle].multi else [value]
        return new, values[0] if values and not taxonomy.attributes[handle].multi else None, value
    raise DecisionError(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")


def _set_category(tags: Tags, category_id: str | None, taxonomy: Taxonomy) -> tuple[Tags, Any, Any]:
    if not category_id or category_id not in taxonomy.categories:
        raise DecisionError(f"{category_id!r} is not a category of taxonomy {taxonomy.name}")
    before = tags.category
    tags.category = category_id
    allowed = {a.handle for a in taxonomy.attributes_for(category_id)}
    # Values the new category does not allow go: no decision may leave a tag outside the taxonomy.
    tags.attributes = {h: v for h, v in tags.attributes.items() if h in allowed}
    return tags, before, category_id


def _attribute(tags: Tags, handle: str | None, taxonomy: Taxonomy) -> str:
    if tags.category not in taxonomy.categories:
        raise DecisionError(f"category {tags.category!r} is not in taxonomy {taxonomy.name}; change it first")
    allowed = {a.handle for a in taxonomy.attributes_for(tags.category)}
    if handle not in allowed:
        raise DecisionError(f"attribute {handle!r} does not belong to category {tags.category!r}")
    return handle


def _allowed(handle: str, value: str | None, taxonomy: Taxonomy) -> str:
    attribute = taxonomy.attributes[handle]
    text = (value or "").strip()
    if not text:
        raise DecisionError(f"{handle}: an empty value")
    if attribute.extractive:
        if len(text) > MAX_VALUE_CHARS:
            raise DecisionError(f"{handle}: a value over {MAX_VALUE_CHARS} characters")
        return text
    if text not in attribute.values:
        raise DecisionError(f"{text!r} is not a value of {handle}")
    return text


def allowed_values(taxonomy: Taxonomy, category_id: str) -> dict[str, tuple[str, ...]]:
    """Each attribute the category allows, with its closed values (empty for free text)."""
    if category_id not in taxonomy.categories:
        return {}
    return {a.handle: a.values for a in taxonomy.attributes_for(category_id)}
