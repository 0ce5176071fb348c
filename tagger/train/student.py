"""A trained student's folder, as `--model MODEL_DIR` names it: MODEL_DIR/model.gguf for llama.cpp, MODEL_DIR/hf for
vLLM, MODEL_DIR/training.json for what it was trained on. Light: the backends import it to resolve a folder."""

from __future__ import annotations

import json
from pathlib import Path

GGUF_NAME = "model.gguf"
HF_DIR = "hf"
TRAINING_JSON = "training.json"


def is_student(folder: Path) -> bool:
    return folder.is_dir() and (folder / TRAINING_JSON).is_file()


def llamacpp_file(model: Path) -> Path:
    """The GGUF to load for `--model`: a file as it is; a student's folder, its model.gguf."""
    if model.is_dir() and (model / GGUF_NAME).is_file():
        return model / GGUF_NAME
    return model


def hf_folder(model: str) -> str:
    """The HF folder to load for `--model` on vLLM: a student's folder, its hf/; anything else as it is."""
    path = Path(model)
    if is_student(path) and (path / HF_DIR).is_dir():
        return str(path / HF_DIR)
    return model


def student_name(file: Path) -> str | None:
    """For a file inside a student's folder: '<folder> (trained on sha256:<data>)', for provenance; else None."""
    folder = file.parent.parent if file.parent.name == HF_DIR else file.parent
    if not is_student(folder):
        return None
    try:
        data = json.loads((folder / TRAINING_JSON).read_text(encoding="utf-8"))["data"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        data = "unknown"
    return f"student {folder.name} (trained on sha256:{str(data)[:16]})"
