"""Where tagger finds its bundled prompts and taxonomies, and where it caches things."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

_PACKAGE = Path(str(files("tagger")))


def bundled(folder: str) -> Path:
    """`prompts/` or `taxonomies/`: inside the installed wheel, or beside the package in a source checkout."""
    for candidate in (_PACKAGE / folder, _PACKAGE.parent / folder):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"tagger's bundled folder {folder!r} is missing from {_PACKAGE}")


def cache_dir(kind: str) -> Path:
    """A folder under $TAGGER_CACHE_DIR (default ~/.cache/tagger), created on demand."""
    root = Path(os.environ.get("TAGGER_CACHE_DIR") or Path.home() / ".cache" / "tagger")
    path = root / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
