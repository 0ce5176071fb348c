"""Candidate values with evidence: for a product and its category, every value of each attribute that the product's
text supports, with the spans that support it.

A closed value is supported by its name or an alias on word boundaries (after normalization: case, plurals,
possessives, hyphens, units), or by an amount its range holds ("128GB" for "128 GB", "48 GB" for "32-64 GB"). An
extractive attribute named as a gender, an age, a colour or an amount is supported by the title's words and amounts
common to every catalog ("Women's", "Black/White", "12 oz": tagger.evidence.common). With a labeled pool, also by a
value the pool has for the category and attribute (extractive values: the text's own spelling is the candidate), by
an identifier of the shape the pool's labels have, and by the pool's n-gram rules; and the pool's measured precision
drops names and entries that are mostly something else. Where names overlap, the longest wins ("Navy Blue" is Navy,
or Blue where the taxonomy has no Navy, once); names side by side are each kept ("White/Gray").
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from tagger.evidence.common import Vocabulary, common_spans, vocabulary
from tagger.evidence.names import AttributeNames, attribute_names, labels
from tagger.evidence.pool import PoolLexicon, PoolSettings, amount_windows, product_text_fields, shaped_tokens
from tagger.evidence.quantity import amounts
from tagger.evidence.text import Word, key, words
from tagger.product import Product
from tagger.records import Evidence, Span
from tagger.retrieval.examples import PoolItem
from tagger.taxonomy import Attribute, Category, Taxonomy
from tagger.validate import find_span, find_spans

MAX_SPANS = 5  # spans kept per value: enough to show where, without copying a repetitive description
CUE_WINDOW = 3  # words on either side of a weak name where the attribute's own name must stand

Source = Literal["text", "pool"]
Matched = Literal["name", "field", "dictionary", "rule", "shape", "common"]


@dataclass(frozen=True)
class _Pattern:
    words: tuple[str, ...]
    handle: str
    value: str | None  # None for an extractive attribute: the matched text is the value
    source: Source
    weak: bool = False
    rule: bool = False  # a pool n-gram rule: evidence beside the names, never blocking them


@dataclass
class _Hit:
    handle: str
    value: str | None
    source: Source
    field: str
    order: int  # the field's place: title 0, other fields, description last
    first: int  # word indices
    last: int
    start: int  # character offsets in the cleaned field
    end: int
    text: str  # the cleaned field's text at [start, end)
    words: tuple[str, ...]  # its normalized words
    score: float | None = None  # the pool's precision for the pattern
    shape: bool = False  # an identifier matched by its shape, not by name
    common: bool = False  # a word or amount common to every catalog (tagger.evidence.common), not the pool's

    @property
    def size(self) -> int:
        return self.last - self.first + 1


Index = dict[str, list[_Pattern]]  # patterns by their first word


def _index(patterns: list[_Pattern]) -> Index:
    index: Index = defaultdict(list)
    for pattern in patterns:
        index[pattern.words[0]].append(pattern)
    return dict(index)


@dataclass
class CompiledCategory:
    """One category's patterns: an index per attribute (shared by every category that has the attribute)."""

    attributes: list[Attribute]
    indexes: list[Index] = field(default_factory=list)
    firsts: set[str] = field(default_factory=set)  # every pattern's first word: most words of a text start none
    names: dict[str, AttributeNames] = field(default_factory=dict)
    vocabularies: dict[str, Vocabulary] = field(default_factory=dict)  # extractive attributes' common words


