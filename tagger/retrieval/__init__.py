"""Retrieval: sentence embeddings of products and category paths: the MiniLM baseline, category shortlists and
few-shot examples from a labeled pool, and the k-NN baseline over that pool."""

from tagger.retrieval.embeddings import CategoryIndex, Embedder
from tagger.retrieval.examples import ExamplePool, PoolItem, read_pool
from tagger.retrieval.nearest import NearestCategoryTagger, NearestExampleTagger
from tagger.retrieval.shortlist import Shortlister

__all__ = [
    "CategoryIndex",
    "Embedder",
    "ExamplePool",
    "NearestCategoryTagger",
    "NearestExampleTagger",
    "PoolItem",
    "Shortlister",
    "read_pool",
]
