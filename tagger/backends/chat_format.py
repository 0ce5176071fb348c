"""How a GGUF's chat messages become one prompt: the chat template stored in the file, or, for a model family whose
files often carry none (Gemma's base models), that family's turn format.

Without a template llama-cpp-python falls back to llama-2's `[INST]` format, foreign to Gemma 3 270M (it answers
with `<SYS>>` fragments); and its own "gemma" format drops the system message, where tagger's instructions are. So
the family's format is written here once, as a Jinja template, and both the backend (tagging) and the trainer (the
pairs a student learns from) render prompts with it: a student trained on such a base answers exactly the prompts it
will be given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagger.backends._llama_log import route_llama_logs

# Gemma's turns: no system role, so the system message opens the first user turn (as Gemma 3's instruct template does).
GEMMA_TURNS = (
    "{{ bos_token }}"
    "{% set ns = namespace(system='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set ns.system = ns.system + message['content'] + '\n\n' %}"
    "{% else %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else 'user') + '\n' }}"
    "{% if message['role'] == 'user' %}{{ ns.system }}{% set ns.system = '' %}{% endif %}"
    "{{ message['content'] + '<end_of_turn>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


@dataclass(frozen=True)
class ChatFormat:
    template: str
    source: str  # "gguf" (the file's own) or the family whose format stands in
    end_of_turn: str | None = None  # a token that ends the model's turn besides end-of-sequence


_FAMILIES = {"gemma": ChatFormat(GEMMA_TURNS, "gemma", "<end_of_turn>")}


def chat_format(metadata: Mapping[str, str]) -> ChatFormat | None:
    """The GGUF's own template; else its architecture family's format (gemma, gemma2, gemma3: Gemma's); else None."""
    own = metadata.get("tokenizer.chat_template")
    if own:
        return ChatFormat(own, "gguf")
    architecture = metadata.get("general.architecture", "")
    for family, known in _FAMILIES.items():
        if architecture.startswith(family):
            return known
    return None


def vocabulary_only(path: Path) -> Any:
    """A GGUF's tokenizer and metadata, no weights. (llama.cpp warns of a context overflow for a vocabulary-only
    model: a warning, which tagger's log routing keeps off stderr.)"""
    from llama_cpp import Llama

    route_llama_logs()
    return Llama(model_path=str(path), vocab_only=True, verbose=False)


def gguf_metadata(path: Path) -> dict[str, str]:
    vocabulary = vocabulary_only(path)
    try:
        return dict(vocabulary.metadata)
    finally:
        vocabulary.close()


def formatter(llama: Any, format_: ChatFormat) -> Any:
    """llama-cpp-python's Jinja formatter for a loaded model (weights or vocabulary only), with its BOS and EOS texts
    and the ids that stop generation (EOS, and the family's end-of-turn token)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    eos_id = int(llama.token_eos())
    stops = [eos_id]
    if format_.end_of_turn is not None:
        stops += list(llama.tokenize(format_.end_of_turn.encode("utf-8"), add_bos=False, special=True))
    return Jinja2ChatFormatter(
        template=format_.template,
        eos_token=llama._model.token_get_text(eos_id),
        bos_token=llama._model.token_get_text(int(llama.token_bos())),
        stop_token_ids=stops,
    )


def use_family_format(llama: Any) -> None:
    """For a GGUF without a template whose family is known, make `create_chat_completion` use that family's format;
    a GGUF with its own template keeps llama-cpp-python's handling of it."""
    format_ = chat_format(llama.metadata)
    if format_ is not None and format_.source != "gguf":
        llama.chat_handler = formatter(llama, format_).to_chat_handler()
