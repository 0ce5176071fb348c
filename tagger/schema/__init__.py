"""Schemas: the closed answer types built from a taxonomy, one per generation stage."""

from tagger.schema.build import OutputSchema, SchemaSet, attribute_schema, category_schema

__all__ = ["OutputSchema", "SchemaSet", "attribute_schema", "category_schema"]
