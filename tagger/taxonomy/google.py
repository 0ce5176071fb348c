"""Google's product taxonomy, `taxonomy-with-ids.<locale>.txt`: lines of `ID - A > B > C`, no attributes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from tagger.taxonomy.model import PATH_SEPARATOR, Category, Taxonomy, TaxonomyError

_VERSION = re.compile(r"#\s*Google_Product_Taxonomy_Version:\s*(\S+)")


def load_google_taxonomy(path: Path) -> Taxonomy:
    return parse_google_taxonomy(path.read_text(encoding="utf-8").splitlines(), str(path))


def parse_google_taxonomy(lines: Iterable[str], source: str) -> Taxonomy:
    version = "unknown"
    by_path: dict[tuple[str, ...], Category] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            match = _VERSION.match(line)
            version = match.group(1) if match else version
            continue
        ident, sep, full_path = line.partition(" - ")
        if not sep or not ident.strip().isdigit():
            raise TaxonomyError(f"{source}:{number}: expected 'ID - A > B', got {line!r}")
        names = tuple(full_path.strip().split(PATH_SEPARATOR))
        parent = by_path.get(names[:-1]) if len(names) > 1 else None
        if len(names) > 1 and parent is None:
            raise TaxonomyError(f"{source}:{number}: parent of {full_path!r} is not listed before it")
        by_path[names] = Category(id=ident.strip(), name=names[-1], parent_id=parent.id if parent else None)
    return Taxonomy("google", version, by_path.values(), [])
