"""Products as tagger reads them, and the checks that turn a raw input row into one or into a clear error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tagger.errors import TaggerError

DEFAULT_FIELDS: tuple[str, ...] = ("brand",)
# Only the fields asked for reach the prompt: dataset rows also carry gold labels that must never leak into it.

# Hard limits on raw input, so one runaway row cannot exhaust memory; text under them is cut to a token budget by
# cleaning (tagger.clean), which is what decides how much the model reads.
MAX_TITLE_CHARS = 2_000
MAX_FIELD_CHARS = 10_000
MAX_DESCRIPTION_CHARS = 1_000_000


class ProductError(TaggerError, ValueError):
    """A row that cannot be tagged. `kind` is a stable machine-readable reason."""

    def __init__(self, kind: str, message: str, product_id: str | None = None, row: int | None = None) -> None:
        where = f"row {row}" if row is not None else "product"
        if product_id is not None:
            where += f" (id {product_id!r})"
        super().__init__(f"{where}: {message}")
        self.kind = kind
        self.detail = message
        self.product_id = product_id
        self.row = row


@dataclass(frozen=True)
class Product:
    id: str
    title: str
    description: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Everything the model sees of the product: extractive values must come from here."""
        return "\n".join([self.title, *self.fields.values(), self.description])

    def as_template_vars(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "description": self.description, "fields": dict(self.fields)}


def _text(value: Any, name: str, limit: int, pid: str | None, row: int | None) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ProductError("wrong_type", f"field {name!r} must be text, got {type(value).__name__}", pid, row)
    if len(value) > limit:
        raise ProductError(
            "too_large", f"field {name!r} has {len(value):,} characters; the limit is {limit:,}", pid, row
        )
    return value.strip()


@dataclass(frozen=True)
class Columns:
    """Which input column holds what: a shop export names its columns its own way."""

    id: str = "id"
    title: str = "title"
    description: str = "description"
    fields: tuple[str, ...] = DEFAULT_FIELDS  # extra columns shown to the model under their own names

    @property
    def names(self) -> list[str]:
        return list(dict.fromkeys([self.id, self.title, self.description, *self.fields]))


def product_from_record(record: Mapping[str, Any], row: int | None = None, columns: Columns | None = None) -> Product:
    col = columns or Columns()
    raw_id = record.get(col.id)
    if raw_id is None or raw_id == "":
        raise ProductError("missing_id", f"no {col.id!r}", None, row)
    if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool):
        kind = type(raw_id).__name__
        raise ProductError("wrong_type", f"{col.id!r} must be text or an integer, got {kind}", None, row)
    pid = str(raw_id).strip()
    if record.get(col.title) in (None, ""):
        raise ProductError("missing_title", f"no {col.title!r}", pid, row)
    title = _text(record[col.title], col.title, MAX_TITLE_CHARS, pid, row)
    if not title:
        raise ProductError("missing_title", "the title is blank", pid, row)
    description = record.get(col.description)
    extras = {
        name: _text(record[name], name, MAX_FIELD_CHARS, pid, row)
        for name in col.fields
        if record.get(name) not in (None, "")
    }
    return Product(
        id=pid,
        title=title,
        description=_text(description, col.description, MAX_DESCRIPTION_CHARS, pid, row) if description else "",
        fields={k: v for k, v in extras.items() if v},
    )