class EvidenceMatcher:
    """Finds candidates for products of one taxonomy; `pool` (labeled products) adds its dictionary, identifier
    shapes and rules, and measures the names."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        pool: Sequence[PoolItem] | PoolLexicon | None = None,
        settings: PoolSettings | None = None,
    ) -> None:
        self.taxonomy = taxonomy
        if pool is not None and not isinstance(pool, PoolLexicon):
            pool = PoolLexicon(taxonomy, pool, settings) if pool else None
        self.lexicon: PoolLexicon | None = pool
        self._names: dict[str, AttributeNames] = {}
        self._compiled: dict[str, CompiledCategory] = {}
        self._closed_indexes: dict[str, Index] = {}
        # (handle, value) -> [pool products labeled with it, pool products whose text names it], where annotated
        self._named: dict[tuple[str, str], list[int]] = {}
        if self.lexicon is not None and self.lexicon.settings.min_name_precision > 0:
            self._measure_names(self.lexicon)

    def names(self, attribute: Attribute) -> AttributeNames:
        found = self._names.get(attribute.handle)
        if found is None:
            found = self._names[attribute.handle] = attribute_names(attribute)
        return found

    def compile(self, category_id: str) -> CompiledCategory:
        """The category's patterns, built once per matcher."""
        compiled = self._compiled.get(category_id)
        if compiled is not None:
            return compiled
        compiled = CompiledCategory(self.taxonomy.attributes_for(category_id))
        for attribute in compiled.attributes:
            if attribute.extractive:
                compiled.indexes.append(self._dictionary(category_id, attribute))
                if (common := vocabulary(attribute)) is not None:
                    compiled.vocabularies[attribute.handle] = common
            else:
                compiled.names[attribute.handle] = self.names(attribute)
                compiled.indexes.append(self._closed(attribute))
        compiled.firsts = {word for index in compiled.indexes for word in index}
        self._compiled[category_id] = compiled
        return compiled

    def _closed(self, attribute: Attribute) -> Index:
        """A closed attribute's names, and the pool's rules for it."""
        found = self._closed_indexes.get(attribute.handle)
        if found is None:
            names = self.names(attribute)
            patterns = [_Pattern(n.words, attribute.handle, n.value, "text", n.weak) for n in names.names]
            if self.lexicon is not None:
                for gram, rules in self.lexicon.rules_for(attribute.handle).items():
                    patterns += [_Pattern(gram, attribute.handle, r.value, "pool", rule=True) for r in rules]
            found = self._closed_indexes[attribute.handle] = _index(patterns)
        return found

    def _dictionary(self, category_id: str, attribute: Attribute) -> Index:
        if self.lexicon is None:
            return {}
        entries = self.lexicon.entries(category_id, attribute.handle)
        return _index([_Pattern(words_, attribute.handle, None, "pool") for words_ in entries])

    def _measure_names(self, lexicon: PoolLexicon) -> None:
        """How often the pool's products that name a closed value are labeled with it (where the pool annotates
        the attribute): a name that is mostly something else ("Diamond" in jewelry is no pattern) is dropped."""
        names_only = EvidenceMatcher(self.taxonomy)
        names_only._names = self._names
        for item in lexicon.items:
            for handle, found in names_only.candidates(item.product, item.category).items():
                if handle not in item.attributes or self.taxonomy.attributes[handle].extractive:
                    continue
                labeled = {v.casefold() for v in lexicon.labels(item, handle)}
                for evidence in found:
                    counts = self._named.setdefault((handle, evidence.value), [0, 0])
                    counts[0] += evidence.value.casefold() in labeled
                    counts[1] += 1

    def _keep_name(self, handle: str, value: str, own: PoolItem | None) -> bool:
        assert self.lexicon is not None
        counts = self._named.get((handle, value))
        if counts is None:
            return True
        labeled, shown = counts
        if own is not None and handle in own.attributes:
            labeled -= value.casefold() in {v.casefold() for v in self.lexicon.labels(own, handle)}
            shown -= 1
        settings = self.lexicon.settings
        return shown < settings.min_support or labeled / shown >= settings.min_name_precision

    # --- matching -------------------------------------------------------------------------------------------------

    def candidates(self, product: Product, category: Category) -> dict[str, list[Evidence]]:
        """Per attribute of the category, the values the product supports, best first. `product` is the cleaned
        product, as the model sees it: every span indexes its cleaned fields."""
        compiled = self.compile(category.id)
        own_index = self.lexicon.own_index(product) if self.lexicon is not None else None
        own = self.lexicon.items[own_index] if self.lexicon is not None and own_index is not None else None
        own_grams = self.lexicon.own_grams(product) if self.lexicon is not None and own is not None else set()
        hits: list[_Hit] = []
        rules: list[_Hit] = []
        commons: list[_Hit] = []
        for order, (name, text) in enumerate(product_text_fields(product)):
            if not text:
                continue
            found = words(text)
            for hit in self._scan(compiled, found, text, name, order):
                (rules if hit.source == "pool" and hit.value is not None else hits).append(hit)
            hits += self._field_named(compiled, name, text, order)
            rules += self._shaped(compiled, category, own_index, found, (name, text, order))
            if name == "title":  # descriptions list what a product fits, holds and comes with (measured: README)
                commons += self._common(compiled, found, (name, text, order))
        hits = [h for h in hits if self._keep_dictionary_hit(h, category, own)]
        rules = [h for h in rules if h.shape or self._keep_rule_hit(h, own, own_grams)]
        result = self._evidence(compiled, _longest(hits), rules + commons)
        if self._named:
            result = self._measured_names(result, own)
        extractive = {a.handle for a in compiled.attributes if a.extractive}
        for handle in extractive & result.keys():
            for item in result[handle]:
                # Spelled as its first occurrence in the text, as the validation reads an extractive value back.
                item.value = find_span(item.value, product.text) or item.value
        return result

    def _measured_names(self, result: dict[str, list[Evidence]], own: PoolItem | None) -> dict[str, list[Evidence]]:
        kept = {
            handle: [e for e in found if e.source != "text" or self._keep_name(handle, e.value, own)]
            for handle, found in result.items()
        }
        return {handle: found for handle, found in kept.items() if found}

    def _scan(self, compiled: CompiledCategory, found: list[Word], text: str, name: str, order: int) -> list[_Hit]:
        hits = []
        norms = [w.norm for w in found]
        firsts = compiled.firsts
        where = (name, text, order)
        for i, word in enumerate(found):
            if word.norm not in firsts:
                continue
            for pattern in (p for index in compiled.indexes for p in index.get(word.norm, ())):
                n = len(pattern.words)
                if tuple(norms[i : i + n]) != pattern.words:
                    continue
                if pattern.weak and not _cued(norms, i, i + n - 1, compiled.names[pattern.handle].cues):
                    continue
                end = found[i + n - 1].end
                hit = _Hit(
                    pattern.handle,
                    pattern.value,
                    pattern.source,
                    name,
                    order,
                    i,
                    i + n - 1,
                    word.start,
                    end,
                    text[word.start : end],
                    pattern.words,
                )
                hits.append(hit)
        for amount in amounts(found, text):
            for handle, names in compiled.names.items():
                for range_, value in names.ranges:
                    if range_.holds(amount.value, amount.unit):
                        hits.append(_words_hit(handle, value, "text", found, amount.first, amount.last, where))
        return hits

    def _shaped(
        self,
        compiled: CompiledCategory,
        category: Category,
        own: int | None,
        found: list[Word],
        where: tuple[str, str, int],
    ) -> list[_Hit]:
        """Identifiers and amounts of a shape the pool's labels of this category and attribute have, precisely
        enough ("XER106R01409" as part numbers are written; "12 oz" as net contents are)."""
        lexicon = self.lexicon
        if lexicon is None:
            return []
        text = where[1]
        books = [(lexicon.shapes, self._identifiers(text, found)), (lexicon.amounts, self._amounts(found))]
        hits = []
        for attribute in (a for a in compiled.attributes if a.extractive):
            for book, spots in books:
                entries = book.of(category.id, attribute.handle)
                for form, first, last in spots if entries else []:
                    entry = entries.get(form)
                    precision = None if entry is None else book.measured(entry, own, attribute.handle, form)
                    if precision is None:
                        continue
                    hit = _words_hit(attribute.handle, None, "pool", found, first, last, where, shape=True)
                    hit.score = round(precision, 4)
                    hits.append(hit)
        return hits

    @staticmethod
    def _identifiers(text: str, found: list[Word]) -> list[tuple[object, int, int]]:
        """(shape, first word, last word) of the text's identifier-like tokens."""
        starts, ends = [w.start for w in found], [w.end for w in found]
        spots: list[tuple[object, int, int]] = []
        for form, start, end in shaped_tokens(text):
            first = bisect_left(starts, start)
            spots.append((form, first, max(first, bisect_right(ends, end) - 1)))
        return spots

    @staticmethod
    def _amounts(found: list[Word]) -> list[tuple[object, int, int]]:
        return [(form, first, last) for first, last, form in amount_windows([w.norm for w in found])]

    @staticmethod
    def _common(compiled: CompiledCategory, found: list[Word], where: tuple[str, str, int]) -> list[_Hit]:
        """Extractive attributes' words and amounts common to every catalog (a gender, a colour, "12 oz")."""
        return [
            _words_hit(handle, None, "text", found, spot.first, spot.last, where, common=True, end=spot.end)
            for handle, common in compiled.vocabularies.items()
            for spot in common_spans(common, found, where[1])
        ]

    def _field_named(self, compiled: CompiledCategory, name: str, text: str, order: int) -> list[_Hit]:
        """A field named as an extractive attribute ("brand") states its value: the whole field is the span."""
        if name in ("title", "description"):
            return []
        folded = name.casefold().replace("_", " ")
        return [
            _Hit(a.handle, None, "text", name, order, 0, max(len(key(text)) - 1, 0), 0, len(text), text, key(text))
            for a in compiled.attributes
            if a.extractive and folded in labels(a)
        ]

    def _keep_dictionary_hit(self, hit: _Hit, category: Category, own: PoolItem | None) -> bool:
        if hit.source != "pool" or self.lexicon is None:
            return True
        words_ = hit.words
        entry = self.lexicon.entries(category.id, hit.handle).get(words_)
        if entry is None:
            return False
        own_labeled = (
            own is not None
            and own.category.id == category.id
            and words_ in {key(v) for v in self.lexicon.labels(own, hit.handle)}
        )
        own_shown = own is not None and own.category.id == category.id
        labeled, precision = self.lexicon.dictionary_precision(entry, own_labeled, own_shown)
        hit.score = round(precision, 4)
        return labeled > 0 and precision >= self.lexicon.settings.min_dictionary_precision

    def _keep_rule_hit(self, hit: _Hit, own: PoolItem | None, own_grams: set[tuple[str, ...]]) -> bool:
        assert self.lexicon is not None and hit.value is not None
        gram = hit.words
        rule = next((r for r in self.lexicon.rules_for(hit.handle).get(gram, []) if r.value == hit.value), None)
        if rule is None:
            return False
        kept = self.lexicon.rule_without(rule, own, hit.handle, gram in own_grams)
        if kept is None:
            return False
        hit.score = round(kept.precision, 4)
        return True

    def _evidence(self, compiled: CompiledCategory, hits: list[_Hit], rules: list[_Hit]) -> dict[str, list[Evidence]]:
        by_attribute: dict[str, dict[object, list[_Hit]]] = defaultdict(lambda: defaultdict(list))
        for hit in hits:
            by_attribute[hit.handle][hit.value if hit.value is not None else hit.words].append(hit)
        # Beside the names: a value the text names needs no rule, one it does not gets one; a common word or amount
        # is a candidate of its own only where neither found the same words.
        for hit in rules:
            values = by_attribute[hit.handle]
            known = hit.value if hit.value is not None else hit.words
            if hit.common and known in values and not all(h.common for h in values[known]):
                continue
            if known not in values or all(h.source == "pool" for h in values[known]):
                values[known].append(hit)
        result: dict[str, list[Evidence]] = {}
        for attribute in compiled.attributes:
            groups = by_attribute.get(attribute.handle)
            if groups:
                ranked = sorted(groups.values(), key=lambda g: _rank(g, attribute.extractive))
                result[attribute.handle] = [_to_evidence(attribute.handle, g) for g in ranked]
        return result


