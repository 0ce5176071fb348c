"""An independent conformance check of finished records, for the evals and the tests.

tagger.validate filters what the model returns, reading the taxonomy that tagger.taxonomy loaded. A check that reused
either would agree with them by construction, bugs included. So this module reads the taxonomy files itself (plain
`yaml.safe_load`, Google's text lines, Shopify's source folder) into a `Reference` of its own, and applies its own
rules to a record:

- the category id exists and the record's path is that category's path;
- every attribute belongs to the category or one of its ancestors;
- a closed value is exactly (case included) one of the attribute's values;
- an extractive value is a verbatim substring of the product's cleaned text (the text the model was shown).

Readers are registered by kind in READERS: tagger's YAML, Google's text, Shopify's source folder, and the compact
files tagger ships (`--taxonomy shopify`, `google`; also `shopify:FILE` for such a file), read with gzip and json.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from tagger.clean import Cleaner, CleaningConfig
from tagger.product import Product
from tagger.records import TagRecord

SHOPIFY_GID = "gid://shopify/TaxonomyCategory/"
_SEPARATOR = " > "


class ConformanceError(ValueError):
    """A record that does not conform to its taxonomy; the message names the product and the problem."""


@dataclass(frozen=True)
class Reference:
    """What conformance needs from a taxonomy, read independently of tagger.taxonomy."""

    source: str
    paths: Mapping[str, tuple[str, ...]]  # category id -> names from the root
    parents: Mapping[str, str | None]  # category id -> parent id
    links: Mapping[str, tuple[str, ...]]  # category id -> attribute handles linked to that node itself
    values: Mapping[str, frozenset[str] | None]  # attribute handle -> its closed values; None: extractive

    def allowed_attributes(self, category_id: str) -> set[str]:
        handles: set[str] = set()
        node: str | None = category_id
        while node is not None:
            handles.update(self.links.get(node, ()))
            node = self.parents[node]
        return handles


Reader = Callable[[Path], Reference]


def _paths(names: Mapping[str, str], parents: Mapping[str, str | None]) -> dict[str, tuple[str, ...]]:
    paths: dict[str, tuple[str, ...]] = {}
    for start in names:
        chain: list[str] = []
        node: str | None = start
        while node is not None and node not in paths:
            if node in chain:
                raise ConformanceError(f"taxonomy: category {node!r} is its own ancestor")
            chain.append(node)
            node = parents[node]
        above = paths[node] if node is not None else ()
        for item in reversed(chain):
            above = (*above, names[item])
            paths[item] = above
    return paths


def read_tagger_yaml(path: Path) -> Reference:
    """tagger's own format: nested categories (id, or a slug of the path), attributes with values or extractive."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    values: dict[str, frozenset[str] | None] = {}
    for handle, spec in (doc.get("attributes") or {}).items():
        values[str(handle)] = None if spec.get("extractive") else frozenset(str(v) for v in spec.get("values") or ())
    names: dict[str, str] = {}
    parents: dict[str, str | None] = {}
    links: dict[str, tuple[str, ...]] = {}
    stack: list[tuple[dict[str, Any], str | None, tuple[str, ...]]] = [(n, None, ()) for n in doc["categories"]]
    while stack:
        node, parent, above = stack.pop()
        names_here = (*above, str(node["name"]))
        ident = str(node.get("id") or _slug("/".join(names_here)))
        names[ident], parents[ident], links[ident] = names_here[-1], parent, tuple(node.get("attributes") or ())
        stack.extend((child, ident, names_here) for child in node.get("children") or ())
    return Reference(str(path), _paths(names, parents), parents, links, values)


def _slug(text: str) -> str:
    # The format's documented default id: lower case, every run of other characters one hyphen, trimmed.
    out, dash = [], False
    for char in text.lower():
        if char.isascii() and char.isalnum():
            out.append(char)
            dash = False
        elif not dash:
            out.append("-")
            dash = True
    return "".join(out).strip("-")


def read_google(path: Path) -> Reference:
    """Google's `ID - A > B > C` lines: the parent is the line whose path is this one's minus its last name."""
    by_path: dict[tuple[str, ...], str] = {}
    names: dict[str, str] = {}
    parents: dict[str, str | None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        ident, _, full = line.partition(" - ")
        path_names = tuple(full.strip().split(_SEPARATOR))
        by_path[path_names] = ident.strip()
        names[ident.strip()] = path_names[-1]
        parents[ident.strip()] = by_path[path_names[:-1]] if len(path_names) > 1 else None
    return Reference(str(path), _paths(names, parents), parents, {}, {})


def _load_yaml(path: Path) -> Any:
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # both are safe loaders; the C one is ~5x faster
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)  # noqa: S506 - a SafeLoader


