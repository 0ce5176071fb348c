"""The product text the review page shows, read from the catalog the run tagged (the output does not carry it).

It is cleaned as the run cleaned it (HTML to text, Unicode, whitespace, title leftovers) but not cut to the token
budget: a cut only drops the end, so the evidence's offsets still hold, and the reviewer sees the whole text.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tagger.clean import Cleaner, CleaningConfig
from tagger.io import read_rows
from tagger.product import Columns, Product


def catalog_products(source: Path, columns: Columns, clean: bool = True, fmt: str | None = None) -> Iterator[Product]:
    """The catalog's readable products, cleaned for display; rows the run rejected are skipped here too."""
    cleaner = Cleaner(CleaningConfig(enabled=clean))
    for _row, product in read_rows(source, fmt, columns):
        if isinstance(product, Product):
            yield _for_display(product, cleaner) if clean else product


def _for_display(product: Product, cleaner: Cleaner) -> Product:
    fields = {name: cleaner.text(value) for name, value in product.fields.items()}
    return Product(
        id=product.id,
        title=cleaner.title(product.title),
        description=cleaner.text(product.description, keep_lines=True),
        fields={name: value for name, value in fields.items() if value},
    )