def _words_hit(
    handle: str,
    value: str | None,
    source: Source,
    found: list[Word],
    first: int,
    last: int,
    where: tuple[str, str, int],
    shape: bool = False,
    common: bool = False,
    end: int | None = None,
) -> _Hit:
    """The hit of words first..last of a field (`where`: its name, its text, its place), ending at `end` where a
    closing mark belongs to it."""
    name, text, order = where
    start, end = found[first].start, found[last].end if end is None else end
    spelled = tuple(w.norm for w in found[first : last + 1])
    return _Hit(handle, value, source, name, order, first, last, start, end, text[start:end], spelled,
                shape=shape, common=common)  # fmt: skip


def _cued(norms: list[str], first: int, last: int, cues: frozenset[tuple[str, ...]]) -> bool:
    before = " " + " ".join(norms[max(0, first - CUE_WINDOW) : first]) + " "
    after = " " + " ".join(norms[last + 1 : last + 1 + CUE_WINDOW]) + " "
    return any(f" {' '.join(cue)} " in before or f" {' '.join(cue)} " in after for cue in cues)


def _longest(hits: list[_Hit]) -> list[_Hit]:
    """Within an attribute and a field, a hit inside or across a longer one is dropped."""
    covered: dict[tuple[str, str, int], int] = {}
    kept = []
    for hit in sorted(hits, key=lambda h: -h.size):
        spots = [(hit.handle, hit.field, i) for i in range(hit.first, hit.last + 1)]
        if any(covered.get(s, 0) > hit.size for s in spots):
            continue
        kept.append(hit)
        for spot in spots:
            covered[spot] = max(covered.get(spot, 0), hit.size)
    return kept


