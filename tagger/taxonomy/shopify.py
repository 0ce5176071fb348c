"""Shopify's Standard Product Taxonomy, read from its source files (github.com/Shopify/product-taxonomy).

DIR/data/categories/*.yml   categories: id, name, children, attributes (friendly ids)
DIR/data/attributes.yml     base_attributes (values: value handles), extended_attributes (values_from)
DIR/data/values.yml         value handle -> name
DIR/VERSION                 e.g. 2025-08-unstable
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tagger.taxonomy.model import Attribute, Category, Taxonomy, TaxonomyError

GID_PREFIX = "gid://shopify/TaxonomyCategory/"

try:  # the C loader is ~5x faster on these 100k-line files
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader


def _read(path: Path) -> Any:
    if not path.is_file():
        raise TaxonomyError(f"Shopify taxonomy: missing {path}")
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def load_shopify_taxonomy(root: Path) -> Taxonomy:
    data = root / "data"
    values = {v["friendly_id"]: str(v["name"]) for v in _read(data / "values.yml")}
    attribute_doc = _read(data / "attributes.yml")
    attributes = _attributes(attribute_doc, values)
    categories: list[Category] = []
    files = sorted((data / "categories").glob("*.yml"))
    if not files:
        raise TaxonomyError(f"Shopify taxonomy: no category files in {data / 'categories'}")
    for file in files:
        for raw in _read(file):
            categories.append(
                Category(
                    id=GID_PREFIX + str(raw["id"]),
                    name=str(raw["name"]),
                    children=[GID_PREFIX + str(c) for c in raw.get("children") or ()],
                    attributes=tuple(raw.get("attributes") or ()),
                )
            )
    version_file = root / "VERSION"
    version = version_file.read_text().strip() if version_file.is_file() else "unknown"
    return Taxonomy("shopify", version, categories, attributes)


def _attributes(doc: dict[str, Any], values: dict[str, str]) -> list[Attribute]:
    # The handle is Shopify's friendly_id: categories link by it, and unlike `handle` it is unique
    # (two extended attributes reuse a base attribute's handle).
    by_friendly: dict[str, Attribute] = {}
    for raw in doc["base_attributes"]:
        # Shopify stores category attributes as lists of values (list.metaobject_reference), hence multi.
        names = tuple(dict.fromkeys(values[v] for v in raw["values"]))
        by_friendly[raw["friendly_id"]] = Attribute(
            handle=raw["friendly_id"],
            name=raw["name"],
            values=names,
            multi=True,
            description=raw.get("description", ""),
        )
    for raw in doc.get("extended_attributes") or ():
        base = by_friendly[raw["values_from"]]
        by_friendly[raw["friendly_id"]] = Attribute(
            handle=raw["friendly_id"],
            name=raw["name"],
            values=base.values,
            multi=True,
            description=raw.get("description", ""),
            values_from=base.handle,
        )
    return list(by_friendly.values())
