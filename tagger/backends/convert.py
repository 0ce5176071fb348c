"""An HF-format model folder from a GGUF file, so that vLLM can load the embedded model.

transformers reads a GGUF (with the `gguf` package) and dequantizes it, but `save_pretrained` refuses a model loaded
from GGUF; so its weights are copied into a fresh model of the same config and that is saved, with the tokenizer and
its chat template. The result is cached under $TAGGER_CACHE_DIR/models: the conversion runs once per machine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tagger._paths import cache_dir
from tagger.backends.chat_format import chat_format, gguf_metadata
from tagger.backends.llamacpp import embedded_model_path

DONE = "tagger-converted.txt"  # written last: a folder without it is an interrupted conversion


def convert_gguf(gguf: Path, out: Path, dtype: str = "bfloat16") -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (out / DONE).is_file():
        return out
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):  # the weights are dequantized now; vLLM refuses "gguf" here
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    fresh.load_state_dict(loaded.state_dict())
    fresh.to(getattr(torch, dtype)).save_pretrained(str(tmp))
    if not getattr(tokenizer, "chat_template", None):  # a GGUF without one: its family's format, as llama.cpp uses
        format_ = chat_format(gguf_metadata(gguf))
        if format_ is None:
            raise RuntimeError(f"{gguf} carries no chat template; vLLM's chat API needs one")
        tokenizer.chat_template = format_.template
    tokenizer.save_pretrained(str(tmp))
    (tmp / DONE).write_text(f"converted from {gguf}\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


def embedded_hf_model() -> Path:
    """The embedded SmolLM2-135M-Instruct as an HF folder, converted on first use."""
    gguf = embedded_model_path()
    return convert_gguf(gguf, cache_dir("models") / (gguf.stem + "-hf"))
