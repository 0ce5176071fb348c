"""The vLLM adapter's own decisions, tested without vLLM (the engine itself is tested in tests/vllm/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagger.backends.vllm import (
    DEFAULT_CPU_KV_CACHE_GIB,
    GIB,
    KV_CACHE_ENV,
    cpu_engine_settings,
    cpu_flags,
    pick_dtype,
    structured_outputs_config,
)


def test_cpu_flags_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512_bf16\nbugs\t\t: spectre\n")
    assert cpu_flags(cpuinfo) == frozenset({"fpu", "sse", "avx2", "avx512_bf16"})
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(
    ("asked", "on_cpu", "flags", "expected"),
    [
        (None, True, frozenset({"avx2"}), "float32"),  # bf16 without native kernels is ~5x slower here
        (None, True, frozenset({"avx2", "avx512_bf16"}), "bfloat16"),
        (None, True, frozenset({"amx_bf16"}), "bfloat16"),
        (None, False, frozenset(), "bfloat16"),  # a GPU
        ("float16", True, frozenset({"avx2"}), "float16"),  # what the user asks wins
    ],
)
def test_pick_dtype(asked: str | None, on_cpu: bool, flags: frozenset[str], expected: str) -> None:
    assert pick_dtype(asked, on_cpu, flags) == expected


def test_whitespace_is_fixed_engine_wide_where_vllm_allows_it() -> None:
    assert structured_outputs_config("xgrammar") == {"backend": "xgrammar", "disable_any_whitespace": True}
    assert structured_outputs_config("guidance") == {"backend": "guidance", "disable_any_whitespace": True}
    # vLLM rejects the whitespace option for any other engine, "auto" included.
    assert structured_outputs_config("auto") == {"backend": "auto"}


def test_on_a_cpu_the_kv_cache_is_sized_unless_the_user_sized_it() -> None:
    # Nothing set: tagger's default, so the engine neither reserves 0.92 of node 0's memory nor refuses to start.
    assert cpu_engine_settings(None, None, {})["kv_cache_memory_bytes"] == DEFAULT_CPU_KV_CACHE_GIB * GIB
    # The user's own variable is left to the engine, which reads it.
    assert "kv_cache_memory_bytes" not in cpu_engine_settings(None, None, {KV_CACHE_ENV: "6"})
    # An explicit option wins over the variable.
    assert cpu_engine_settings(2.5, None, {KV_CACHE_ENV: "6"})["kv_cache_memory_bytes"] == int(2.5 * GIB)
    with pytest.raises(ValueError, match="larger than 0 GiB"):
        cpu_engine_settings(0, None, {})


def test_on_a_cpu_the_engine_runs_eagerly_unless_told_otherwise() -> None:
    assert cpu_engine_settings(None, None, {})["enforce_eager"] is True  # torch.compile: minutes before a request
    assert cpu_engine_settings(None, False, {})["enforce_eager"] is False
