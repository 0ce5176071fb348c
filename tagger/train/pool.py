"""The training pool: labeled products read and checked against the taxonomy before anything is trained on them.

A row is a product (id, title, description, fields) with its `category` (a taxonomy id, a full path, a list of
names, or tagger's record shape `{"id": ..., "path": [...]}`; `category_path` as the dev sets name it is read too) and
its `attributes` ({handle or attribute name: [values]}). The shape is the example pool's (tagger.retrieval.examples),
so a reviewed output's export, gold, or a teacher's labels train alike. A row that cannot be trained on (no title, a
category outside the taxonomy, an attribute or a value the taxonomy does not allow) is reported, with the product's id
and the problem, and skipped: one bad row never stops the run, and none is ever trained on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagger.product import Columns, Product, ProductError, product_from_record
from tagger.retrieval.examples import category_of
from tagger.taxonomy import Attribute, Category, Taxonomy


@dataclass(frozen=True)
class Labeled:
    """One product of the pool with its category and its values, keyed by attribute handle."""

    product: Product
    category: Category
    attributes: dict[str, list[str]] = field(default_factory=dict)
    row: int = 0  # the line of the pool file, for reports


@dataclass(frozen=True)
class Problem:
    """Why a row was skipped."""

    row: int
    product_id: str | None
    message: str

    def __str__(self) -> str:
        who = f" (id {self.product_id!r})" if self.product_id else ""
        return f"row {self.row}{who}: {self.message}"


@dataclass
class Pool:
    items: list[Labeled]
    problems: list[Problem]
    sha256: str  # of the file's bytes: the training data's identity in the model card and provenance


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_pool(path: Path, taxonomy: Taxonomy, columns: Columns | None = None) -> Pool:
    items: list[Labeled] = []
    problems: list[Problem] = []
    for row, record in _rows(path, problems):
        pid = record.get("id")
        try:
            items.append(labeled(record, row, taxonomy, columns))
        except ProductError as exc:
            problems.append(Problem(row, exc.product_id or (str(pid) if pid is not None else None), exc.detail))
    return Pool(items, problems, file_sha256(path))


def _rows(path: Path, problems: list[Problem]) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for row, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(Problem(row, None, f"not JSON ({exc.msg})"))
                continue
            if not isinstance(record, dict):
                problems.append(Problem(row, None, "not a JSON object"))
                continue
            yield row, record


def labeled(record: dict[str, Any], row: int, taxonomy: Taxonomy, columns: Columns | None = None) -> Labeled:
    """One row checked; ProductError names the first problem."""
    product = product_from_record(record, row, columns)
    raw = record.get("category", record.get("category_path"))
    category = category_of(raw, taxonomy)
    if category is None:
        shown = json.dumps(raw, ensure_ascii=False)[:120] if raw is not None else "none"
        raise ProductError("unknown_category", f"category {shown} is not in taxonomy {taxonomy.name!r}", product.id)
    values = _values(record.get("attributes") or {}, taxonomy.attributes_for(category.id), product)
    return Labeled(product, category, values, row)


def _values(raw: Any, attributes: list[Attribute], product: Product) -> dict[str, list[str]]:
    if not isinstance(raw, dict):
        raise ProductError("wrong_type", "attributes must be an object {attribute: [values]}", product.id)
    by_key = {a.handle: a for a in attributes} | {a.name: a for a in attributes}
    values: dict[str, list[str]] = {}
    for key, given in raw.items():
        attribute = by_key.get(key)
        if attribute is None:
            raise ProductError("unknown_attribute", f"attribute {key!r} is not one of its category's", product.id)
        items = given if isinstance(given, list) else [given]
        if not all(isinstance(v, str) for v in items):
            raise ProductError("wrong_type", f"attribute {key!r}: values must be text", product.id)
        outside = [v for v in items if not attribute.extractive and v not in attribute.values]
        if outside:
            why = f"{attribute.handle}={outside[0]!r} is not an allowed value"
            raise ProductError("value_outside", why, product.id)
        if items:
            values.setdefault(attribute.handle, []).extend(items)
    return values
