"""Prompts: Jinja2 templates rendered per product and stage into chat messages."""

from tagger.prompt.builder import Example, PromptBuilder
from tagger.prompt.render import DEFAULT_TEMPLATE, Message, PromptError, PromptTemplate, load_template

__all__ = ["DEFAULT_TEMPLATE", "Example", "Message", "PromptBuilder", "PromptError", "PromptTemplate", "load_template"]
