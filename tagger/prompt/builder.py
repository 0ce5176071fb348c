"""The variables a template sees at each stage, and the messages it renders from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tagger.product import Product
from tagger.prompt.render import Message, PromptTemplate
from tagger.taxonomy import Attribute, Category, Taxonomy


@dataclass(frozen=True)
class Example:
    """A few-shot turn: a product and the answer (JSON text) the model should have given for this stage."""

    product: Product
    answer: str


class PromptBuilder:
    """Renders one template for one taxonomy. It needs no model, so `tagger render` uses it alone."""

    def __init__(self, taxonomy: Taxonomy, template: PromptTemplate) -> None:
        self.taxonomy = taxonomy
        self.template = template
        self._shared = {
            "taxonomy": {"name": taxonomy.name, "version": taxonomy.version},
            "top_level": [c.name for c in taxonomy.roots],
            "tags": list(taxonomy.tags),
        }
        self._all_paths = [c.full_path for c in taxonomy.categories.values()]

    def _render(self, product: Product, stage: str, examples: Sequence[Example], **variables: Any) -> list[Message]:
        shots = [{"product": e.product.as_template_vars(), "answer": e.answer} for e in examples]
        return self.template.render(
            **self._shared, product=product.as_template_vars(), examples=shots, stage=stage, **variables
        )

    def category_messages(
        self, product: Product, choices: Sequence[Category] | None = None, examples: Sequence[Example] = ()
    ) -> list[Message]:
        paths = self._all_paths if choices is None else [c.full_path for c in choices]
        return self._render(product, "category", examples, categories=paths)

    def attribute_messages(
        self,
        product: Product,
        category: Category,
        examples: Sequence[Example] = (),
        attributes: Sequence[Attribute] | None = None,
    ) -> list[Message]:
        """The attribute stage: the category's attributes, or `attributes` (the choices left to the model)."""
        # Attribute objects, not dicts: in Jinja `attribute.values` on a dict would be the dict's method.
        shown = self.taxonomy.attributes_for(category.id) if attributes is None else attributes
        return self._render(product, "attributes", examples, category=category.full_path, attributes=shown)
