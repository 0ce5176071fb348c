"""What a labeled pool teaches without a model: the values seen per category and attribute (a dictionary), and the
text n-grams that go with a closed value (rules such as "ideal for women" -> Female).

A rule is kept when, among the pool products whose category has the attribute, the n-gram's products carry the
value at least `min_precision` of the time, in at least `min_support` products. Every count is kept with the product
that made it, so a product that is itself in the pool is matched as if it were not (leave-one-out): its own labels
never become its evidence.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from tagger.clean import Cleaner, content_key
from tagger.evidence.text import is_number, key, words
from tagger.product import Product
from tagger.retrieval.examples import PoolItem
from tagger.taxonomy import Taxonomy

# An identifier as a text writes it: letters and digits, with inner hyphens, dots and slashes ("XER106R01409").
_TOKEN = re.compile(r"[^\W_](?:[\w\-./]*[^\W_])?")
MAX_WORDS = 400  # of each pool product's text, for n-grams: descriptions are cut to a budget before the model too
MAX_AMOUNT_WORDS = 4  # an amount's shape spans at most this many words ("Pack of # Count")


@dataclass(frozen=True)
class PoolSettings:
    max_ngram: int = 3
    min_support: int = 3  # products that show the n-gram with the value
    min_precision: float = 0.8  # share of the n-gram's products that carry the value
    min_dictionary_precision: float = 0.2  # share of the products showing a dictionary value that carry it
    min_name_precision: float = 0.2  # share of the products naming a closed value that carry it
    min_shape_precision: float = 0.5  # share of the products showing a shape (identifier, amount) where it is the value


@dataclass(frozen=True)
class Rule:
    value: str
    support: int  # products with the n-gram and the value
    seen: int  # products with the n-gram (whose category has the attribute)

    @property
    def precision(self) -> float:
        return self.support / self.seen if self.seen else 0.0


@dataclass
class Entry:
    """A value seen in the pool for one category and attribute."""

    labeled: int = 0  # pool products labeled with it
    shown: int = 0  # pool products of the category whose text shows it
    carried: int = 0  # of those, the ones labeled with it (dictionary entries)


def shape(token: str) -> str | None:
    """An identifier's shape: letters A, digits 9, the rest kept ("XER106R01409" -> "AAA999A99999"); None for a
    token too short or without a digit, whose shape would say nothing."""
    if len(token) < 4 or not any(c.isdigit() for c in token):
        return None
    return "".join("9" if c.isdigit() else "A" if c.isalpha() else c for c in token)


def shaped_tokens(text: str) -> list[tuple[str, int, int]]:
    """(shape, start, end) of every identifier-like token of a text."""
    found = []
    for match in _TOKEN.finditer(text):
        form = shape(match.group())
        if form is not None:
            found.append((form, match.start(), match.end()))
    return found


def amount_shape(norms: Sequence[str]) -> tuple[str, ...] | None:
    """An amount's shape: its normalized words with every number as "#" ("12 Ounce Bag" -> ("#", "ounce", "bag"));
    None unless it has a number and a word (a bare number is any number)."""
    form = tuple("#" if is_number(n) else n for n in norms)
    return form if "#" in form and any(f != "#" for f in form) else None


def amount_windows(norms: Sequence[str]) -> list[tuple[int, int, tuple[str, ...]]]:
    """(first, last, shape) of every run of up to MAX_AMOUNT_WORDS words that holds a number and a word."""
    found: set[tuple[int, int]] = set()
    for at, norm in enumerate(norms):
        if is_number(norm):
            for first in range(max(0, at - MAX_AMOUNT_WORDS + 1), at + 1):
                for last in range(at, min(len(norms), first + MAX_AMOUNT_WORDS)):
                    found.add((first, last))
    windows = []
    for first, last in sorted(found):
        form = amount_shape(norms[first : last + 1])
        if form is not None:
            windows.append((first, last, form))
    return windows


def product_text_fields(product: Product) -> list[tuple[str, str]]:
    """A product's fields in the order they are matched: title, the other fields, description."""
    return [("title", product.title), *product.fields.items(), ("description", product.description)]


def ngrams(product: Product, size: int) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for _, text in product_text_fields(product):
        norms = [w.norm for w in words(text, MAX_WORDS)]
        for n in range(1, size + 1):
            found.update(tuple(norms[i : i + n]) for i in range(len(norms) - n + 1))
    return found


Shapes = tuple[set[object], dict[str, set[object]]]  # a product's shapes shown, and its labels' shapes per attribute


