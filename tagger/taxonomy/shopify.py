"""Shopify's Standard Product Taxonomy, read from its source files (github.com/Shopify/product-taxonomy).

DIR/data/categories/*.yml   categories: id, name, children, attributes (friendly ids)
DIR/data/attributes.yml     base_attributes (values: value handles), extended_attributes (values_from)
DIR/data/values.yml         value handle -> name
DIR/VERSION                 e.g. 2025-08-unstable
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import yaml

from tagger.taxonomy.model import Attribute, Category, Taxonomy, TaxonomyError

GID_PREFIX = "gid://shopify/TaxonomyCategory/"
# "Polyvinyl chloride (PVC)", "Small (S)": a name followed by its abbreviation (capitals or digits, no spaces).
_ABBREVIATED = re.compile(r"(?P<full>.*\S)\s*\((?P<short>[A-Z0-9][A-Z0-9+&./-]*)\)")

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
    raw_values = _read(data / "values.yml")
    values = {v["friendly_id"]: str(v["name"]) for v in raw_values}
    aliases = {v["friendly_id"]: value_aliases(str(v["name"]), str(v["handle"])) for v in raw_values}
    attribute_doc = _read(data / "attributes.yml")
    attributes = _attributes(attribute_doc, values, aliases)
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


def value_aliases(name: str, handle: str) -> tuple[str, ...]:
    """Other names for a value where Shopify's own data gives one: the handle's spelling without accents
    ("Macramé", handle `..__macrame`: "Macrame"), and both halves of "Full name (ABBR)"."""
    found: list[str] = []
    plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    if plain != name and _words(plain) == _words(handle.partition("__")[2]):
        found.append(plain)
    match = _ABBREVIATED.fullmatch(name)
    if match:
        found += [match["full"], match["short"]]
    return tuple(dict.fromkeys(found))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _usable_aliases(names: tuple[str, ...], aliases: list[tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Aliases that name exactly one value of the attribute: never another value's name, never two values'."""
    taken = {n.casefold() for n in names}
    owners: dict[str, set[str]] = {}
    for name, found in zip(names, aliases, strict=True):
        for alias in found:
            owners.setdefault(alias.casefold(), set()).add(name)
    usable: dict[str, tuple[str, ...]] = {}
    for name, found in zip(names, aliases, strict=True):
        kept = tuple(a for a in found if a.casefold() not in taken and len(owners[a.casefold()]) == 1)
        if kept:
            usable[name] = kept
    return usable


def _attributes(doc: dict[str, Any], values: dict[str, str], aliases: dict[str, tuple[str, ...]]) -> list[Attribute]:
    # The handle is Shopify's friendly_id: categories link by it, and unlike `handle` it is unique
    # (two extended attributes reuse a base attribute's handle).
    by_friendly: dict[str, Attribute] = {}
    for raw in doc["base_attributes"]:
        # Shopify stores category attributes as lists of values (list.metaobject_reference), hence multi.
        first = {values[v]: v for v in reversed(raw["values"])}  # a name listed twice keeps its first handle
        names = tuple(dict.fromkeys(values[v] for v in raw["values"]))
        by_friendly[raw["friendly_id"]] = Attribute(
            handle=raw["friendly_id"],
            name=raw["name"],
            values=names,
            multi=True,
            description=raw.get("description", ""),
            aliases=_usable_aliases(names, [aliases[first[n]] for n in names]),
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
            aliases=base.aliases,
        )
    return list(by_friendly.values())
