"""Token ids of a training pair exactly as the llama.cpp backend builds them at tagging time.

The prompt is formatted by llama-cpp-python's own chat formatter with the chat template stored in the GGUF (or, for a
GGUF without one, its family's format: tagger.backends.chat_format), and tokenized by llama.cpp's tokenizer with
special tokens parsed and no BOS added, as `create_chat_completion` does; the answer follows, then the end-of-turn
token the model must learn to stop with. The HF folder the student trains in was converted from the same GGUF, so the
ids mean the same tokens there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagger.backends.chat_format import chat_format, formatter, vocabulary_only
from tagger.errors import TaggerError
from tagger.train.pairs import Pair


@dataclass(frozen=True)
class Encoded:
    product_id: str
    ids: list[int]
    answer_start: int  # ids[answer_start:] are the answer and the end token: the only ones the loss is taken on

    @property
    def answer_tokens(self) -> int:
        return len(self.ids) - self.answer_start


class ChatTokenizer:
    def __init__(self, gguf: Path) -> None:
        self._vocab: Any = vocabulary_only(gguf)
        format_ = chat_format(self._vocab.metadata)
        if format_ is None:
            raise TaggerError(f"{gguf} carries no chat template: the student's prompts could not be rendered")
        self.eos_id = int(self._vocab.token_eos())
        self._format = formatter(self._vocab, format_)

    def prompt_ids(self, pair: Pair) -> list[int]:
        prompt = self._format(messages=[m.as_dict() for m in pair.messages]).prompt
        return list(self._vocab.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

    def encode(self, pair: Pair) -> Encoded:
        prompt = self.prompt_ids(pair)
        answer = list(self._vocab.tokenize(pair.answer.encode("utf-8"), add_bos=False, special=False))
        return Encoded(pair.product_id, prompt + answer + [self.eos_id], len(prompt))

    def close(self) -> None:
        self._vocab.close()
