"""The `lexical` baseline: each attribute's best supported value, with its evidence, and no model call.

What string matching alone gets (the bar a model's attributes must clear): for a single-valued attribute the best
candidate (the first field, the longest span; for extractive values the longest found), for a multi-valued one every
candidate. The category is the one it is given (attribute extraction evals give the gold one).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from tagger.clean import Cleaner
from tagger.evidence.matcher import EvidenceMatcher
from tagger.evidence.pool import PoolLexicon, PoolSettings
from tagger.product import Product
from tagger.records import CategoryEvidence, CategoryRef, Evidence, Record, TagRecord, Usage, model_free_provenance
from tagger.retrieval.examples import PoolItem
from tagger.taxonomy import Category, Taxonomy


def choose(candidates: dict[str, list[Evidence]], multi: dict[str, bool]) -> list[Evidence]:
    """The evidence of the values written: the first candidate of a single-valued attribute, all of a multi one."""
    chosen: list[Evidence] = []
    for handle, found in candidates.items():
        chosen += found if multi.get(handle) else found[:1]
    return chosen


class LexicalTagger:
    """Same `tag_batch` as the LLM pipeline and the retrieval baselines, so the eval harness runs it beside them."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        pool: Sequence[PoolItem] | PoolLexicon | None = None,
        settings: PoolSettings | None = None,
        cleaner: Cleaner | None = None,
    ) -> None:
        self.taxonomy = taxonomy
        self.cleaner = cleaner or Cleaner()
        self.matcher = EvidenceMatcher(taxonomy, pool, settings)
        lexicon = self.matcher.lexicon
        strategy = "lexical" + (f":pool={len(lexicon.items)}" if lexicon is not None else "")
        self.provenance = model_free_provenance(taxonomy, "lexical", "lexical", strategy, self.cleaner.config.hash)

    def candidates(self, product: Product, category: Category) -> dict[str, list[Evidence]]:
        """What is written from: the matcher's candidates (a benchmark's judged arm decides among them first)."""
        return self.matcher.candidates(product, category)

    def tag(self, product: Product, category: Category) -> TagRecord:
        start = time.perf_counter()
        cleaned = self.cleaner.clean(product)
        candidates = self.candidates(cleaned.product, category)
        multi = {a.handle: a.multi for a in self.taxonomy.attributes_for(category.id)}
        evidence = choose(candidates, multi)
        attributes: dict[str, list[str]] = {}
        for item in evidence:
            attributes.setdefault(item.attribute, []).append(item.value)
        provenance = self.provenance.model_copy(update={"truncated": cleaned.truncated})
        return TagRecord(
            id=product.id,
            category=CategoryRef(id=category.id, path=list(category.path), evidence=CategoryEvidence(source="given")),
            attributes=attributes,
            evidence=evidence,
            usage=Usage(seconds=round(time.perf_counter() - start, 6)),
            provenance=provenance,
        )

    def tag_batch(self, products: Sequence[Product], categories: Sequence[Category] | None = None) -> list[Record]:
        if categories is None:
            raise ValueError("the lexical baseline tags attributes of a given category: pass `categories`")
        return [self.tag(p, c) for p, c in zip(products, categories, strict=True)]

    def close(self) -> None:
        pass
