"""Distillation: a teacher (any backend, with its best settings) tags the catalog, only its conformant, evidenced
values are kept, and the student is trained on them.

A value is kept when the record's evidence supports it (found in the product's text, or learned from a labeled pool;
never one the teacher inferred) or, for an extractive attribute, when it is a span of the product's text; then the
pool reader and the pair renderer check it against the taxonomy again, as for any pool."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagger.build import TaggerSpec, build_tagger
from tagger.io.sources import read_rows
from tagger.product import Product
from tagger.run import RunOptions, RunSummary, tag_catalog
from tagger.taxonomy import Taxonomy, load_taxonomy
from tagger.validate import find_span

TEACHER_RECORDS = "teacher.jsonl"
TEACHER_POOL = "teacher-pool.jsonl"


@dataclass
class Labels:
    pool: Path
    records: Path
    summary: RunSummary
    products: int  # products written to the pool
    kept: int  # values kept
    dropped: int  # values the teacher gave with no evidence


def teacher_labels(catalog: Path, teacher: TaggerSpec, out: Path, limit: int | None = None) -> Labels:
    """The teacher's records (resumable: a rerun tags only what is left) and the pool made of them."""
    out.mkdir(parents=True, exist_ok=True)
    records = out / TEACHER_RECORDS
    tagger = build_tagger(teacher)
    try:
        summary = tag_catalog(tagger, catalog, records, RunOptions(limit=limit))
    finally:
        tagger.close()
    taxonomy = load_taxonomy(teacher.taxonomy)
    products = {p.id: p for p in _products(catalog, limit)}
    pool = out / TEACHER_POOL
    written = kept = dropped = 0
    with pool.open("w", encoding="utf-8") as handle:
        for record in _records(records):
            product = products.get(str(record.get("id")))
            if product is None or "category" not in record:
                continue  # an error record, or a product no longer in the catalog
            values, lost = evidenced(record, product, taxonomy)
            kept += sum(len(v) for v in values.values())
            dropped += lost
            row = {**_product_row(product), "category": record["category"]["id"], "attributes": values}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
    return Labels(pool, records, summary, written, kept, dropped)


def evidenced(record: dict[str, Any], product: Product, taxonomy: Taxonomy) -> tuple[dict[str, list[str]], int]:
    """The record's values that have evidence, and how many had none."""
    category = taxonomy.categories.get(record["category"]["id"])
    attributes = {a.handle: a for a in taxonomy.attributes_for(category.id)} if category else {}
    supported = {(e["attribute"], e["value"]) for e in record.get("evidence", []) if e.get("source") != "inferred"}
    values: dict[str, list[str]] = {}
    dropped = 0
    for handle, given in (record.get("attributes") or {}).items():
        attribute = attributes.get(handle)
        for value in given:
            spanned = attribute is not None and attribute.extractive and find_span(value, product.text) is not None
            if attribute is not None and ((handle, value) in supported or spanned):
                values.setdefault(handle, []).append(value)
            else:
                dropped += 1
    return values, dropped


def _products(catalog: Path, limit: int | None) -> Iterator[Product]:
    for index, (_, item) in enumerate(read_rows(catalog)):
        if limit is not None and index >= limit:
            return
        if isinstance(item, Product):
            yield item


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _product_row(product: Product) -> dict[str, Any]:
    return {"id": product.id, "title": product.title, "description": product.description, **product.fields}
