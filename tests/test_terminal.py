"""Only tagger's own output reaches the terminal: no progress bar or load chatter of a library it uses.

The commands run as a user runs them (a subprocess, the default pipeline: retrieval decides the category, the
embedded model fills the attributes); their stderr is searched for what third-party libraries print.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE_CATALOG

# tqdm's bar (" 42%|####  | 5/12 [00:01<00:02, 3.1it/s]") and the load messages of sentence-transformers,
# transformers, llama.cpp and vLLM. tagger's own bar (rich) draws with other characters.
FOREIGN = re.compile(
    r"\d+%\|"
    r"|\d(?:it|s)/(?:s|it)\]"
    r"|Loading (?:weights|checkpoint|safetensors)"
    r"|\[transformers\]"
    r"|^llama_|^llm_load|^load_tensors"
    r"|^(?:\(\w+ pid=\d+\) )?(?:INFO|DEBUG|WARNING) \d\d-\d\d"
    r"|Triton is installed",
    re.MULTILINE,
)


def foreign_output(stderr: str) -> list[str]:
    return [m.group(0) for m in FOREIGN.finditer(stderr)]


def test_the_pattern_catches_what_libraries_print() -> None:
    """The check can fail: sentence-transformers' bar, as tagger printed it before, and vLLM's log are caught."""
    old = "Loading weights: 100%|##########| 103/103 [00:00<00:00, 8367.97it/s]\n"
    assert foreign_output(old)
    assert foreign_output("INFO 12-02 15:01:02 [core.py:114] Initializing a V1 LLM engine\n")
    assert foreign_output("(MainProcess pid=4124) WARNING 12-02 16:04:24 [vllm.py:1703] Enforce eager set\n")
    assert foreign_output("llama_model_loader: loaded meta data with 33 key-value pairs\n")
    assert not foreign_output("tagging ━━━━━━━━━━━━━━ 2/2 0:00:00\ntagged 2 (made by the model 2)\n")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TAGGER_THREADS=os.environ.get("TAGGER_THREADS", "1"))
    return subprocess.run(
        [sys.executable, "-m", "tagger", *args], capture_output=True, text=True, timeout=600, env=env, check=False
    )


def test_tag_prints_no_foreign_progress_bar() -> None:
    done = _run("tag", "--title", "Men's cotton crew neck t-shirt, navy", "--brand", "Hanes")
    assert done.returncode == 0, done.stderr
    assert '"strategy":"shortlist:' in done.stdout.replace(" ", "")  # the default pipeline ran: retrieval, then model
    assert foreign_output(done.stderr) == [], done.stderr


def test_generate_prints_only_its_own_progress(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(line + "\n" for line in SAMPLE_CATALOG.read_text().splitlines()[:2]))
    done = _run("generate", str(source), "-o", str(tmp_path / "out.jsonl"), "--no-cache")
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2
    assert foreign_output(done.stderr) == [], done.stderr


@pytest.mark.slow
def test_eval_prints_no_foreign_progress_bar(tmp_path: Path) -> None:
    done = _run("eval", str(ROOT / "evals" / "smoke.yaml"), "--limit", "2", "--out", str(tmp_path / "eval"))
    assert done.returncode in (0, 4), done.stderr  # 4: the gate judged two products; the output is what is tested
    assert foreign_output(done.stderr) == [], done.stderr