def read_shopify_folder(root: Path) -> Reference:
    """Shopify's source: data/categories/*.yml (a node lists its children and its attributes), data/attributes.yml
    (base attributes list value handles; extended ones share a base attribute's values), data/values.yml."""
    data = root / "data"
    value_names = {v["friendly_id"]: str(v["name"]) for v in _load_yaml(data / "values.yml")}
    doc = _load_yaml(data / "attributes.yml")
    values: dict[str, frozenset[str] | None] = {
        a["friendly_id"]: frozenset(value_names[v] for v in a["values"]) for a in doc["base_attributes"]
    }
    for extended in doc.get("extended_attributes") or ():
        values[extended["friendly_id"]] = values[extended["values_from"]]
    names: dict[str, str] = {}
    parents: dict[str, str | None] = {}
    links: dict[str, tuple[str, ...]] = {}
    for file in sorted((data / "categories").glob("*.yml")):
        for node in _load_yaml(file):
            ident = SHOPIFY_GID + str(node["id"])
            names[ident], links[ident] = str(node["name"]), tuple(node.get("attributes") or ())
            parents.setdefault(ident, None)
            for child in node.get("children") or ():
                parents[SHOPIFY_GID + str(child)] = ident
    return Reference(str(root), _paths(names, parents), parents, links, values)


def read_bundle_file(path: Path) -> Reference:
    """tagger's bundled compact form (`tagger/taxonomy/bundled/*.json.gz`, format 1: categories as [id without the
    prefix, name, child ids, attribute handles]; attributes with `values`, `extractive`, or `values_from`), read here
    with gzip and json alone."""
    doc = json.loads(gzip.decompress(path.read_bytes()))
    if doc.get("format") != 1:
        raise ConformanceError(f"{path}: bundle format {doc.get('format')!r}, this checker reads 1")
    values: dict[str, frozenset[str] | None] = {}
    for attribute in doc["attributes"]:
        if attribute.get("extractive"):
            values[attribute["handle"]] = None
        elif "values" in attribute:
            values[attribute["handle"]] = frozenset(attribute["values"])
    for attribute in doc["attributes"]:  # shared value lists, once their owners are read
        if attribute["handle"] not in values:
            values[attribute["handle"]] = values[attribute["values_from"]]
    prefix = doc["id_prefix"]
    names: dict[str, str] = {}
    parents: dict[str, str | None] = {}
    links: dict[str, tuple[str, ...]] = {}
    for ident, name, children, handles in doc["categories"]:
        names[prefix + ident], links[prefix + ident] = name, tuple(handles)
        parents.setdefault(prefix + ident, None)
        for child in children:
            parents[prefix + child] = prefix + ident
    return Reference(str(path), _paths(names, parents), parents, links, values)


def _bundled_file(name: str) -> Path:
    return Path(str(files("tagger.taxonomy").joinpath("bundled", f"{name}.json.gz")))


READERS: dict[str, Reader] = {
    "yaml": read_tagger_yaml,
    "google": read_google,
    "shopify": read_shopify_folder,
    "shopify-file": read_bundle_file,
    "bundle": read_bundle_file,
}


@lru_cache(maxsize=8)
def read_reference(spec: str | None) -> Reference:
    """The reference for a taxonomy spec as `--taxonomy` takes it: None (the bundled default), a YAML file,
    `google:FILE`, `shopify:DIR` (or `shopify:FILE`, through the "shopify-file" reader when one is registered)."""
    if spec is None:
        from tagger._paths import bundled

        return read_tagger_yaml(bundled("taxonomies") / "default.yaml")
    if spec in ("shopify", "google"):  # the copies shipped with tagger
        return READERS["bundle"](_bundled_file(spec))
    kind, sep, rest = spec.partition(":")
    if sep and kind == "google":
        return READERS["google"](Path(rest))
    if sep and kind == "shopify":
        reader = READERS["shopify"] if Path(rest).is_dir() else READERS.get("shopify-file")
        if reader is None:
            raise ConformanceError(
                f"no independent reader for the Shopify file {rest}: register READERS['shopify-file']"
            )
        return reader(Path(rest))
    return READERS["yaml"](Path(spec))


_FULL_TEXT = Cleaner(CleaningConfig(title_tokens=10**9, field_tokens=10**9, description_tokens=10**9))


def cleaned_text(product: Product) -> str:
    """The product's text as cleaning leaves it, uncut: what the model was shown is a part of it."""
    return _FULL_TEXT.clean(product).product.text


def check(
    reference: Reference,
    product_id: str,
    category_id: str,
    category_path: Sequence[str],
    values: Mapping[str, Sequence[str]],
    text: str,
) -> None:
    """Raises ConformanceError, naming the product and the first problem, unless the record conforms."""
    where = f"product {product_id!r}"
    if category_id not in reference.paths:
        raise ConformanceError(f"{where}: category id {category_id!r} is not in {reference.source}")
    expected = reference.paths[category_id]
    if tuple(category_path) != expected:
        raise ConformanceError(
            f"{where}: category {category_id!r} has the path {_SEPARATOR.join(expected)!r}, "
            f"the record says {_SEPARATOR.join(category_path)!r}"
        )
    allowed = reference.allowed_attributes(category_id)
    for handle, items in values.items():
        if handle not in allowed or handle not in reference.values:
            raise ConformanceError(f"{where}: attribute {handle!r} does not belong to {_SEPARATOR.join(expected)!r}")
        closed = reference.values[handle]
        for item in items:
            if closed is not None and item not in closed:
                raise ConformanceError(f"{where}: {handle}={item!r} is not one of the attribute's values")
            if closed is None and (not item or item not in text):
                raise ConformanceError(f"{where}: {handle}={item!r} is not in the product's text")


def check_record(reference: Reference, record: TagRecord, product: Product) -> None:
    """`check` on a finished tag record of `product`."""
    text = cleaned_text(product)
    check(reference, product.id, record.category.id, record.category.path, record.attributes, text)
