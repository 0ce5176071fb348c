"""Schemas: the closed answer types built from a taxonomy, one per generation stage."""

from tagger.schema.build import (
    MAX_LIST_ITEMS,
    OutputSchema,
    SchemaSet,
    attribute_schema,
    category_schema,
    span_text,
    with_spans,
)

__all__ = [
    "MAX_LIST_ITEMS",
    "OutputSchema",
    "SchemaSet",
    "attribute_schema",
    "category_schema",
    "span_text",
    "with_spans",
]
