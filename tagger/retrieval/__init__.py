"""Retrieval: sentence embeddings of products and category paths (the MiniLM baseline; shortlists build on it)."""

from tagger.retrieval.embeddings import CategoryIndex, Embedder
from tagger.retrieval.nearest import NearestCategoryTagger

__all__ = ["CategoryIndex", "Embedder", "NearestCategoryTagger"]
