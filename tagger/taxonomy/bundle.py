"""Taxonomies shipped inside tagger: Shopify's and Google's, as compact gzipped JSON in `bundled/`.

Parsing Shopify's 100k lines of source YAML takes seconds; the same taxonomy as one gzipped JSON loads in a fraction
of a second, in a fresh process, with no cache. `scripts/bundle_taxonomies.py` writes the files from the source
folders with the source loaders (so a bundle is exactly what `shopify:DIR` or `google:FILE` gives), and checks them.

The format (`FORMAT` 1): {format, name, version, id_prefix, attributes: [...], categories: [[id, name, [child ids],
[attribute handles]], ...], tags, source}. Category ids are stored without `id_prefix`; an attribute omits its
default fields, and an attribute whose values come from another (`values_from`) omits its values and aliases.
`source` (provenance: upstream, license, source files' SHA-256) is not part of the taxonomy.
"""

from __future__ import annotations

import gzip
import json
from importlib.resources import files
from typing import Any

from tagger.taxonomy.model import Attribute, Category, Taxonomy, TaxonomyError

FORMAT = 1
BUNDLED = ("shopify", "google")


def load_bundled(name: str) -> Taxonomy:
    """`shopify` (Shopify's Standard Product Taxonomy) or `google` (Google's product taxonomy), shipped with tagger."""
    if name not in BUNDLED:
        raise TaxonomyError(f"no bundled taxonomy {name!r} (there are {', '.join(BUNDLED)})")
    return taxonomy_from_bundle(read_bundle(name))


def read_bundle(name: str) -> dict[str, Any]:
    resource = files("tagger.taxonomy").joinpath("bundled", f"{name}.json.gz")
    doc: dict[str, Any] = json.loads(gzip.decompress(resource.read_bytes()))
    return doc


def encode_bundle(doc: dict[str, Any]) -> bytes:
    """The bytes of a bundle file: the same document always gives the same bytes (no time stamp, no file name)."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def bundle_from_taxonomy(taxonomy: Taxonomy) -> dict[str, Any]:
    prefix = _id_prefix(list(taxonomy.categories))
    cut = len(prefix)
    return {
        "format": FORMAT,
        "name": taxonomy.name,
        "version": taxonomy.version,
        "id_prefix": prefix,
        "attributes": _attribute_docs(list(taxonomy.attributes.values())),
        "categories": [
            [c.id[cut:], c.name, [child[cut:] for child in c.children], list(c.attributes)]
            for c in taxonomy.categories.values()
        ],
        "tags": list(taxonomy.tags),
    }


def taxonomy_from_bundle(doc: dict[str, Any]) -> Taxonomy:
    if doc.get("format") != FORMAT:
        raise TaxonomyError(f"bundled taxonomy {doc.get('name')!r}: format {doc.get('format')!r}, expected {FORMAT}")
    prefix = doc["id_prefix"]
    attributes: dict[str, Attribute] = {}
    for raw in doc["attributes"]:
        shared = attributes[raw["values_from"]] if "values_from" in raw and "values" not in raw else None
        attributes[raw["handle"]] = Attribute(
            handle=raw["handle"],
            name=raw["name"],
            values=shared.values if shared else tuple(raw.get("values", ())),
            multi=raw.get("multi", False),
            extractive=raw.get("extractive", False),
            description=raw.get("description", ""),
            values_from=raw.get("values_from"),
            aliases=shared.aliases if shared else {k: tuple(v) for k, v in raw.get("aliases", {}).items()},
        )
    categories = [
        Category(id=prefix + ident, name=name, children=[prefix + c for c in children], attributes=tuple(handles))
        for ident, name, children, handles in doc["categories"]
    ]
    return Taxonomy(doc["name"], doc["version"], categories, attributes.values(), doc.get("tags", ()))


def _id_prefix(ids: list[str]) -> str:
    """What every id starts with, up to a "/" (Shopify's `gid://shopify/TaxonomyCategory/`), else nothing."""
    first = ids[0] if ids else ""
    prefix = first[: first.rfind("/") + 1]
    return prefix if all(i.startswith(prefix) for i in ids) else ""


def _attribute_docs(attributes: list[Attribute]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    written: dict[str, Attribute] = {}
    for a in attributes:
        doc: dict[str, Any] = {"handle": a.handle, "name": a.name}
        for key, value, default in (
            ("description", a.description, ""),
            ("multi", a.multi, False),
            ("extractive", a.extractive, False),
            ("values_from", a.values_from, None),
        ):
            if value != default:
                doc[key] = value
        base = written.get(a.values_from) if a.values_from else None
        # Shopify's extended attributes share their base's list (written before them): stored once.
        if base is None or (base.values, base.aliases) != (a.values, a.aliases):
            if a.values:
                doc["values"] = list(a.values)
            if a.aliases:
                doc["aliases"] = {k: list(v) for k, v in a.aliases.items()}
        docs.append(doc)
        written[a.handle] = a
    return docs
