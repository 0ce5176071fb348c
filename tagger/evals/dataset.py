"""An eval's dataset: JSONL rows sampled reproducibly, each turned into the product the model sees and its gold."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagger.evals.config import AttributeGold, CategoryGold, EvalConfig
from tagger.evals.samples import Gold
from tagger.product import Columns, Product, ProductError, product_from_record
from tagger.taxonomy import PATH_SEPARATOR, Taxonomy
from tagger.taxonomy.shopify import GID_PREFIX


@dataclass(frozen=True)
class LabeledProduct:
    product: Product
    gold: Gold


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


def _attributes(row: dict[str, Any], spec: AttributeGold, taxonomy: Taxonomy, category_id: str) -> dict[str, list[str]]:
    """Gold for every scored pair of this product: the category's attributes that the dataset annotates."""
    raw = _field(row, spec.field) or {}
    own = taxonomy.attributes_for(category_id)
    handles = {a.handle for a in own}
    mapping = spec.map or {(a.name if spec.by == "name" else a.handle): a.handle for a in own}
    gold: dict[str, list[str]] = {h: [] for h in mapping.values() if h in handles}
    for name, values in raw.items():
        handle = mapping.get(name)
        if handle not in gold:
            continue
        renames = spec.values.get(handle, {})
        items = values if isinstance(values, list) else [values]
        gold[handle] += [renames.get(str(v), str(v)) for v in items]
    return gold


def load_examples(
    config: EvalConfig, taxonomy: Taxonomy, data_root: Path, limit: int | None = None, sample: bool = True
) -> list[LabeledProduct]:
    """The eval's sample: `sample.size` rows drawn with `sample.seed` (input order kept), then the first `limit`.
    With `sample=False`, every row (the example pool of a dataset)."""
    path = Path(config.resolve(config.dataset.path, data_root))
    if not path.is_absolute() and not path.exists():
        path = data_root / config.dataset.path
    if not path.is_file():
        raise FileNotFoundError(
            f"eval {config.name}: dataset not found at {path} (set --data-root or TAGGER_DATA_ROOT)"
        )
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
            raise ValueError(f"eval {config.name}: {exc}") from exc
        category_id, coarse = (None, False)
        if config.dataset.category is not None:
            category_id, coarse = _category(row, config.dataset.category, taxonomy)
        attributes: dict[str, list[str]] = {}
        if config.dataset.attributes is not None and category_id is not None:
            attributes = _attributes(row, config.dataset.attributes, taxonomy, category_id)
        examples.append(LabeledProduct(product, Gold(category_id, coarse, attributes)))
    return examples
