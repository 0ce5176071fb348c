"""Write (or check) the taxonomies shipped in tagger/taxonomy/bundled/ from their source folders.

    python scripts/bundle_taxonomies.py --data-root ../shared/data          # write
    python scripts/bundle_taxonomies.py --data-root ../shared/data --check  # exit 1 if the shipped files differ

DATA_ROOT/shopify-taxonomy is a copy of github.com/Shopify/product-taxonomy (data/, VERSION, LICENSE,
PROVENANCE.txt). The Shopify bundle is the taxonomy `shopify:DIR` gives. The Google bundle is read from the copy of
Google's 2021-09-21 list inside Shopify's repository (ids and full names, MIT), through the parser of `google:FILE`:
DATA_ROOT/google-taxonomy/taxonomy-with-ids.en-US.txt has the same ids, tree and order, but 9 names there are
mojibake (UTF-8 read as cp1251: "BoutonniГЁre"); the script checks that those are the only differences.
Bundles are written by tagger.taxonomy.bundle with no time stamp: the same sources give the same bytes. The license
and provenance texts are copied beside the bundles.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tagger.taxonomy.bundle import bundle_from_taxonomy, encode_bundle  # noqa: E402
from tagger.taxonomy.google import load_google_taxonomy, parse_google_taxonomy  # noqa: E402
from tagger.taxonomy.model import Taxonomy  # noqa: E402
from tagger.taxonomy.shopify import load_shopify_taxonomy  # noqa: E402

OUT = ROOT / "tagger" / "taxonomy" / "bundled"
GOOGLE_FILE = "taxonomy-with-ids.en-US.txt"
# Shopify's repository carries Google's list (ids and full names) under its MIT license.
GOOGLE_VERSION = "2021-09-21"
SHOPIFY_GOOGLE_COPY = f"data/integrations/google/{GOOGLE_VERSION}/full_names.yml"


def sha256s(root: Path, paths: list[Path]) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(paths)}


def shopify_bundle(source: Path) -> dict[str, Any]:
    doc = bundle_from_taxonomy(load_shopify_taxonomy(source))
    inputs = [*(source / "data").glob("*.yml"), *(source / "data" / "categories").glob("*.yml"), source / "VERSION"]
    doc["source"] = {
        "title": "Shopify Standard Product Taxonomy",
        "upstream": "https://github.com/Shopify/product-taxonomy",
        "license": "MIT (Copyright (c) Shopify); see LICENSE-shopify.txt",
        "provenance": "PROVENANCE-shopify.txt",
        "files_sha256": sha256s(source, inputs),
    }
    return doc


def google_from_shopify_copy(shopify_source: Path) -> Taxonomy:
    rows = yaml.load((shopify_source / SHOPIFY_GOOGLE_COPY).read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    lines = [f"# Google_Product_Taxonomy_Version: {GOOGLE_VERSION}", *(f"{r['id']} - {r['full_name']}" for r in rows)]
    return parse_google_taxonomy(lines, str(shopify_source / SHOPIFY_GOOGLE_COPY))


def mojibake_only(bundled: Taxonomy, google_file: Path) -> bool:
    """The file's taxonomy differs from `bundled` only in names that are bundled names garbled through cp1251."""
    other = load_google_taxonomy(google_file)
    if (other.version, list(other.categories)) != (bundled.version, list(bundled.categories)):
        return False
    pairs = [(c, other.categories[c.id]) for c in bundled.categories.values()]
    if any((c.parent_id, c.children) != (o.parent_id, o.children) for c, o in pairs):
        return False
    return all(c.name == o.name or c.name.encode("utf-8").decode("cp1251", "replace") == o.name for c, o in pairs)


def google_bundle(source: Path, shopify_source: Path) -> dict[str, Any]:
    taxonomy = google_from_shopify_copy(shopify_source)
    if not mojibake_only(taxonomy, source / GOOGLE_FILE):
        raise SystemExit(f"{source / GOOGLE_FILE} differs from Shopify's copy {SHOPIFY_GOOGLE_COPY} beyond mojibake")
    doc = bundle_from_taxonomy(taxonomy)
    doc["source"] = {
        "title": f"Google product taxonomy {GOOGLE_VERSION} (en-US)",
        "upstream": "https://www.google.com/basepages/producttype/taxonomy-with-ids.en-US.txt",
        "read_from": f"Shopify/product-taxonomy {SHOPIFY_GOOGLE_COPY}",
        "license": "as distributed in Shopify's repository: MIT (Copyright (c) Shopify); see LICENSE-shopify.txt",
        "provenance": "README.md",
        "files_sha256": sha256s(shopify_source, [shopify_source / SHOPIFY_GOOGLE_COPY]),
    }
    return doc


def outputs(data_root: Path) -> dict[str, bytes]:
    shopify, google = data_root / "shopify-taxonomy", data_root / "google-taxonomy"
    return {
        "shopify.json.gz": encode_bundle(shopify_bundle(shopify)),
        "google.json.gz": encode_bundle(google_bundle(google, shopify)),
        "LICENSE-shopify.txt": (shopify / "LICENSE").read_bytes(),
        "PROVENANCE-shopify.txt": (shopify / "PROVENANCE.txt").read_bytes(),
    }


def _same(path: Path, data: bytes) -> bool:
    """Compared after decompression: another zlib may compress the same bytes differently."""
    if not path.is_file():
        return False
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()) == gzip.decompress(data)
    return path.read_bytes() == data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, required=True, help="holds shopify-taxonomy/ and google-taxonomy/")
    parser.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    args = parser.parse_args()
    files = outputs(args.data_root)
    if args.check:
        stale = [name for name, data in files.items() if not _same(OUT / name, data)]
        for name in stale:
            print(f"differs from its source: {OUT / name}", file=sys.stderr)
        return 1 if stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (OUT / name).write_bytes(data)
        print(f"{OUT / name}: {len(data):,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
