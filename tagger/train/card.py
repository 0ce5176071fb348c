"""What a student's folder says about itself: training.json (machine-readable) and MODEL_CARD.md (for people)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tagger.train.student import TRAINING_JSON

CARD = "MODEL_CARD.md"


def write_card(out: Path, facts: dict[str, Any]) -> None:
    (out / TRAINING_JSON).write_text(json.dumps(facts, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / CARD).write_text(card_text(facts), encoding="utf-8")


def add_evals(out: Path, lines: list[str]) -> None:
    """Record eval figures measured on the student (held-apart products, never trained on) in training.json and
    rewrite MODEL_CARD.md with them; a line already there is not added twice."""
    facts = json.loads((out / TRAINING_JSON).read_text(encoding="utf-8"))
    known = facts.setdefault("evals", [])
    known += [line for line in lines if line not in known]
    write_card(out, facts)


def card_text(facts: dict[str, Any]) -> str:
    data, run, settings = facts["data"], facts["run"], facts["settings"]
    losses = [h for h in run["history"] if "validation_loss" in h]
    lines = [
        f"# {out_name(facts)}: a tagger student",
        "",
        f"Fine-tuned from `{facts['base']['gguf']}` ({facts['base']['hf']})",
        f"by `tagger train` {facts['tagger_version']}: {'every weight' if settings['full'] else 'LoRA, merged'}.",
        "It answers tagger's attribute call (`--attributes model`, the category given) with no examples in the prompt,",
        f"for the taxonomy {facts['taxonomy']['name']!r} version {facts['taxonomy']['version']} and the template"
        f" {facts['template']['name']!r} ({facts['template']['hash']}). In the default pipeline (evidence) it is asked",
        "only what the evidence leaves open: a choice among rival candidates, and with `--extract` a span for each",
        "attribute nothing was found for; those calls are not the one it was trained on.",
        "",
        "## Data",
        f"- pool: `{data['path']}` (sha256 {data['sha256']})",
        f"- rows trained on: {data['train']}; held out for validation: {data['validation']};"
        f" skipped: {len(data['skipped'])} (listed in training.json)",
        f"- answer tokens in the training part: {data['answer_tokens']:,}",
        "",
        "## Settings",
        *[f"- {key}: {value}" for key, value in settings.items()],
        f"- processes: {run['processes']}; threads each: {run['threads']}",
        "",
        "## Figures",
        f"- optimizer steps: {run['steps']} of {run['planned_steps']}{_stopped(run, settings)};"
        f" training time {run['seconds']:.0f} s",
        f"- validation loss (mean per answer token): first {losses[0]['validation_loss']:.4f},"
        f" best {run['best_loss']:.4f} at step {run['best_step']} (the weights kept)"
        if losses
        else "- no validation share: the last step's weights are kept",
        "- attribute F1 and products/s: measure with `tagger eval` on labeled products the student was not trained on",
        '  (README, "Fine-tuning and distillation"); a figure measured that way may be added below.',
        *[f"- {line}" for line in facts.get("evals", [])],
        "",
        "## Files",
        "- `model.gguf`: llama.cpp (`tagger generate --model THIS_FOLDER`)",
        "- `hf/`: transformers / vLLM (`--backend vllm --model THIS_FOLDER`)",
        "",
    ]
    return "\n".join(lines)


def _stopped(run: dict[str, Any], settings: dict[str, Any]) -> str:
    if run["stopped_early"]:
        return " (stopped early: validation loss no longer improving)"
    epochs = run.get("epoch_steps")
    if epochs is not None and run["steps"] < epochs:
        return f" (--max-steps; {settings['epochs']} epoch(s) would take {epochs})"
    return ""


def out_name(facts: dict[str, Any]) -> str:
    return str(facts.get("name", "student"))
