"""What the record page shows, computed from a record: the product text cut into plain and highlighted pieces
(each value's evidence), and one row per attribute value with its confidence and source. Templates escape all of
it: product text is never markup."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from tagger.product import Product


@dataclass(frozen=True)
class Piece:
    text: str
    labels: tuple[str, ...] = ()  # "attribute: value" of each value whose evidence covers this piece
    guessed: bool = False  # found by matching the value in the text, not given by the record's evidence


@dataclass(frozen=True)
class FieldText:
    name: str
    pieces: list[Piece]


@dataclass
class ValueRow:
    attribute: str
    value: str
    confidence: float | None = None
    # text, pool, inferred, with what found it and who decided ("text, segment, judge"); unknown when the record
    # carries no evidence, reviewer for a value a reviewer added
    source: str = "unknown"
    spans: list[str] = field(default_factory=list)


def product_fields(product: Product) -> list[tuple[str, str]]:
    return [("title", product.title), *product.fields.items(), ("description", product.description)]


def highlighted(product: Product, record: dict[str, Any], attributes: dict[str, list[str]]) -> list[FieldText]:
    """Each field of the product with the evidence of every current value marked. A value without evidence in
    the record is marked where its text occurs (case-insensitive), flagged as a guess."""
    marks: dict[str, list[tuple[int, int, str, bool]]] = {}
    texts = dict(product_fields(product))
    evidenced = set()
    for item in record.get("evidence") or []:
        label = f"{item['attribute']}: {item['value']}"
        for span in item.get("spans") or []:
            text = texts.get(span["field"], "")
            start, end = int(span["start"]), int(span["end"])
            if 0 <= start < end <= len(text):
                marks.setdefault(span["field"], []).append((start, end, label, False))
                evidenced.add((item["attribute"], item["value"]))
    for handle, values in attributes.items():
        for value in values:
            if (handle, value) not in evidenced:
                _guess(texts, marks, f"{handle}: {value}", value)
    return [FieldText(name, _pieces(text, marks.get(name, []))) for name, text in product_fields(product) if text]


def _guess(texts: dict[str, str], marks: dict[str, list[tuple[int, int, str, bool]]], label: str, value: str) -> None:
    needle = value.lower()
    if len(needle) < 2:
        return
    for name, text in texts.items():
        at = text.lower().find(needle)
        if at >= 0:
            marks.setdefault(name, []).append((at, at + len(needle), label, True))
            return


def _pieces(text: str, marks: list[tuple[int, int, str, bool]]) -> list[Piece]:
    cuts = sorted({0, len(text), *(m[0] for m in marks), *(m[1] for m in marks)})
    pieces = []
    for start, end in itertools.pairwise(cuts):
        covering = [m for m in marks if m[0] <= start and end <= m[1]]
        labels = tuple(dict.fromkeys(m[2] for m in covering))
        pieces.append(Piece(text[start:end], labels, bool(covering) and all(m[3] for m in covering)))
    return pieces


def value_rows(record: dict[str, Any], attributes: dict[str, list[str]]) -> list[ValueRow]:
    """One row per current value, with the record's evidence for it when the run gave one."""
    evidence = {(e["attribute"], e["value"]): e for e in record.get("evidence") or []}
    rows = []
    for handle, values in attributes.items():
        for value in values:
            found = evidence.get((handle, value))
            row = ValueRow(handle, value)
            if found is not None:
                row.confidence, row.source = found.get("confidence"), _how(found)
                row.spans = [s["text"] for s in found.get("spans") or []]
            elif value not in (record.get("attributes") or {}).get(handle, []):
                row.source = "reviewer"
            rows.append(row)
    return rows


def _how(evidence: dict[str, Any]) -> str:
    """Where a value came from, what found it and who decided it, as a reviewer reads it: "text, name" or
    "text, segment, judge"."""
    parts = [evidence.get("source") or "unknown", evidence.get("matched")]
    if evidence.get("decided") not in (None, "evidence"):
        parts.append(evidence["decided"])
    return ", ".join(str(p) for p in parts if p)
