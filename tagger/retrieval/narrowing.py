"""The retrieval parts a pipeline narrows with, built together so that one MiniLM model serves both."""

from __future__ import annotations

from collections.abc import Sequence

from tagger.retrieval.embeddings import Embedder
from tagger.retrieval.examples import DEFAULT_K, ExamplePool, PoolItem
from tagger.retrieval.shortlist import Shortlister
from tagger.taxonomy import Taxonomy

# Measured (README, "Large taxonomies"): on three Shopify-labeled dev sets, retrieval's own first guess (the nearest
# path; with a labeled pool, the nearest examples' vote) is right more often than the embedded 135M model choosing
# among the 10 nearest paths, with or without examples. So by default retrieval decides the category and the model
# fills the attributes; a larger model may do better with a shortlist (--shortlist 10).
DEFAULT_SHORTLIST = 1


def build_narrowing(
    taxonomy: Taxonomy, shortlist: int | None, pool: Sequence[PoolItem] | None, example_k: int = DEFAULT_K
) -> tuple[Shortlister | None, ExamplePool | None]:
    """A shortlister of `shortlist` paths and an example pool over `pool`, each only when asked for."""
    if not shortlist and pool is None:
        return None, None
    embedder = Embedder()
    return (
        Shortlister(taxonomy, embedder, shortlist) if shortlist else None,
        ExamplePool(pool, embedder, example_k) if pool is not None else None,
    )
