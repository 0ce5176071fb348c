"""Taxonomies: the closed world every tag must belong to.

`load_taxonomy(spec)` takes `None` (the bundled default), a path to tagger's YAML format, `shopify` or `google`
(the copies shipped with tagger: Shopify's Standard Product Taxonomy 2025-08, Google's 2021-09-21), `shopify:DIR`
(a folder of Shopify's source files) or `google:FILE` (Google's `taxonomy-with-ids.<locale>.txt`).
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from pathlib import Path

from tagger._paths import bundled, cache_dir
from tagger.taxonomy.bundle import BUNDLED, load_bundled
from tagger.taxonomy.google import load_google_taxonomy
from tagger.taxonomy.model import PATH_SEPARATOR, Attribute, Category, Taxonomy, TaxonomyError
from tagger.taxonomy.shopify import load_shopify_taxonomy
from tagger.taxonomy.yaml_format import load_yaml_taxonomy, taxonomy_from_dict

__all__ = [
    "BUNDLED",
    "PATH_SEPARATOR",
    "Attribute",
    "Category",
    "Taxonomy",
    "TaxonomyError",
    "default_taxonomy_path",
    "load_taxonomy",
    "taxonomy_from_dict",
]

_CACHE_FORMAT = "4"  # 4: attributes carry aliases


def default_taxonomy_path() -> Path:
    return bundled("taxonomies") / "default.yaml"


def load_taxonomy(spec: str | Path | None = None) -> Taxonomy:
    if spec is None:
        return load_yaml_taxonomy(default_taxonomy_path())
    text = str(spec)
    if isinstance(spec, str) and spec in BUNDLED:  # a file of that name is still reachable as ./shopify
        return load_bundled(spec)
    kind, sep, rest = text.partition(":")
    if sep and kind == "shopify":
        root = _existing(rest, "Shopify taxonomy folder")
        return _cached(root, sorted((root / "data").rglob("*.yml")), load_shopify_taxonomy)
    if sep and kind == "google":
        return load_google_taxonomy(_existing(rest, "Google taxonomy file"))
    return load_yaml_taxonomy(_existing(text, "taxonomy file"))


def _existing(text: str, what: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise TaxonomyError(f"{what} not found: {path}")
    return path


def _cached(root: Path, sources: list[Path], load: Callable[[Path], Taxonomy]) -> Taxonomy:
    """Parsing Shopify's 100k lines of YAML takes seconds; a pickle keyed by the files' identity takes milliseconds."""
    digest = hashlib.sha256(_CACHE_FORMAT.encode())
    for source in sources:
        stat = source.stat()
        digest.update(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    path = cache_dir("taxonomies") / f"{digest.hexdigest()[:24]}.pickle"
    if path.is_file():
        try:
            with path.open("rb") as handle:
                cached = pickle.load(handle)  # noqa: S301 - our own cache file, written below
            if isinstance(cached, Taxonomy):
                return cached
        except Exception:  # a truncated or stale cache entry is rebuilt, never trusted
            path.unlink(missing_ok=True)
    taxonomy: Taxonomy = load(root)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        pickle.dump(taxonomy, handle, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return taxonomy
