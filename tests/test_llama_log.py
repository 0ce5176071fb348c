"""llama.cpp's log lines at their true level: warnings off stderr, errors kept (tagger.backends._llama_log)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from tagger.backends._llama_log import LOGGER, log_line

LOAD_GEMMA = """
import sys
from tagger.backends.chat_format import vocabulary_only
from tagger.backends.llamacpp import LlamaCppBackend, model_file
vocabulary_only(model_file(None)).close()
LlamaCppBackend("gemma3-270m", n_ctx=512)
print("loaded", file=sys.stderr)
"""


def test_loading_models_prints_no_llama_cpp_warning_on_stderr() -> None:
    # Real models, a fresh process: its stderr is what a user sees. Before the routing, each Gemma load printed
    # "llama_kv_cache_iswa: using full-size SWA cache" (a warning llama-cpp-python read as an error), and a
    # vocabulary-only load a context-overflow warning.
    done = subprocess.run([sys.executable, "-c", LOAD_GEMMA], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "loaded"


def test_each_level_reaches_the_logger_at_its_own_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER.name)
    log_line(3, b"llama_kv_cache_iswa: using full-size SWA cache\n")
    log_line(4, b"llama_model_load: error loading model: ")
    log_line(5, b"tensor 'x' has wrong shape\n")
    log_line(2, b"sched_reserve: CPU compute buffer size = 514.50 MiB\n")
    log_line(1, b"\n")  # an empty piece is no record
    found = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER.name]
    assert found == [
        (logging.WARNING, "llama_kv_cache_iswa: using full-size SWA cache"),
        (logging.ERROR, "llama_model_load: error loading model:"),
        (logging.ERROR, "tensor 'x' has wrong shape"),
        (logging.INFO, "sched_reserve: CPU compute buffer size = 514.50 MiB"),
    ]


def test_by_default_only_errors_pass() -> None:
    assert LOGGER.level == logging.ERROR
    assert not LOGGER.isEnabledFor(logging.WARNING)
