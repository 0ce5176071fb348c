"""The trained student written for both engines: an HF folder (vLLM) and a GGUF (llama.cpp).

The GGUF is written with the `gguf` package (llama.cpp's own Python library) rather than llama.cpp's conversion
script, which is not installed with llama-cpp-python and would have to be vendored: the student has exactly the base
model's architecture and tokenizer, so every key of the base GGUF's metadata (hyper-parameters, vocabulary, merges,
chat template) is copied as it is, and only the tensors change: each HF weight goes under the base GGUF's tensor name
(gguf's own name map for the base's architecture), changed as llama.cpp's converter changes it for that architecture:
llama's Q and K rows reordered for llama.cpp's rotary embedding; Gemma 3's norm weights stored as 1 + w (its RMSNorm
scales by 1 + w, and transformers subtracts the 1 when it reads a Gemma GGUF). Tests compare each layout's GGUF
logits with the HF model's.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

from tagger.train.student import GGUF_NAME, HF_DIR

GgufType = Literal["f16", "q8_0"]
# The architectures whose tensors the export can write (general.architecture -> gguf.MODEL_ARCH's member).
LAYOUTS = {"llama": "LLAMA", "gemma3": "GEMMA3"}


def merged(model: Any) -> Any:
    """A plain transformers model: LoRA adapters folded into the weights (a fully trained model as it is)."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model


def save_hf(model: Any, base: Path, out: Path) -> Path:
    """Weights in bfloat16 (as `tagger convert-model` writes the base), with the base folder's tokenizer files and
    chat template, so vLLM loads the student as it loads the base."""
    import torch

    folder = out / HF_DIR
    shutil.rmtree(folder, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(str(folder))
    model.to(torch.float32)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
        if (base / name).is_file():
            shutil.copy2(base / name, folder / name)
    return folder


def save_gguf(model: Any, base_gguf: Path, out: Path, kind: GgufType = "f16") -> Path:
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(base_gguf))
    arch = str(reader.fields["general.architecture"].contents())
    if arch not in LAYOUTS:
        known = ", ".join(LAYOUTS)
        raise ValueError(f"{base_gguf}: architecture {arch!r}; the GGUF export knows these tensor layouts: {known}")
    config = model.config
    by_name = _gguf_tensors(model, arch, config.num_hidden_layers)
    missing = [t.name for t in reader.tensors if t.name not in by_name]
    if missing:
        raise ValueError(f"the trained model has no weight for {missing[:3]} of {base_gguf}")
    path = out / GGUF_NAME
    partial = path.with_name(path.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch)
    _copy_metadata(reader, writer, kind)
    for tensor in reader.tensors:
        weight = _for_llamacpp(arch, tensor.name, by_name[tensor.name], config)
        if weight.ndim == 1:
            writer.add_tensor(tensor.name, weight.astype(np.float32))
        elif kind == "q8_0":
            quantized = gguf.quants.quantize(weight.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(tensor.name, quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(tensor.name, weight.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    partial.replace(path)
    return path


def _gguf_tensors(model: Any, arch: str, blocks: int) -> dict[str, Any]:
    """The model's weights (float32 numpy) by GGUF tensor name."""
    import gguf

    names = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, LAYOUTS[arch]), blocks)
    found = {}
    for hf_name, weight in model.state_dict().items():
        if not hf_name.endswith(".weight"):
            continue
        mapped = names.get_name(hf_name[: -len(".weight")])
        if mapped is not None:
            found[mapped + ".weight"] = weight.detach().float().cpu().numpy()
    return found


def _for_llamacpp(arch: str, name: str, weight: Any, config: Any) -> Any:
    if arch == "llama":
        return _permuted(name, weight, config)
    if arch == "gemma3" and name.endswith("norm.weight"):
        return weight + 1.0
    return weight


def _permuted(name: str, weight: Any, config: Any) -> Any:
    """HF's Q and K rows in llama.cpp's order: HF rotates the two halves of each head, llama.cpp adjacent pairs."""
    if name.endswith("attn_q.weight"):
        return rope_rows(weight, config.num_attention_heads)
    if name.endswith("attn_k.weight"):
        return rope_rows(weight, config.num_key_value_heads)
    return weight


def rope_rows(weight: Any, heads: int) -> Any:
    rows = weight.shape[0]
    return weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _copy_metadata(reader: Any, writer: Any, kind: GgufType) -> None:
    import gguf

    file_type = gguf.LlamaFileType.MOSTLY_Q8_0 if kind == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue  # the file's own header, and what the writer writes itself
        if field.name == "general.file_type":
            writer.add_file_type(file_type)
            continue
        main = field.types[0]
        sub = field.types[-1] if main == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), main, sub_type=sub)