class ShapeBook:
    """The shapes of one kind that a pool's labels take, per category and attribute, each with how many products
    of the category show it and how many of those are labeled with it there (kept per product: leave-one-out)."""

    def __init__(self, lexicon: PoolLexicon, seen: list[Shapes]) -> None:
        self.entries: dict[tuple[str, str], dict[object, Entry]] = defaultdict(dict)
        self._seen = seen
        self._min_support = lexicon.settings.min_support
        self._min_precision = lexicon.settings.min_shape_precision
        for item, (_, labeled) in zip(lexicon.items, seen, strict=True):
            for handle, forms in labeled.items():
                for form in forms:
                    self.entries[item.category.id, handle].setdefault(form, Entry()).labeled += 1
        by_category: dict[str, list[dict[object, Entry]]] = defaultdict(list)
        for (category, _), entries in self.entries.items():
            by_category[category].append(entries)
        for item, (shown, _) in zip(lexicon.items, seen, strict=True):
            for entries in by_category.get(item.category.id, []):
                for form in shown & entries.keys():
                    entries[form].shown += 1

    def of(self, category_id: str, handle: str) -> dict[object, Entry]:
        return self.entries.get((category_id, handle), {})

    def measured(self, entry: Entry, own: int | None, handle: str, form: object) -> float | None:
        """The shape's precision without the product's own row (its index): None when too few labels carry it or
        it is too often something else."""
        labeled, shown = entry.labeled, entry.shown
        if own is not None:
            own_shown, own_labeled = self._seen[own]
            labeled -= form in own_labeled.get(handle, set())
            shown -= form in own_shown
        precision = labeled / shown if shown > 0 else 0.0
        return precision if labeled >= self._min_support and precision >= self._min_precision else None


