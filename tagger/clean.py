"""Cleaning before generation: what a shop export carries that the model should not see, removed per product.

HTML becomes text, Unicode is NFKC-normalized, whitespace collapsed, scraping leftovers trimmed from titles
(a trailing "| Shop Name", " Null"), and long text cut to a token budget. Cleaning runs before the cache key is
made, so two rows that differ only in markup or spacing are one product to the model.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from typing import Protocol

from tagger.product import Product
from tagger.records import Truncation

# Trailing leftovers seen in real web-shop titles (WDC-PAVE): " Null", "| Shop Name", " - ShopName.com".
DEFAULT_BOILERPLATE: tuple[str, ...] = (
    r"\s+(?:null|none|n/a)$",
    r"\s*\|\s*[^|]{1,40}$",
    r"(?:\s+-)?\s+[\w.-]+\.(?:com|net|org|co\.uk|de|shop|store)$",
)
EMPTY_VALUES = frozenset({"null", "none", "n/a", "na", "nan", "-"})
CHARS_PER_TOKEN = 4  # the estimate where the backend has no tokenizer (a remote server)
_BLOCK_TAGS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table"})
_SKIP_TAGS = frozenset({"script", "style", "head", "template"})
_MARKUP = re.compile(r"<[a-zA-Z/!]|&#?\w+;")


class Tokenizer(Protocol):
    """What cleaning counts tokens with: the model's own tokenizer, where the backend has it locally."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, tokens: list[int]) -> str: ...


@dataclass(frozen=True)
class CleaningConfig:
    """What cleaning does. Its hash goes into the cache key, so changing it never serves stale results."""

    enabled: bool = True
    html: bool = True
    unicode_form: str = "NFKC"
    boilerplate: tuple[str, ...] = DEFAULT_BOILERPLATE
    title_tokens: int = 64
    field_tokens: int = 48
    description_tokens: int = 384

    @property
    def hash(self) -> str:
        if not self.enabled:
            return "off"
        return hashlib.sha256(json.dumps(asdict(self)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Cleaned:
    product: Product
    truncated: list[Truncation] = field(default_factory=list)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in _SKIP_TAGS:
            self._skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(text: str) -> str:
    """Visible text of an HTML fragment; block elements become line breaks. Plain text passes through unchanged."""
    if not _MARKUP.search(text):
        return text
    if "<" not in text:
        return html.unescape(text)
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


def collapse_whitespace(text: str, keep_lines: bool) -> str:
    if not keep_lines:
        return " ".join(text.split())
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def cut_to_tokens(text: str, budget: int, tokenizer: Tokenizer | None) -> str | None:
    """The text cut to at most `budget` tokens at a word boundary, or None when it already fits."""
    if tokenizer is None:
        limit = budget * CHARS_PER_TOKEN
        return None if len(text) <= limit else _at_word(text[:limit])
    # Tokenize a prefix only: a 1 MB description costs no more than a short one.
    prefix = text[: budget * 12]
    tokens = tokenizer.encode(prefix)
    if len(tokens) <= budget:
        return None if len(prefix) == len(text) else _at_word(prefix)
    return _at_word(tokenizer.decode(tokens[:budget]))


def _at_word(text: str) -> str:
    cut = text.rstrip()
    space = cut.rfind(" ", int(len(cut) * 0.8))
    return (cut[:space] if space > 0 else cut).rstrip()


class Cleaner:
    """Cleans products by one config. `tokenizer` is the backend's, for exact token budgets."""

    def __init__(self, config: CleaningConfig | None = None, tokenizer: Tokenizer | None = None) -> None:
        self.config = config or CleaningConfig()
        self.tokenizer = tokenizer
        self._boilerplate = [re.compile(p, re.IGNORECASE) for p in self.config.boilerplate]

    def text(self, value: str, keep_lines: bool = False) -> str:
        if self.config.html:
            value = html_to_text(value)
        if self.config.unicode_form:
            value = unicodedata.normalize(self.config.unicode_form, value)  # type: ignore[arg-type]
        value = collapse_whitespace(value, keep_lines)
        return "" if value.lower() in EMPTY_VALUES else value

    def title(self, value: str) -> str:
        title = self.text(value)
        changed = True
        while changed:  # "Name Null | Shop" needs two passes
            changed = False
            for pattern in self._boilerplate:
                trimmed = pattern.sub("", title).rstrip(" -|,")
                if trimmed != title and len(trimmed) >= 3:
                    title, changed = trimmed, True
        return title

    def clean(self, product: Product) -> Cleaned:
        if not self.config.enabled:
            return Cleaned(product)
        truncated: list[Truncation] = []

        def budget(name: str, value: str, tokens: int) -> str:
            cut = cut_to_tokens(value, tokens, self.tokenizer)
            if cut is None:
                return value
            truncated.append(Truncation(field=name, chars=len(value), kept_tokens=tokens))
            return cut

        fields = {name: self.text(value) for name, value in product.fields.items()}
        cleaned = Product(
            id=product.id,
            title=budget("title", self.title(product.title), self.config.title_tokens),
            description=budget(
                "description", self.text(product.description, keep_lines=True), self.config.description_tokens
            ),
            fields={name: budget(name, value, self.config.field_tokens) for name, value in fields.items() if value},
        )
        return Cleaned(cleaned, truncated)


def content_key(product: Product) -> str:
    """The identity of a product's content (not its id): exact duplicates share it, and one model call serves all."""
    content = [product.title, product.description, sorted(product.fields.items())]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()
