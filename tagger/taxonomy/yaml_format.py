"""tagger's own taxonomy format: one readable YAML file that a platform team writes by hand.

name: my-shop
version: "2026-11"
attributes:
  color: {name: Color, values: [Black, White], multi: true}
  material:
    values:
      - Cotton
      - {name: Polyvinyl chloride, aliases: [PVC, vinyl]}   # a value with other names for it
  brand: {name: Brand, extractive: true}
categories:
  - name: Apparel
    attributes: [color, brand]      # inherited by every descendant
    children:
      - name: Shirts
        id: shirts                  # optional; defaults to a slug of the path
tags: [gift idea, eco friendly]     # optional flat vocabulary
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tagger.taxonomy.model import Attribute, Category, Taxonomy, TaxonomyError

_ATTRIBUTE_KEYS = {"name", "values", "multi", "extractive", "description"}
_CATEGORY_KEYS = {"name", "id", "attributes", "children"}
_VALUE_KEYS = {"name", "aliases"}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def load_yaml_taxonomy(path: Path) -> Taxonomy:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise TaxonomyError(f"{path}: expected a mapping with name, version, attributes, categories")
    return taxonomy_from_dict(doc, source=str(path))


def taxonomy_from_dict(doc: dict[str, Any], source: str = "<dict>") -> Taxonomy:
    for key in ("name", "version", "categories"):
        if key not in doc:
            raise TaxonomyError(f"{source}: missing top-level key {key!r}")
    attributes = [_attribute(handle, spec, source) for handle, spec in (doc.get("attributes") or {}).items()]
    categories: list[Category] = []
    _walk(doc["categories"], None, (), categories, source)
    return Taxonomy(str(doc["name"]), str(doc["version"]), categories, attributes, doc.get("tags") or ())


def _attribute(handle: str, spec: dict[str, Any], source: str) -> Attribute:
    if not isinstance(spec, dict):
        raise TaxonomyError(f"{source}: attribute {handle!r} must be a mapping")
    unknown = set(spec) - _ATTRIBUTE_KEYS
    if unknown:
        raise TaxonomyError(f"{source}: attribute {handle!r} has unknown keys {sorted(unknown)}")
    values: list[str] = []
    aliases: dict[str, tuple[str, ...]] = {}
    for item in spec.get("values") or ():
        value, names = _value(item, f"{source}: attribute {handle!r}")
        values.append(value)
        if names:
            aliases[value] = names
    if len(set(values)) != len(values):
        raise TaxonomyError(f"{source}: attribute {handle!r} lists a value twice")
    try:
        return Attribute(
            handle=str(handle),
            name=str(spec.get("name", handle)),
            values=tuple(values),
            multi=bool(spec.get("multi", False)),
            extractive=bool(spec.get("extractive", False)),
            description=str(spec.get("description", "")),
            aliases=aliases,
        )
    except TaxonomyError as exc:
        raise TaxonomyError(f"{source}: {exc}") from None


def _value(item: Any, where: str) -> tuple[str, tuple[str, ...]]:
    """A value is a plain string, or `{name: ..., aliases: [...]}`."""
    if not isinstance(item, dict):
        return str(item), ()
    unknown = set(item) - _VALUE_KEYS
    if unknown or "name" not in item:
        raise TaxonomyError(f"{where}: a value mapping takes name and aliases, got {sorted(item)}")
    aliases = item.get("aliases") or []
    if not isinstance(aliases, list):
        raise TaxonomyError(f"{where}: the aliases of {item['name']!r} must be a list")
    return str(item["name"]), tuple(dict.fromkeys(str(a) for a in aliases))


def _walk(nodes: Any, parent: Category | None, path: tuple[str, ...], out: list[Category], source: str) -> None:
    if not isinstance(nodes, list):
        raise TaxonomyError(f"{source}: categories under {' > '.join(path) or 'the root'} must be a list")
    for node in nodes:
        if not isinstance(node, dict) or "name" not in node:
            raise TaxonomyError(f"{source}: a category under {' > '.join(path) or 'the root'} has no name")
        unknown = set(node) - _CATEGORY_KEYS
        if unknown:
            raise TaxonomyError(f"{source}: category {node['name']!r} has unknown keys {sorted(unknown)}")
        node_path = (*path, str(node["name"]))
        category = Category(
            id=str(node.get("id") or slug("/".join(node_path))),
            name=str(node["name"]),
            parent_id=parent.id if parent else None,
            attributes=tuple(node.get("attributes") or ()),
        )
        out.append(category)
        _walk(node.get("children") or [], category, node_path, out, source)
