"""Jinja2 prompt templates that render a product into chat messages.

A template marks each message with a call block, so that product text can never forge a message boundary:

    {% call message("system") %}You tag products.{% endcall %}
    {% call message("user") %}{{ product.title }}{% endcall %}

It is rendered once per stage (`stage` is "category" or "attributes"); the variables are listed in README.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2

from tagger._paths import bundled
from tagger.errors import TaggerError

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")
DEFAULT_TEMPLATE = "default"


class PromptError(TaggerError, ValueError):
    """A template could not be found or rendered; the message names the template and the cause."""


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


class PromptTemplate:
    """One template file. `name` and `hash` go into every output record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.stem
        source = path.read_text(encoding="utf-8")
        self.hash = hashlib.sha256(source.encode()).hexdigest()[:16]
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(path.parent), str(bundled("prompts"))]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
            autoescape=False,  # the output is a prompt, not HTML  # noqa: S701
        )
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise PromptError(f"template {self.name!r} ({path}), line {exc.lineno}: {exc.message}") from exc

    def render(self, **variables: Any) -> list[Message]:
        messages: list[Message] = []

        def message(role: str, caller: Any) -> str:
            if role not in ROLES:
                raise PromptError(f"template {self.name!r}: unknown message role {role!r} (use one of {ROLES})")
            messages.append(Message(role, caller().strip()))
            return ""

        try:
            self._template.render(**variables, message=message)
        except jinja2.UndefinedError as exc:
            raise PromptError(f"template {self.name!r}: undefined variable: {exc.message}") from exc
        if not messages:
            raise PromptError(f"template {self.name!r} rendered no message; wrap text in {{% call message(...) %}}")
        return messages


def load_template(spec: str | Path | None = None) -> PromptTemplate:
    """A template by path (`my/prompt.j2`) or by the name of one bundled in prompts/ (`default`)."""
    text = str(spec or DEFAULT_TEMPLATE)
    path = Path(text).expanduser()
    if not path.is_file():
        path = bundled("prompts") / f"{text}.j2"
    if not path.is_file():
        available = sorted(p.stem for p in bundled("prompts").glob("*.j2"))
        raise PromptError(f"template {text!r} not found: not a file, nor one of the bundled {available}")
    return PromptTemplate(path)
