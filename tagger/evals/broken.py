"""Pipelines broken on purpose: a gate that passes one of them measures nothing.

Each is a `Pipeline` (tagger.evals.runner) that the real eval code runs, scores and gates like the model's:

- `brand-only`: the retrieval category (MiniLM's nearest path, or the given one), and no attribute but the brand,
  copied from the input's `brand` field. What an eval scores when its gold brand is an input field.
- `first-value`: the retrieval category, and every closed attribute of it set to its first allowed value.
- `random-category`: a category drawn at random (seeded), no attributes.

`tagger eval CONFIG --planted NAME` runs one in place of the model (tests/test_gates.py shows every gate failing).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from tagger.product import Product
from tagger.records import CategoryRef, Record, TagRecord, model_free_provenance
from tagger.taxonomy import Category, Taxonomy

Choose = Callable[[Sequence[Product]], list[Category]]
Fill = Callable[[Product, Category], dict[str, list[str]]]


class PlantedPipeline:
    """Categories from `choose` (unless given), attribute values from `fill`; no model."""

    def __init__(self, name: str, taxonomy: Taxonomy, choose: Choose, fill: Fill, close: Callable[[], None]) -> None:
        self.name = name
        self._choose, self._fill, self._close = choose, fill, close
        self.provenance = model_free_provenance(taxonomy, name, "planted")

    def tag_batch(self, products: Sequence[Product], categories: Sequence[Category] | None = None) -> list[Record]:
        chosen = list(categories) if categories is not None else self._choose(products)
        return [
            TagRecord(
                id=product.id,
                category=CategoryRef(id=category.id, path=list(category.path)),
                attributes=self._fill(product, category),
                provenance=self.provenance,
            )
            for product, category in zip(products, chosen, strict=True)
        ]

    def close(self) -> None:
        self._close()


def _retrieval(taxonomy: Taxonomy) -> tuple[Choose, Callable[[], None]]:
    from tagger.retrieval import NearestCategoryTagger

    nearest = NearestCategoryTagger(taxonomy)

    def choose(products: Sequence[Product]) -> list[Category]:
        records = nearest.tag_batch(products)
        return [taxonomy.categories[r.category.id] for r in records if isinstance(r, TagRecord)]

    return choose, nearest.close


def brand_only(taxonomy: Taxonomy) -> PlantedPipeline:
    def fill(product: Product, category: Category) -> dict[str, list[str]]:
        brand = " ".join(product.fields.get("brand", "").split())  # as cleaning leaves it
        linked = any(a.handle == "brand" for a in taxonomy.attributes_for(category.id))
        return {"brand": [brand]} if brand and linked else {}

    return PlantedPipeline("brand-only", taxonomy, *_with(taxonomy, fill))


def first_value(taxonomy: Taxonomy) -> PlantedPipeline:
    def fill(product: Product, category: Category) -> dict[str, list[str]]:
        return {a.handle: [a.values[0]] for a in taxonomy.attributes_for(category.id) if not a.extractive}

    return PlantedPipeline("first-value", taxonomy, *_with(taxonomy, fill))


def random_category(taxonomy: Taxonomy, seed: int = 0) -> PlantedPipeline:
    rng = random.Random(seed)
    nodes = list(taxonomy.categories.values())

    def choose(products: Sequence[Product]) -> list[Category]:
        return [rng.choice(nodes) for _ in products]

    return PlantedPipeline("random-category", taxonomy, choose, lambda product, category: {}, lambda: None)


def _with(taxonomy: Taxonomy, fill: Fill) -> tuple[Choose, Fill, Callable[[], None]]:
    choose, close = _retrieval(taxonomy)
    return choose, fill, close


PLANTED: dict[str, Callable[[Taxonomy], PlantedPipeline]] = {
    "brand-only": brand_only,
    "first-value": first_value,
    "random-category": random_category,
}
