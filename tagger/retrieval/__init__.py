"""Retrieval: sentence embeddings of products and category paths: the MiniLM baseline, category shortlists and
few-shot examples from a labeled pool."""

from tagger.retrieval.embeddings import CategoryIndex, Embedder
from tagger.retrieval.examples import ExamplePool, PoolItem, read_pool
from tagger.retrieval.narrowing import build_narrowing
from tagger.retrieval.nearest import NearestCategoryTagger
from tagger.retrieval.shortlist import Shortlister

__all__ = [
    "CategoryIndex",
    "Embedder",
    "ExamplePool",
    "NearestCategoryTagger",
    "PoolItem",
    "Shortlister",
    "build_narrowing",
    "read_pool",
]
