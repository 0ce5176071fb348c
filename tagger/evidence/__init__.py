"""Candidate attribute values with evidence, found by string matching (no model), and the `lexical` baseline."""

from tagger.evidence.lexical import LexicalTagger, choose
from tagger.evidence.matcher import EvidenceMatcher, spans_of
from tagger.evidence.pool import PoolLexicon, PoolSettings

__all__ = ["EvidenceMatcher", "LexicalTagger", "PoolLexicon", "PoolSettings", "choose", "spans_of"]
