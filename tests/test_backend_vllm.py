"""The vLLM adapter's own decisions, tested without vLLM (the engine itself is tested in tests/vllm/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagger.backends.vllm import cpu_flags, pick_dtype, structured_outputs_config


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
