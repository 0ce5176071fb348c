"""What is embedded on each side of retrieval: a product's query text and a category's text.

Each is a plain function, so that an index or a benchmark can take another one (benchmarks/bench_category_text.py
measures the variants below on the dev sets; README, "Which texts retrieval embeds", has the figures). A function's
name is part of the shortlist's name, and so of the result cache's key: rename one when what it embeds changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tagger.product import Product
from tagger.taxonomy import PATH_SEPARATOR, Category, Taxonomy

QueryText = Callable[[Product], str]
CategoryText = Callable[[Category, Taxonomy], str]

# A sentence ends at . ! or ? after a lower-case letter, then space and a capital: "Rs. 499" ends none. Kept simple:
# the cut only needs to keep the spec table that often follows the first sentence out of the query.
_SENTENCE_END = re.compile(r"(?<=[a-z)][.!?])\s+(?=[A-Z])")


def title_only(product: Product) -> str:
    return product.title


def title_brand(product: Product) -> str:
    """The title and, where given, the brand in brackets."""
    brand = product.fields.get("brand")
    return f"{product.title} ({brand})" if brand else product.title


def title_fields(product: Product) -> str:
    """The title and every field shown to the model (brand and whatever columns the user named)."""
    values = [v for v in product.fields.values() if v and v not in product.title]
    return f"{product.title} ({', '.join(values)})" if values else product.title


def first_sentence(text: str, limit: int = 200) -> str:
    """The description's first sentence (or its first `limit` characters when no sentence ends sooner)."""
    head = text.strip().split("\n", 1)[0][:limit]
    found = _SENTENCE_END.search(head)
    return head[: found.start()] if found else head


def title_sentence(product: Product) -> str:
    """The title and the description's first sentence (without the spec table that often follows it)."""
    sentence = first_sentence(product.description)
    return f"{product.title}. {sentence}" if sentence else product.title


def title_description(product: Product, chars: int = 1000) -> str:
    """The title and the first `chars` characters of the description (500: the reference query of issue 13)."""
    head = product.description[:chars].strip()
    return f"{product.title} {head}" if head else product.title


def full_path(category: Category, taxonomy: Taxonomy) -> str:
    """Every level's name, root first: "A > B > C"."""
    return category.full_path


def leaf(category: Category, taxonomy: Taxonomy) -> str:
    return category.name


def leaf_parent(category: Category, taxonomy: Taxonomy) -> str:
    """The last two levels: "Parent > Leaf" (a top-level category is its own name)."""
    return PATH_SEPARATOR.join(category.path[-2:])


def last_three_levels(category: Category, taxonomy: Taxonomy) -> str:
    """The last three levels: "Grandparent > Parent > Leaf"."""
    return PATH_SEPARATOR.join(category.path[-3:])


def leaf_then_path(category: Category, taxonomy: Taxonomy) -> str:
    """The leaf's name, then the full path: the leaf's name counts twice."""
    return category.name if category.depth == 1 else f"{category.name}: {category.full_path}"


def path_attributes(category: Category, taxonomy: Taxonomy) -> str:
    """The full path and the names of the category's attributes (its own and inherited)."""
    names = [a.name for a in taxonomy.attributes_for(category.id)]
    return f"{category.full_path} ({', '.join(names)})" if names else category.full_path


QUERY_TEXTS: dict[str, QueryText] = {
    "title": title_only,
    "title+brand": title_brand,
    "title+fields": title_fields,
    "title+sentence": title_sentence,
    "title+description[:250]": lambda p: title_description(p, 250),
    "title+description[:500]": lambda p: title_description(p, 500),
    "title+description[:1000]": title_description,
}
CATEGORY_TEXTS: dict[str, CategoryText] = {
    "path": full_path,
    "leaf": leaf,
    "parent>leaf": leaf_parent,
    "last 3 levels": last_three_levels,
    "leaf: path": leaf_then_path,
    "path (attributes)": path_attributes,
}
