"""Fixtures that start the real thing: vLLM's offline engine in this process, and `vllm serve` as a subprocess.

These tests run in the vLLM environment (`make test-vllm`); the main suite deselects the `vllm` marker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SERVED_NAME = "smollm2"


@pytest.fixture(scope="session")
def hf_model() -> Path:
    from tagger.backends.convert import embedded_hf_model

    return embedded_hf_model()


@pytest.fixture(scope="session")
def vllm_backend(hf_model: Path) -> Iterator[object]:
    from tagger.backends.vllm import VLLMBackend

    backend = VLLMBackend(str(hf_model))  # the defaults a user gets: on a CPU, eager and a 1 GiB KV cache
    yield backend
    backend.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str  # the /v1 base URL
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """SIGTERM to the server's whole process group (the engine runs in children), then SIGKILL."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def start_server(model: Path, log: Path, timeout_s: float = 240) -> Server:
    """`vllm serve` as the README tells a user to start it: the offline backend's settings (its dtype, xgrammar with
    whitespace fixed, eager) and, on a CPU, the KV cache size that tagger's own backend sets for itself."""
    from tagger.backends.vllm import DEFAULT_CPU_KV_CACHE_GIB, GIB, default_dtype, structured_outputs_config

    port = free_port()
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
        "--served-model-name", SERVED_NAME, "--enforce-eager", "--max-model-len", "2048", "--dtype", default_dtype(),
        "--kv-cache-memory-bytes", str(DEFAULT_CPU_KV_CACHE_GIB * GIB),
        "--structured-outputs-config", json.dumps(structured_outputs_config("xgrammar")),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    handle = log.open("wb")
    process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}/v1", process, log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vllm serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(1)
    server.stop()
    raise RuntimeError(f"vllm serve did not answer /health in {timeout_s} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def vllm_server(hf_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(hf_model, tmp_path_factory.mktemp("server") / "vllm.log")
    yield server
    server.stop()
