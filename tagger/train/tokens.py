"""Token ids of a training pair exactly as the llama.cpp backend builds them at tagging time.

The prompt is formatted by llama-cpp-python's own chat formatter with the chat template stored in the GGUF, and
tokenized by llama.cpp's tokenizer with special tokens parsed and no BOS added, as `create_chat_completion` does; the
answer follows, then the end-of-turn token the model must learn to stop with. The HF folder the student trains in was
converted from the same GGUF, so the ids mean the same tokens there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        from llama_cpp import Llama
        from llama_cpp._utils import suppress_stdout_stderr  # llama-cpp-python is pinned: its helper stays
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        with suppress_stdout_stderr(disable=False):
            self._vocab: Any = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
        template = self._vocab.metadata.get("tokenizer.chat_template")
        if not template:
            raise TaggerError(f"{gguf} carries no chat template: the student's prompts could not be rendered")
        self.eos_id = int(self._vocab.token_eos())
        eos = self._vocab._model.token_get_text(self.eos_id)
        bos = self._vocab._model.token_get_text(int(self._vocab.token_bos()))
        self._format = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)

    def prompt_ids(self, pair: Pair) -> list[int]:
        prompt = self._format(messages=[m.as_dict() for m in pair.messages]).prompt  # type: ignore[misc]
        return list(self._vocab.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

    def encode(self, pair: Pair) -> Encoded:
        prompt = self.prompt_ids(pair)
        answer = list(self._vocab.tokenize(pair.answer.encode("utf-8"), add_bos=False, special=False))
        return Encoded(pair.product_id, prompt + answer + [self.eos_id], len(prompt))

    def close(self) -> None:
        self._vocab.close()