def _rank(group: list[_Hit], extractive: bool) -> tuple[int, ...]:
    best = min(group, key=lambda h: (h.order, -h.size, h.start))
    rule_only = all(h.source == "pool" and h.value is not None for h in group)
    if extractive:  # the longest value found wins (a dictionary's longest entry is its most specific); shapes last,
        # then common words (read from the title only), the first place first
        if all(h.common for h in group):
            return (1, 1, best.order, best.start)
        return (all(h.shape for h in group), 0, -max(h.size for h in group), best.order, best.start)
    return (rule_only, best.order, -best.size, best.start)


def _to_evidence(handle: str, group: list[_Hit]) -> Evidence:
    # The longest hit at a start gives the span: ties left to the hits' order would follow the pool's set order,
    # which differs from run to run.
    ordered = sorted(group, key=lambda h: (h.order, h.start, -h.size))
    value = group[0].value
    if value is None:  # extractive: the value is written as the text writes it, at its best place
        best = min(group, key=lambda h: (-h.size, h.order, h.start))
        value = best.text
    spans: list[Span] = []
    seen: set[tuple[str, int]] = set()
    for hit in ordered:
        if len(spans) == MAX_SPANS:
            break
        if (hit.field, hit.start) not in seen:
            seen.add((hit.field, hit.start))
            spans.append(Span(field=hit.field, start=hit.start, end=hit.end, text=hit.text))
    scores = [h.score for h in group if h.score is not None]
    source: Source = "text" if any(h.source == "text" for h in group) else "pool"
    return Evidence(
        attribute=handle,
        value=value,
        source=source,
        spans=spans,
        matched=_matched(group),
        score=max(scores) if scores and source == "pool" else None,
    )


def _matched(group: list[_Hit]) -> Matched:
    """What found a value, the strongest first: the text naming it, a field, a common word (alone), the pool's
    dictionary, rules, shapes."""
    if any(h.source == "text" and h.value is not None for h in group):
        return "name"
    if all(h.common for h in group):
        return "common"
    if any(h.source == "text" for h in group):
        return "field"
    if any(h.value is None and not h.shape for h in group):
        return "dictionary"
    return "rule" if any(not h.shape for h in group) else "shape"


def spans_of(value: str, product: Product) -> list[Span]:
    """Where the cleaned product states `value` (a span the model extracted), field by field: at most MAX_SPANS."""
    spans: list[Span] = []
    for name, text in product_text_fields(product):
        for start, end in find_spans(value, text, MAX_SPANS - len(spans)):
            spans.append(Span(field=name, start=start, end=end, text=text[start:end]))
    return spans
