"""The taxonomy: a category tree, attributes with their allowed values, and the links between them.

Every loader (our YAML, Shopify, Google) produces this one in-memory shape, so the rest of the pipeline never
knows where a taxonomy came from.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

from tagger.errors import TaggerError

PATH_SEPARATOR = " > "


class TaxonomyError(TaggerError, ValueError):
    """A taxonomy file is malformed or inconsistent."""


@dataclass(frozen=True)
class Attribute:
    """One attribute. `values` is the closed list; an extractive attribute has none and takes a span of the text.

    `aliases` maps a value to other names that mean it (an abbreviation, a spelling without accents): text that says
    "PVC" is evidence for "Polyvinyl chloride (PVC)". An alias is never a value itself and belongs to one value only,
    so it can be read back to exactly one value; the model still answers with the values.
    """

    handle: str
    name: str
    values: tuple[str, ...] = ()
    multi: bool = False
    extractive: bool = False
    description: str = ""
    values_from: str | None = None  # the attribute whose value list this one shares (Shopify's extended attributes)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.extractive and self.values:
            raise TaxonomyError(f"attribute {self.handle!r}: an extractive attribute cannot list values")
        if not self.extractive and not self.values:
            raise TaxonomyError(f"attribute {self.handle!r}: no values (mark it extractive for free text)")
        if self.aliases:
            self._check_aliases()

    def _check_aliases(self) -> None:
        values = {v.casefold() for v in self.values}
        owner: dict[str, str] = {}
        for value, aliases in self.aliases.items():
            if value not in self.values:
                raise TaxonomyError(f"attribute {self.handle!r}: aliases for {value!r}, which is not one of its values")
            for alias in aliases:
                key = alias.casefold()
                if not alias.strip() or key in values:
                    raise TaxonomyError(f"attribute {self.handle!r}: alias {alias!r} of {value!r} is empty or a value")
                if owner.setdefault(key, value) != value:
                    raise TaxonomyError(
                        f"attribute {self.handle!r}: alias {alias!r} belongs to both {owner[key]!r} and {value!r}"
                    )


@dataclass
class Category:
    id: str
    name: str
    parent_id: str | None = None
    children: list[str] = field(default_factory=list)
    attributes: tuple[str, ...] = ()  # handles linked to this node itself; descendants inherit them
    path: tuple[str, ...] = ()  # names from the root to this node, filled in by Taxonomy

    @property
    def full_path(self) -> str:
        return PATH_SEPARATOR.join(self.path)

    @property
    def depth(self) -> int:
        return len(self.path)


class Taxonomy:
    """A validated taxonomy. Build it with the loaders in `tagger.taxonomy`."""

    def __init__(
        self,
        name: str,
        version: str,
        categories: Iterable[Category],
        attributes: Iterable[Attribute],
        tags: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.version = version
        self.categories: dict[str, Category] = {}
        for category in categories:
            if category.id in self.categories:
                raise TaxonomyError(f"duplicate category id {category.id!r}")
            self.categories[category.id] = category
        self.attributes: dict[str, Attribute] = {}
        for attribute in attributes:
            if attribute.handle in self.attributes:
                raise TaxonomyError(f"duplicate attribute handle {attribute.handle!r}")
            self.attributes[attribute.handle] = attribute
        self.tags: tuple[str, ...] = tuple(dict.fromkeys(tags))
        self._link_tree()
        self._check_links()

    def _link_tree(self) -> None:
        for category in self.categories.values():
            if category.parent_id is not None and category.parent_id not in self.categories:
                raise TaxonomyError(f"category {category.id!r}: unknown parent {category.parent_id!r}")
            unknown = [c for c in category.children if c not in self.categories]
            if unknown:
                raise TaxonomyError(f"category {category.id!r}: unknown children {unknown}")
        for category in list(self.categories.values()):
            for child_id in category.children:
                child = self.categories[child_id]
                if child.parent_id not in (None, category.id):
                    raise TaxonomyError(f"category {child_id!r} has two parents")
                child.parent_id = category.id
        for category in self.categories.values():
            if category.parent_id is not None:
                siblings = self.categories[category.parent_id].children
                if category.id not in siblings:
                    siblings.append(category.id)
        for root in self.roots:
            self._fill_paths(root, ())

    def _fill_paths(self, category: Category, prefix: tuple[str, ...]) -> None:
        # Iterative, so that a deep or cyclic file cannot blow the recursion limit.
        stack = [(category, prefix)]
        seen: set[str] = set()
        while stack:
            node, above = stack.pop()
            if node.id in seen:
                raise TaxonomyError(f"category {node.id!r} is its own ancestor")
            seen.add(node.id)
            node.path = (*above, node.name)
            stack.extend((self.categories[c], node.path) for c in node.children)

    def _check_links(self) -> None:
        for category in self.categories.values():
            if not category.path:
                raise TaxonomyError(f"category {category.id!r} is not reachable from a root")
            missing = [h for h in category.attributes if h not in self.attributes]
            if missing:
                raise TaxonomyError(f"category {category.id!r} links unknown attributes {missing}")
        paths: dict[str, str] = {}
        for category in self.categories.values():
            other = paths.setdefault(category.full_path, category.id)
            if other != category.id:
                raise TaxonomyError(f"categories {other!r} and {category.id!r} share the path {category.full_path!r}")

    # --- lookups -------------------------------------------------------------------------------------------------

    @property
    def roots(self) -> list[Category]:
        return [c for c in self.categories.values() if c.parent_id is None]

    @cached_property
    def by_path(self) -> dict[str, Category]:
        return {c.full_path: c for c in self.categories.values()}

    @cached_property
    def fingerprint(self) -> str:
        """A hash of the content (tree, attributes, values, tags): a version string alone may not change on an edit."""
        content = {
            "categories": [(c.id, c.path, c.attributes) for c in self.categories.values()],
            "attributes": [_attribute_content(a) for a in self.attributes.values()],
            "tags": self.tags,
        }
        return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()[:16]

    @property
    def max_depth(self) -> int:
        return max((c.depth for c in self.categories.values()), default=0)

    @property
    def value_count(self) -> int:
        """Distinct attribute values: a list shared through `values_from` counts once."""
        return sum(len(a.values) for a in self.attributes.values() if a.values_from is None)

    def ancestors(self, category_id: str) -> list[Category]:
        """The category and its ancestors, root first."""
        chain: list[Category] = []
        node: Category | None = self.categories[category_id]
        while node is not None:
            chain.append(node)
            node = self.categories[node.parent_id] if node.parent_id is not None else None
        return chain[::-1]

    def attributes_for(self, category_id: str) -> list[Attribute]:
        """The attributes of a category: its own and those inherited from every ancestor, root's first."""
        handles = dict.fromkeys(h for node in self.ancestors(category_id) for h in node.attributes)
        return [self.attributes[h] for h in handles]

    def descendants(self, category_id: str) -> Iterator[Category]:
        stack = [category_id]
        while stack:
            node = self.categories[stack.pop()]
            yield node
            stack.extend(node.children)

    def find(self, query: str, limit: int = 20) -> list[Category]:
        """Categories whose path contains every word of `query` (case-insensitive), shallowest first."""
        words = [w for w in re.split(r"\W+", query.lower()) if w]
        hits = [c for c in self.categories.values() if all(w in c.full_path.lower() for w in words)]
        hits.sort(key=lambda c: (not all(w in c.name.lower() for w in words), c.depth, c.full_path))
        return hits[:limit]

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "categories": len(self.categories),
            "top_level": len(self.roots),
            "max_depth": self.max_depth,
            "attributes": len(self.attributes),
            "values": self.value_count,
            "extractive_attributes": sum(a.extractive for a in self.attributes.values()),
            "tags": len(self.tags),
        }


def _attribute_content(attribute: Attribute) -> tuple[object, ...]:
    a = attribute
    content: tuple[object, ...] = (a.handle, a.name, a.values, a.multi, a.extractive, a.values_from)
    # Aliases are added only where there are some, so that a taxonomy without any keeps its earlier fingerprint
    # (and the result cache entries keyed by it).
    return (*content, sorted(a.aliases.items())) if a.aliases else content
