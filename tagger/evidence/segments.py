"""The title's leading words as a candidate for an extractive attribute that no pattern found: a brand the pool has
never seen ("Florsheim Men's Castellano Wingtip Oxford" -> "Florsheim").

Titles are mostly attribute values side by side, the brand first. The leading segment ends at the title's first
separator (a comma, a dash between spaces, a bracket), at the first word where another candidate starts, or at a
word of the category's own name, and is at most MAX_WORDS long. Only the pool's judge is offered segments: it learns
from the pool how often, for each attribute, the leading words are the value, so string matching alone never writes
one.
"""

from __future__ import annotations

from tagger.evidence.text import SEPARATOR, words
from tagger.product import Product
from tagger.records import Evidence, Span
from tagger.taxonomy import Category, Taxonomy

MAX_WORDS = 4


def leading_segment(product: Product, category: Category, candidates: dict[str, list[Evidence]]) -> Span | None:
    """The title's leading words up to the first boundary, or None when the title starts with a boundary or the
    segment is longer than MAX_WORDS."""
    title = product.title
    cut = SEPARATOR.search(title)
    head = title[: cut.start()] if cut else title
    starts = {s.start for found in candidates.values() for e in found for s in e.spans if s.field == "title"}
    named = {w.norm for level in category.path for w in words(level)}
    kept = []
    for word in words(head):
        if word.start in starts or word.norm in named:
            break
        kept.append(word)
    if not kept or len(kept) > MAX_WORDS or title[: kept[0].start].strip():
        return None
    start, end = kept[0].start, kept[-1].end
    return Span(field="title", start=start, end=end, text=title[start:end])


def with_segments(
    taxonomy: Taxonomy, product: Product, category: Category, candidates: dict[str, list[Evidence]]
) -> dict[str, list[Evidence]]:
    """The candidates, and the leading segment for every extractive attribute of the category that has none."""
    span = leading_segment(product, category, candidates)
    if span is None:
        return candidates
    offered = dict(candidates)
    for attribute in taxonomy.attributes_for(category.id):
        if attribute.extractive and not candidates.get(attribute.handle):
            evidence = Evidence(attribute=attribute.handle, value=span.text, source="text", spans=[span])
            offered[attribute.handle] = [evidence.model_copy(update={"matched": "segment"})]
    return offered
