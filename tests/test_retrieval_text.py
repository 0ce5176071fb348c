"""The texts retrieval embeds (tagger.retrieval.texts) and the ranked categories with their similarities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tagger.product import Product
from tagger.retrieval import CategoryIndex, Embedder, Shortlister
from tagger.retrieval.examples import example_text
from tagger.retrieval.shortlist import CONFIDENCE_TEMPERATURE, category_text, query_text, softmax_share
from tagger.retrieval.texts import (
    CATEGORY_TEXTS,
    QUERY_TEXTS,
    first_sentence,
    full_path,
    last_three_levels,
    leaf,
    leaf_parent,
    leaf_then_path,
    path_attributes,
    title_brand,
    title_description,
    title_fields,
    title_only,
    title_sentence,
)
from tagger.taxonomy import Taxonomy

KETTLE = Product(
    "k1",
    "Stainless steel electric kettle 1.7 L",
    "A fast kettle for tea and coffee. Boils 1.7 litres in 3 minutes. Specifications: Rs. 499, Model No. K-17",
    {"brand": "Brewmaster", "color": "Silver"},
)
BARE = Product("b1", "Ceramic coffee mug 350 ml")
SPECS = Product("s1", "AW Bellies", "Key Features of AW Bellies Price: Rs. 499 Material: Synthetic", {"brand": "AW"})


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def test_query_texts_on_fixture_products() -> None:
    assert title_only(KETTLE) == KETTLE.title
    assert title_brand(KETTLE) == "Stainless steel electric kettle 1.7 L (Brewmaster)"
    assert title_fields(KETTLE) == "Stainless steel electric kettle 1.7 L (Brewmaster, Silver)"
    assert title_fields(SPECS) == "AW Bellies"  # the brand is in the title already: not repeated
    assert title_sentence(KETTLE) == "Stainless steel electric kettle 1.7 L. A fast kettle for tea and coffee."
    assert title_description(KETTLE) == f"{KETTLE.title} {KETTLE.description}"
    assert title_description(KETTLE, chars=5) == f"{KETTLE.title} A fas"
    long = Product("l1", "Kettle", "word " * 400)
    assert title_description(long) == "Kettle " + ("word " * 200).strip()  # the first 1,000 characters
    for text in QUERY_TEXTS.values():  # a product without description or fields is searched by its title
        assert text(BARE) == BARE.title


def test_first_sentence_ends_at_a_sentence_not_at_an_abbreviation() -> None:
    assert first_sentence(SPECS.description) == SPECS.description  # "Rs. 499" ends no sentence
    assert first_sentence("Soft cotton shirt. Machine wash.") == "Soft cotton shirt."
    assert first_sentence("First line\nsecond line") == "First line"
    assert first_sentence("x" * 500) == "x" * 200
    assert first_sentence("") == ""


def test_the_defaults_are_the_measured_texts(default_taxonomy: Taxonomy) -> None:
    """Category retrieval: title + description against "Parent > Leaf"; pools: title + brand, product to product."""
    assert query_text(KETTLE) == f"{KETTLE.title} {KETTLE.description}"
    assert query_text(BARE) == BARE.title
    deep = max(default_taxonomy.categories.values(), key=lambda c: c.depth)
    assert category_text(deep, default_taxonomy) == " > ".join(deep.path[-2:])
    assert example_text(KETTLE) == title_brand(KETTLE)


def test_softmax_share_of_the_first() -> None:
    assert softmax_share([0.5]) == 1.0
    assert softmax_share([0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.25)
    assert softmax_share([0.7, 0.5], temperature=0.1) == pytest.approx(1 / (1 + np.exp(-2)))
    near, far = softmax_share([0.6, 0.59, 0.3]), softmax_share([0.6, 0.4, 0.3])
    assert 1 / 3 < near < far < 1  # a clear winner is surer than a close one
    assert softmax_share([0.6, 0.4], CONFIDENCE_TEMPERATURE / 2) > softmax_share([0.6, 0.4])  # colder is sharper
    with pytest.raises(ValueError, match="no similarities"):
        softmax_share([])


def test_category_texts_on_the_default_taxonomy(default_taxonomy: Taxonomy) -> None:
    deep = max(default_taxonomy.categories.values(), key=lambda c: c.depth)
    root = next(c for c in default_taxonomy.categories.values() if c.depth == 1)
    assert deep.depth >= 2
    assert full_path(deep, default_taxonomy) == " > ".join(deep.path)
    assert leaf(deep, default_taxonomy) == deep.name
    assert leaf_parent(deep, default_taxonomy) == f"{deep.path[-2]} > {deep.name}"
    assert leaf_then_path(deep, default_taxonomy) == f"{deep.name}: {deep.full_path}"
    assert leaf_then_path(root, default_taxonomy) == leaf_parent(root, default_taxonomy) == root.name
    names = [a.name for a in default_taxonomy.attributes_for(deep.id)]
    assert names and path_attributes(deep, default_taxonomy) == f"{deep.full_path} ({', '.join(names)})"
    assert last_three_levels(deep, default_taxonomy) == " > ".join(deep.path[-3:])
    assert set(CATEGORY_TEXTS) == {"path", "leaf", "parent>leaf", "last 3 levels", "leaf: path", "path (attributes)"}


def test_ranked_scores_are_sorted_cosines_consistent_with_the_shortlist(
    default_taxonomy: Taxonomy, embedder: Embedder
) -> None:
    shortlister = Shortlister(default_taxonomy, embedder, k=5)
    products = [KETTLE, BARE, SPECS]
    ranked = shortlister.ranked(products)
    assert [[c for c, _ in row] for row in ranked] == shortlister.shortlist(products)
    assert [len(row) for row in ranked] == [5, 5, 5]
    queries = embedder.encode([query_text(p) for p in products])
    index = shortlister.index
    for row, query in zip(ranked, queries, strict=True):
        scores = [s for _, s in row]
        assert scores == sorted(scores, reverse=True)
        assert all(-1.0 <= s <= 1.0 + 1e-6 for s in scores)
        for category, similarity in row:  # each score is the cosine of the query and that category's vector
            position = index.categories.index(category)
            assert similarity == pytest.approx(float(index.vectors[position] @ query), abs=1e-5)
        # no category outside the list is nearer than its last entry
        listed = {c.id for c, _ in row}
        rest = [float(v @ query) for c, v in zip(index.categories, index.vectors, strict=True) if c.id not in listed]
        assert max(rest) <= scores[-1] + 1e-6
    assert [len(row) for row in shortlister.ranked(products, k=2)] == [2, 2, 2]
    assert shortlister.ranked([]) == []


def test_the_shortlist_name_says_which_texts(default_taxonomy: Taxonomy, embedder: Embedder) -> None:
    """The name is in every record's provenance and the result cache's key: other texts, another name."""
    default = Shortlister(default_taxonomy, embedder, k=1)
    assert default.name == "shortlist:all-MiniLM-L6-v2:k=1:title_description/leaf_parent"
    assert Shortlister(default_taxonomy, embedder, 1, title_brand, full_path).name.endswith(":title_brand/full_path")


def test_a_category_text_is_its_own_cache_entry(
    default_taxonomy: Taxonomy, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vectors of one category text are never read back for another: the cache key holds the texts."""
    monkeypatch.setenv("TAGGER_CACHE_DIR", str(tmp_path))
    by_path = CategoryIndex(default_taxonomy, embedder)
    by_leaf = CategoryIndex(default_taxonomy, embedder, leaf)
    assert not np.allclose(by_path.vectors, by_leaf.vectors)
    assert np.array_equal(CategoryIndex(default_taxonomy, embedder, leaf).vectors, by_leaf.vectors)
    leaf_only = embedder.encode([c.name for c in by_leaf.categories])
    assert np.abs(by_leaf.vectors - leaf_only).max() < 1e-5
