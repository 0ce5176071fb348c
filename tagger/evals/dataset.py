"""An eval's dataset: JSONL rows sampled reproducibly, each turned into the product the model sees and its gold."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagger.errors import TaggerError
from tagger.evals.config import AttributeGold, CategoryGold, EvalConfig
from tagger.evals.samples import NA, Gold, normalize
from tagger.product import Columns, Product, ProductError, product_from_record
from tagger.taxonomy import PATH_SEPARATOR, Taxonomy
from tagger.taxonomy.shopify import GID_PREFIX

log = logging.getLogger("tagger.evals")


@dataclass(frozen=True)
class UnmappedGold:
    """The gold of one row that the eval's taxonomy cannot take: left unscored (or, for `outside`, unreachable)."""

    category: str | None = None  # the row's gold category, as the dataset gives it, when no taxonomy node matches
    attributes: dict[str, int] = field(default_factory=dict)  # dataset attribute -> values no attribute takes
    # (handle, value): gold of a closed attribute that is none of its values. Scored, but no prediction can match.
    outside: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class LabeledProduct:
    product: Product
    gold: Gold
    unmapped: UnmappedGold = field(default_factory=UnmappedGold)


@dataclass(frozen=True)
class UnmappedSummary:
    """How much of a sample's gold could not be mapped onto the taxonomy (what a report must say beside metrics)."""

    products: int  # in the sample
    categories: int  # products whose gold category matched no node: their category and attributes go unscored
    attribute_values: int  # gold values of attributes that no attribute of the product's category takes: unscored
    by_attribute: dict[str, int]  # the same, per dataset attribute name
    outside_values: int  # gold values of closed attributes that are none of the attribute's values
    category_examples: tuple[str, ...] = ()  # a few of the unmapped gold categories

    def __bool__(self) -> bool:
        return bool(self.categories or self.attribute_values or self.outside_values)

    def describe(self) -> str:
        parts = [f"{self.categories} of {self.products} gold categories could not be mapped to the taxonomy"]
        if self.category_examples:
            parts[0] += " (e.g. " + ", ".join(repr(c) for c in self.category_examples) + ")"
        top = ", ".join(f"{name}: {n}" for name, n in sorted(self.by_attribute.items(), key=lambda kv: -kv[1])[:5])
        parts.append(
            f"{self.attribute_values} gold attribute values have no attribute of their category"
            + (f" ({top})" if top else "")
        )
        parts.append(f"{self.outside_values} gold values of closed attributes are not among the allowed values")
        return "; ".join(parts)


def unmapped_summary(examples: Sequence[LabeledProduct]) -> UnmappedSummary:
    by_attribute: Counter[str] = Counter()
    for example in examples:
        by_attribute.update(example.unmapped.attributes)
    categories = [e.unmapped.category for e in examples if e.unmapped.category is not None]
    return UnmappedSummary(
        products=len(examples),
        categories=len(categories),
        attribute_values=sum(by_attribute.values()),
        by_attribute=dict(by_attribute),
        outside_values=sum(len(e.unmapped.outside) for e in examples),
        category_examples=tuple(dict.fromkeys(categories))[:3],
    )


