"""llama.cpp's own log lines, read at their true level into Python's logging.

llama.cpp reports through one callback with ggml's levels (ggml.h: DEBUG 1, INFO 2, WARN 3, ERROR 4; CONT 5 goes on
with the previous line). llama-cpp-python 0.3 reads them by an older enum, one level off: with `verbose=False` it
prints every warning to stderr as an error (Gemma's "llama_kv_cache_iswa: using full-size SWA cache" on each load)
and drops the errors as debug lines. tagger installs its own callback: every line goes to the `tagger.llama_cpp`
logger at its level, which passes errors only, unless a user's logging configuration sets that logger lower.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

LOGGER = logging.getLogger("tagger.llama_cpp")
LOGGER.setLevel(logging.ERROR)
LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
CONTINUED = 5

_state: dict[str, Any] = {"callback": None, "level": logging.INFO}


def log_line(level: int, text: bytes) -> None:
    """One piece of llama.cpp's log into the logger, at its level (a continuation at the level of the line before)."""
    python_level = _state["level"] if level == CONTINUED else LEVELS.get(level, logging.INFO)
    _state["level"] = python_level
    message = text.decode("utf-8", errors="replace").rstrip()
    if message:
        LOGGER.log(python_level, "%s", message)


def route_llama_logs() -> None:
    """Installs tagger's callback in llama.cpp, once per process; call it before any model is loaded."""
    if _state["callback"] is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        log_line(level, text)

    _state["callback"] = callback  # kept referenced: llama.cpp holds only the C pointer
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
