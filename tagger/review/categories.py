"""The category picker's search: every word of the query in the path, names that match first, shallow first.
A precomputed lowercase index keeps it to a few milliseconds on Shopify's 10,595 categories."""

from __future__ import annotations

import re

from tagger.taxonomy import Taxonomy


class CategoryIndex:
    def __init__(self, taxonomy: Taxonomy) -> None:
        self._rows = sorted(
            ((c.full_path.lower(), c.name.lower(), c.depth, c.id, c.full_path) for c in taxonomy.categories.values()),
            key=lambda r: (r[2], r[0]),
        )

    def search(self, query: str, limit: int = 30) -> list[tuple[str, str]]:
        """(id, full path) of the best matches."""
        words = [w for w in re.split(r"\W+", query.lower()) if w]
        if not words:
            return []
        in_name: list[tuple[str, str]] = []
        in_path: list[tuple[str, str]] = []
        for path, name, _depth, cid, full in self._rows:  # already shallow first
            if all(w in path for w in words):
                (in_name if all(w in name for w in words) else in_path).append((cid, full))
                if len(in_name) >= limit:
                    break
        return (in_name + in_path)[:limit]