def _field(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _category(row: dict[str, Any], spec: CategoryGold, taxonomy: Taxonomy) -> tuple[str | None, bool]:
    value = _field(row, spec.field)
    if value is None:
        return None, False
    if spec.kind == "id":
        found = str(value) if str(value) in taxonomy.categories else None
        return found, False
    if spec.kind == "path":
        names = value if isinstance(value, list) else str(value).split(PATH_SEPARATOR)
        node = taxonomy.by_path.get(PATH_SEPARATOR.join(names))
        return (node.id if node else None), False
    gid = str(value.get("gid", ""))
    gid = gid if gid.startswith(GID_PREFIX) else GID_PREFIX + gid
    return (gid if gid in taxonomy.categories else None), value.get("fit") == "coarse"


def _attributes(
    row: dict[str, Any], spec: AttributeGold, taxonomy: Taxonomy, category_id: str
) -> tuple[dict[str, list[str]], dict[str, int], list[tuple[str, str]]]:
    """Gold for every scored pair of this product: the category's attributes that the dataset annotates. Also what
    could not be mapped: values per dataset attribute that no attribute of the category takes (an attribute the
    config's explicit map leaves out is not asked for, so not counted), and closed values outside the allowed ones."""
    raw = _field(row, spec.field) or {}
    own = taxonomy.attributes_for(category_id)
    handles = {a.handle for a in own}
    mapping = spec.map or {(a.name if spec.by == "name" else a.handle): a.handle for a in own}
    gold: dict[str, list[str]] = {h: [] for h in mapping.values() if h in handles}
    unmapped: Counter[str] = Counter()
    for name, values in raw.items():
        items = values if isinstance(values, list) else [values]
        handle = mapping.get(name)
        if handle not in gold:
            if spec.map is None or name in spec.map:
                unmapped[name] += sum(normalize(str(v)) not in NA for v in items)
            continue
        renames = spec.values.get(handle, {})
        gold[handle] += [renames.get(str(v), str(v)) for v in items]
    outside = [(h, v) for h, values in gold.items() for v in values if _outside(taxonomy, h, v)]
    return gold, {name: n for name, n in unmapped.items() if n}, outside


def _outside(taxonomy: Taxonomy, handle: str, value: str) -> bool:
    """A gold value of a closed attribute that no allowed value matches (as the metric compares them)."""
    attribute = taxonomy.attributes[handle]
    if attribute.extractive or normalize(value) in NA:
        return False
    return normalize(value) not in {normalize(v) for v in attribute.values}


def load_labeled(
    config: EvalConfig, taxonomy: Taxonomy, data_root: Path, limit: int | None = None, sample: bool = True
) -> list[LabeledProduct]:
    """The eval's sample: `sample.size` rows drawn with `sample.seed` (input order kept), then the first `limit`.
    With `sample=False`, every row (the example pool of a dataset)."""
    path = Path(config.resolve(config.dataset.path, data_root))
    if not path.is_absolute() and not path.exists():
        path = data_root / config.dataset.path
    if not path.is_file():
        raise TaggerError(f"eval {config.name}: dataset not found at {path} (set --data-root or TAGGER_DATA_ROOT)")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if config.dataset.category is not None:  # a row without a gold category cannot be scored
        rows = [row for row in rows if _field(row, config.dataset.category.field) is not None]
    if sample and config.sample.size is not None and config.sample.size < len(rows):
        picked = sorted(random.Random(config.sample.seed).sample(range(len(rows)), config.sample.size))
        rows = [rows[i] for i in picked]
    examples = []
    for number, row in enumerate(rows[:limit], start=1):
        try:
            product = product_from_record(row, number, Columns(fields=tuple(config.dataset.fields)))
        except ProductError as exc:
            raise TaggerError(f"eval {config.name}: {exc}") from exc
        category_id, coarse = (None, False)
        unmapped_category = None
        if config.dataset.category is not None:
            category_id, coarse = _category(row, config.dataset.category, taxonomy)
            if category_id is None:
                unmapped_category = _shown(_field(row, config.dataset.category.field))
        attributes: dict[str, list[str]] = {}
        unmapped: dict[str, int] = {}
        outside: list[tuple[str, str]] = []
        if config.dataset.attributes is not None and category_id is not None:
            attributes, unmapped, outside = _attributes(row, config.dataset.attributes, taxonomy, category_id)
        missing = UnmappedGold(unmapped_category, unmapped, tuple(outside))
        examples.append(LabeledProduct(product, Gold(category_id, coarse, attributes), missing))
    _warn_unmapped(config, taxonomy, examples)
    return examples


def _shown(value: Any) -> str:
    """A gold category as the dataset gives it, for a report: a path joined, a Shopify gold by its gid."""
    if isinstance(value, list):
        return PATH_SEPARATOR.join(str(v) for v in value)
    if isinstance(value, dict):
        return str(value.get("gid", value))
    return str(value)


def _warn_unmapped(config: EvalConfig, taxonomy: Taxonomy, examples: Sequence[LabeledProduct]) -> None:
    summary = unmapped_summary(examples)
    if summary:
        log.warning("eval %s on %s: %s", config.name, taxonomy.name, summary.describe())