class PoolLexicon:
    """The dictionary and the rules of one labeled pool, for one taxonomy."""

    def __init__(
        self,
        taxonomy: Taxonomy,
        items: Sequence[PoolItem],
        settings: PoolSettings | None = None,
        cleaner: Cleaner | None = None,
    ) -> None:
        self.taxonomy = taxonomy
        self.settings = settings or PoolSettings()
        clean = cleaner or Cleaner()
        self.items = [PoolItem(clean.clean(i.product).product, i.category, i.attributes) for i in items]
        self._by_id = {item.product.id: n for n, item in enumerate(self.items)}
        self._by_content = {content_key(item.product): n for n, item in enumerate(self.items)}
        self._grams = [ngrams(item.product, self.settings.max_ngram) for item in self.items]
        # (category id, handle) -> normalized words -> entry; the surface form is kept for extractive values
        self.dictionary: dict[tuple[str, str], dict[tuple[str, ...], Entry]] = defaultdict(dict)
        self.rules: dict[str, dict[tuple[str, ...], list[Rule]]] = {}
        # (category id, handle) -> shape -> entry: extractive values that no other product shares still share a
        # shape: identifiers such as part numbers and UPCs ("AAA999A99999"), and amounts ("# oz", "Pack of #")
        self.shapes = ShapeBook(self, [self._identifier_shapes(item) for item in self.items])
        self.amounts = ShapeBook(self, [self._amount_shapes(item) for item in self.items])
        self._fill_dictionary()
        self._learn_rules()
        # Only the n-grams of rules are needed from here on (to leave a product's own row out): keep just those.
        ruled = {gram for rules in self.rules.values() for gram in rules}
        self._grams = [grams & ruled for grams in self._grams]

    # --- the pool's own products ----------------------------------------------------------------------------------

    def own_index(self, product: Product) -> int | None:
        """The pool's row of this product (same id or same cleaned content), whose labels must not count for it."""
        return self._by_id.get(product.id, self._by_content.get(content_key(product)))

    def own(self, product: Product) -> PoolItem | None:
        index = self.own_index(product)
        return None if index is None else self.items[index]

    def own_grams(self, product: Product) -> set[tuple[str, ...]]:
        index = self.own_index(product)
        return set() if index is None else self._grams[index]

    # --- the dictionary -----------------------------------------------------------------------------------------

    def labels(self, item: PoolItem, handle: str) -> list[str]:
        raw = item.attributes.get(handle) or []
        values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []  # a pool file may say "Red"
        return [str(v) for v in values if str(v).strip()]

    def _fill_dictionary(self) -> None:
        labeled_by: dict[int, set[int]] = defaultdict(set)  # entry (by id) -> the pool products labeled with it
        for n, item in enumerate(self.items):
            for handle in item.attributes:
                for value in self.labels(item, handle):
                    words_ = key(value)
                    if words_:
                        entry = self.dictionary[item.category.id, handle].setdefault(words_, Entry())
                        if n not in labeled_by[id(entry)]:
                            labeled_by[id(entry)].add(n)
                            entry.labeled += 1
        # Each pool product's text is scanned once against its category's entries, indexed by their first word.
        by_category: dict[str, dict[str, list[tuple[tuple[str, ...], Entry]]]] = defaultdict(lambda: defaultdict(list))
        for (category, _), entries in self.dictionary.items():
            for words_, entry in entries.items():
                by_category[category][words_[0]].append((words_, entry))
        for n, item in enumerate(self.items):
            index = by_category.get(item.category.id)
            if not index:
                continue
            shown: set[int] = set()
            for _, text in product_text_fields(item.product):
                norms = [w.norm for w in words(text, MAX_WORDS)]
                for i, norm in enumerate(norms):
                    for words_, entry in index.get(norm, ()):
                        if id(entry) not in shown and tuple(norms[i : i + len(words_)]) == words_:
                            shown.add(id(entry))
                            entry.shown += 1
                            entry.carried += n in labeled_by[id(entry)]

    # --- shapes -------------------------------------------------------------------------------------------------

    def _extractive_labels(self, item: PoolItem) -> dict[str, list[str]]:
        return {
            handle: [v.strip() for v in self.labels(item, handle)]
            for handle in item.attributes
            if (attribute := self.taxonomy.attributes.get(handle)) is not None and attribute.extractive
        }

    def _identifier_shapes(self, item: PoolItem) -> Shapes:
        """The identifier shapes a product's text shows, and per attribute the shapes of its labels found as tokens."""
        tokens: dict[str, set[str]] = defaultdict(set)
        for _, text in product_text_fields(item.product):
            for form, start, end in shaped_tokens(text):
                tokens[form].add(text[start:end].casefold())
        labeled: dict[str, set[object]] = {}
        for handle, values in self._extractive_labels(item).items():
            forms = {f for v in values if (f := shape(v)) and v.casefold() in tokens[f]}
            if forms:
                labeled[handle] = set(forms)
        return set(tokens), labeled

    def _amount_shapes(self, item: PoolItem) -> Shapes:
        """The amount shapes a product's text shows, and per attribute the shapes of its labels the text states."""
        shown: set[object] = set()
        stated: set[tuple[str, ...]] = set()
        for _, text in product_text_fields(item.product):
            norms = [w.norm for w in words(text, MAX_WORDS)]
            for first, last, form in amount_windows(norms):
                shown.add(form)
                stated.add(tuple(norms[first : last + 1]))
        labeled: dict[str, set[object]] = {}
        for handle, values in self._extractive_labels(item).items():
            forms = {f for v in values if (k := key(v)) in stated and (f := amount_shape(k))}
            if forms:
                labeled[handle] = set(forms)
        return shown, labeled

    def entries(self, category_id: str, handle: str) -> dict[tuple[str, ...], Entry]:
        return self.dictionary.get((category_id, handle), {})

    def dictionary_precision(self, entry: Entry, own_labeled: bool, own_shown: bool) -> tuple[int, float]:
        """(labeled products, precision) of an entry, without the product's own row: the share of the products
        showing it that are labeled with it (1.0 where no other product shows it)."""
        shown = entry.shown - own_shown
        carried = entry.carried - (own_labeled and own_shown)
        return entry.labeled - own_labeled, (carried / shown if shown > 0 else 1.0)

    # --- the rules ----------------------------------------------------------------------------------------------

    def _closed_values(self, handle: str) -> dict[str, str]:
        attribute = self.taxonomy.attributes.get(handle)
        if attribute is None or attribute.extractive:
            return {}
        return {v.casefold(): v for v in attribute.values}

    def _learn_rules(self) -> None:
        settings = self.settings
        having: dict[str, list[int]] = defaultdict(list)  # handle -> pool products whose category has it
        for n, item in enumerate(self.items):
            for attribute in self.taxonomy.attributes_for(item.category.id):
                if not attribute.extractive:
                    having[attribute.handle].append(n)
        for handle, members in having.items():
            allowed = self._closed_values(handle)
            with_value: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
            for n in members:
                values = {allowed[v.casefold()] for v in self.labels(self.items[n], handle) if v.casefold() in allowed}
                for gram in self._grams[n]:
                    for value in values:
                        with_value[gram][value] += 1
            kept = {g: c for g, c in with_value.items() if max(c.values()) >= settings.min_support}
            seen: Counter[tuple[str, ...]] = Counter()
            for n in members:
                seen.update(self._grams[n] & kept.keys())
            rules: dict[tuple[str, ...], list[Rule]] = {}
            for gram, counts in kept.items():
                found = [Rule(v, c, seen[gram]) for v, c in counts.items() if c >= settings.min_support]
                found = [r for r in found if r.precision >= settings.min_precision]
                if found:
                    rules[gram] = found
            if rules:
                self.rules[handle] = rules

    def rules_for(self, handle: str) -> dict[tuple[str, ...], list[Rule]]:
        return self.rules.get(handle, {})

    def rule_without(self, rule: Rule, own: PoolItem | None, handle: str, own_has_gram: bool) -> Rule | None:
        """The rule as the pool without the product's own row would have learned it, or None if it would not."""
        if own is not None and own_has_gram:
            carries = rule.value.casefold() in {v.casefold() for v in self.labels(own, handle)}
            rule = Rule(rule.value, rule.support - carries, rule.seen - 1)
        if rule.support < self.settings.min_support or rule.precision < self.settings.min_precision:
            return None
        return rule
