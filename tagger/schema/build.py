"""Taxonomy -> pydantic models -> JSON Schemas, one per generation stage.

Stage 1 answers `{"category": <one full path>}`; stage 2 answers `{<attribute handle>: <value(s)>}` with only the
attributes of the chosen category. Both are closed objects with fixed whitespace: see docs/measured.md for why small
models need both (extra keys and newline loops otherwise).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from tagger.taxonomy import Attribute, Category, Taxonomy

MAX_LIST_ITEMS = 3  # small models repeat a tag until the bound (docs/measured.md); a low one wastes fewer tokens
MAX_EXTRACT_CHARS = 80
SHORTLIST_SCHEMAS_KEPT = 4096

# llguidance reads this key; other backends ignore it. Rigid whitespace stops newline loops in small models.
_RIGID_WHITESPACE = {"x-guidance": {"whitespace_flexible": False}}


@dataclass(frozen=True)
class OutputSchema:
    """One stage's answer type: a pydantic model, its JSON Schema, and a hash that names both.

    `grammar`, when set, is a stricter Lark form of the same answer for backends that take grammars (llguidance):
    the same JSON, with each extractive value held to a span of one product's text (see `with_spans`)."""

    name: str
    model: type[BaseModel]
    json_schema: dict[str, Any]
    grammar: str | None = None
    hash: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256((self.json_text + (self.grammar or "")).encode()).hexdigest()[:16]
        object.__setattr__(self, "hash", digest)

    @property
    def json_text(self) -> str:
        return json.dumps(self.json_schema, ensure_ascii=False)  # field order kept: the model answers in it


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _literal(values: Sequence[str]) -> Any:
    return Literal[tuple(values)]


def _finish(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.update(_RIGID_WHITESPACE)
    return schema


def category_schema(categories: Sequence[Category]) -> OutputSchema:
    """Stage 1: exactly one of `categories`, named by its full path."""
    if not categories:
        raise ValueError("a category schema needs at least one category")
    model = create_model(
        "CategoryAnswer",
        __base__=_Closed,
        category=(_literal([c.full_path for c in categories]), ...),
    )
    return OutputSchema("category", model, _finish(model))


def _attribute_field(attribute: Attribute, required: bool = False) -> tuple[Any, Any]:
    # Handles such as "target-gender" are not Python names: the field is a0, a1, ... and the JSON key its alias.
    named: dict[str, Any] = {"alias": attribute.handle, "title": attribute.name}
    if required and not attribute.extractive and not attribute.multi:
        return (_literal(attribute.values), Field(**named))  # one of the values: null is not offered
    if attribute.extractive:
        span = Annotated[str, Field(min_length=1, max_length=MAX_EXTRACT_CHARS)]
        return (span | None, Field(**named))
    if attribute.multi:
        items = min(len(attribute.values), MAX_LIST_ITEMS)
        return (list[_literal(attribute.values)], Field(max_length=items, **named))  # type: ignore[misc]
    return (_literal(attribute.values) | None, Field(**named))


def attribute_schema(
    category: Category, attributes: Sequence[Attribute], must_choose: Sequence[str] = ()
) -> OutputSchema:
    """Stage 2: every attribute of the category, each required; null or [] says the text does not tell, except for
    the single-valued closed attributes in `must_choose`, which must take one of their values."""
    fields = {f"a{i}": _attribute_field(a, a.handle in must_choose) for i, a in enumerate(attributes)}
    model = create_model("AttributeAnswer", __base__=_Closed, **fields)  # type: ignore[call-overload]
    return OutputSchema(f"attributes:{category.id}", model, _finish(model))


_SPAN_CHARS = rf'/[^"\\]{{1,{MAX_EXTRACT_CHARS}}}/'  # Lark regex: no quote or backslash, bounded length
_SPAN_RULE = r'span: "null" | "\"" SPAN "\""'  # Lark: null, or a SPAN in quotes


def span_text(text: str) -> str:
    """The product text as spans are drawn from it: one line, no quotes or backslashes, whose JSON escapes would
    glue to the words next to them. Validation maps a span back to the text's own spelling (`find_span`)."""
    return " ".join(re.sub(r'["\\]', " ", text).split())


def with_spans(schema: OutputSchema, attributes: Sequence[Attribute], text: str) -> OutputSchema:
    """`schema` (stage 2) with a grammar in which every extractive value is a run of whole words of `text`, at most
    MAX_EXTRACT_CHARS long, and every other value is what the JSON Schema allows. Built per product."""
    words = json.dumps({"substring_words": span_text(text)})
    rules = [f"SPAN: %regex {words} & {_SPAN_CHARS}", _SPAN_RULE]
    pairs = []
    for i, attribute in enumerate(attributes):
        key = json.dumps(json.dumps(attribute.handle) + ":")
        if attribute.extractive:
            pairs.append(f"{key} span")
        else:
            value = dict(schema.json_schema["properties"][attribute.handle]) | _RIGID_WHITESPACE
            rules.append(f"v{i}: %json {json.dumps(value)}")
            pairs.append(f"{key} v{i}")
    start = 'start: "{" ' + ' "," '.join(pairs) + ' "}"'
    return OutputSchema(schema.name, schema.model, schema.json_schema, "\n".join([start, *rules]))


class SchemaSet:
    """The schemas a taxonomy needs, built on first use and kept: per-category schemas repeat across products."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self._category: OutputSchema | None = None
        self._attributes: dict[str, OutputSchema | None] = {}
        self._shortlists: dict[tuple[str, ...], OutputSchema] = {}

    @property
    def category(self) -> OutputSchema:
        if self._category is None:
            self._category = category_schema(list(self.taxonomy.categories.values()))
        return self._category

    def category_among(self, categories: Sequence[Category]) -> OutputSchema:
        """The stage-1 schema for a shortlist, kept for the shortlists that recur (similar products share them)."""
        key = tuple(c.id for c in categories)
        schema = self._shortlists.pop(key, None) or category_schema(categories)
        self._shortlists[key] = schema  # most recently used last
        if len(self._shortlists) > SHORTLIST_SCHEMAS_KEPT:
            del self._shortlists[next(iter(self._shortlists))]
        return schema

    def attributes(self, category_id: str) -> OutputSchema | None:
        """The stage-2 schema of a category, or None when it has no attributes."""
        if category_id not in self._attributes:
            attributes = self.taxonomy.attributes_for(category_id)
            category = self.taxonomy.categories[category_id]
            self._attributes[category_id] = attribute_schema(category, attributes) if attributes else None
        return self._attributes[category_id]
