"""The training loop: LoRA (or every weight) on a causal LM, the loss on answer tokens only, a held-out share for
validation with early stopping, checkpoints that survive a kill, and data parallelism over torch.distributed.

Determinism: the data order of each epoch comes from the seed, a step's place in it from the step number, and the
dropout's random numbers are reseeded at each step; so a run resumed from a checkpoint takes the same steps as one
that was never stopped, and N processes splitting each global batch compute the same update as one process (their
gradients are summed, each normalized by the global batch's answer-token count).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tagger.train.tokens import Encoded

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CHECKPOINT = "checkpoint"
BEST = "best.pt"


class Settings(BaseModel):
    """A training run's settings; they go into training.json and the model card."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    full: bool = False  # every weight instead of LoRA adapters
    lora_rank: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    epochs: int = Field(default=3, ge=1)
    max_steps: int | None = Field(default=None, ge=1)  # stop after this many optimizer steps (tiny runs, tests)
    batch_size: int = Field(default=8, ge=1)  # sequences per optimizer step, over all processes
    learning_rate: float | None = None  # default: 2e-4 with LoRA, 3e-5 full
    warmup_steps: int = Field(default=5, ge=0)
    max_length: int = Field(default=768, ge=16)  # longer pairs are skipped and reported, never cut
    validation: float = Field(default=0.1, ge=0, lt=1)  # the held-out share of the pool
    eval_every: int | None = Field(default=None, ge=1)  # steps between validations; default: once per epoch
    patience: int = Field(default=2, ge=1)  # validations without improvement before stopping early
    checkpoint_every: int = Field(default=20, ge=1)
    seed: int = 0

    @property
    def lr(self) -> float:
        return self.learning_rate or (3e-5 if self.full else 2e-4)


@dataclass
class State:
    """What a checkpoint saves besides the weights and the optimizer."""

    step: int = 0
    best_loss: float | None = None
    best_step: int = 0
    stale: int = 0  # validations since the best one
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)  # {step, train_loss} and {step, validation_loss}
    seconds: float = 0.0  # training time so far, over resumes


@dataclass(frozen=True)
class Ranks:
    """This process's place among the data-parallel processes."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def split(examples: Sequence[Encoded], share: float, seed: int) -> tuple[list[Encoded], list[Encoded]]:
    """Train and validation parts, chosen by a seeded shuffle: the same pool and seed give the same split."""
    import random

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = round(len(examples) * share) if share > 0 and len(examples) > 1 else 0
    held = min(held, len(examples) - 1)
    validation = sorted(order[:held])
    chosen = set(validation)
    return [e for i, e in enumerate(examples) if i not in chosen], [examples[i] for i in validation]


class Trainer:
    def __init__(
        self,
        base: Path,
        out: Path,
        settings: Settings,
        train: Sequence[Encoded],
        validation: Sequence[Encoded],
        ranks: Ranks = Ranks(),
        progress: Callable[[State, int, float | None], None] | None = None,
    ) -> None:
        import torch

        torch.manual_seed(settings.seed)
        self.torch = torch
        self.settings, self.out, self.ranks = settings, out, ranks
        self.train_set, self.validation_set = list(train), list(validation)
        self.device = _device(ranks)
        self.model = load_trainable(base, settings).to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
        self.steps_per_epoch = math.ceil(len(self.train_set) / settings.batch_size)
        self.total_steps = self.steps_per_epoch * settings.epochs
        if settings.max_steps is not None:
            self.total_steps = min(self.total_steps, settings.max_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._rate)
        self.state = State()
        self.progress = progress
        self.resumed_from: int | None = None  # the step a checkpoint was resumed at

    def _rate(self, step: int) -> float:
        """Linear warmup, then linear decay to a tenth."""
        warmup = self.settings.warmup_steps
        if step < warmup:
            return (step + 1) / (warmup + 1)
        left = (self.total_steps - step) / max(1, self.total_steps - warmup)
        return 0.1 + 0.9 * max(0.0, left)

    # --- the run -------------------------------------------------------------------------------------------------

    def run(self) -> State:
        if self.resume():
            self.resumed_from = self.state.step
        eval_every = self.settings.eval_every or self.steps_per_epoch
        while self.state.step < self.total_steps and not self.state.stopped_early:
            started = time.perf_counter()
            loss = self.train_step(self.batch(self.state.step))
            self.state.step += 1
            self.state.seconds += time.perf_counter() - started
            self.state.history.append({"step": self.state.step, "train_loss": loss})
            if self.validation_set and (self.state.step % eval_every == 0 or self.state.step == self.total_steps):
                self.validate()
            if self.progress is not None:
                self.progress(self.state, self.total_steps, loss)
            if self.state.step % self.settings.checkpoint_every == 0 or self.state.step == self.total_steps:
                self.checkpoint()
        return self.state

    def batch(self, step: int) -> list[Encoded]:
        """The global batch of optimizer step `step`: the epoch's seeded order, sliced by the step's place in it."""
        epoch, place = divmod(step, self.steps_per_epoch)
        generator = self.torch.Generator().manual_seed(self.settings.seed * 1000 + epoch)
        order = self.torch.randperm(len(self.train_set), generator=generator).tolist()
        size = self.settings.batch_size
        return [self.train_set[i] for i in order[place * size : (place + 1) * size]]

    def train_step(self, batch: list[Encoded]) -> float:
        torch = self.torch
        self.model.train()
        tokens = sum(e.answer_tokens for e in batch)
        total = 0.0
        for place in range(self.ranks.rank, len(batch), self.ranks.world):
            # Dropout's random numbers depend on the step and the example only: the same after a resume, and the
            # same whichever process takes the example.
            torch.manual_seed((self.settings.seed * 1_000_003 + self.state.step) * 4096 + place)
            loss = answer_loss(self.model, batch[place]) / tokens
            loss.backward()
            total += float(loss.detach())
        total = self._sum_gradients(total)
        params = [p for p in self.model.parameters() if p.requires_grad]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    def _sum_gradients(self, loss: float) -> float:
        if self.ranks.world == 1:
            return loss
        import torch.distributed as dist

        for param in self.model.parameters():
            if param.requires_grad:
                if param.grad is None:
                    param.grad = self.torch.zeros_like(param)
                dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
        summed = self.torch.tensor([loss], dtype=self.torch.float64, device=self.device)
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return float(summed.item())

    def validate(self) -> float:
        """The mean answer-token loss on the held-out share; keeps the best weights, counts stale validations."""
        torch = self.torch
        self.model.eval()
        mine = self.validation_set[self.ranks.rank :: self.ranks.world]
        with torch.no_grad():
            summed = sum(float(answer_loss(self.model, e)) for e in mine)
        totals = torch.tensor(
            [summed, float(sum(e.answer_tokens for e in mine))], dtype=torch.float64, device=self.device
        )
        if self.ranks.world > 1:
            import torch.distributed as dist

            dist.all_reduce(totals, op=dist.ReduceOp.SUM)
        loss = float(totals[0] / max(1.0, float(totals[1])))
        self.state.history.append({"step": self.state.step, "validation_loss": loss})
        if self.state.best_loss is None or loss < self.state.best_loss:
            self.state.best_loss, self.state.best_step, self.state.stale = loss, self.state.step, 0
            if self.ranks.main:
                _atomic_save(torch, trainable_state(self.model), self.out / BEST)
        else:
            self.state.stale += 1
            self.state.stopped_early = self.state.stale >= self.settings.patience
        return loss

    # --- checkpoints ---------------------------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Weights, optimizer, schedule and state, written to a new folder that replaces the old one in one rename:
        a kill at any moment leaves the last complete checkpoint."""
        if self.ranks.main:
            folder = self.out / CHECKPOINT
            partial = self.out / (CHECKPOINT + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            saved = {
                "weights": trainable_state(self.model),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
            }
            self.torch.save(saved, partial / "train.pt")
            (partial / "state.json").write_text(json.dumps(self.state.__dict__, indent=1))
            old = self.out / (CHECKPOINT + ".old")
            shutil.rmtree(old, ignore_errors=True)
            if folder.exists():
                folder.replace(old)
            partial.replace(folder)
            shutil.rmtree(old, ignore_errors=True)
        self._barrier()

    def resume(self) -> bool:
        folder = self.out / CHECKPOINT
        if not (folder / "state.json").is_file():
            return False
        saved = self.torch.load(folder / "train.pt", weights_only=False, map_location=self.device)
        self.model.load_state_dict(saved["weights"], strict=False)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.state = State(**json.loads((folder / "state.json").read_text()))
        return True

    def _barrier(self) -> None:
        if self.ranks.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def load_best(self) -> None:
        """The weights of the best validation (the last step's without validation)."""
        if self.validation_set and (self.out / BEST).is_file():
            best = self.torch.load(self.out / BEST, weights_only=True, map_location=self.device)
            self.model.load_state_dict(best, strict=False)


def _device(ranks: Ranks) -> Any:
    """This process's GPU when there are GPUs (one per local process, as torchrun sets LOCAL_RANK), else the CPU."""
    import torch

    if not torch.cuda.is_available():
        return torch.device("cpu")
    local = int(os.environ.get("LOCAL_RANK", ranks.rank)) % torch.cuda.device_count()
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def load_trainable(base: Path, settings: Settings) -> Any:
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # tagger's own bar is the one shown
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    if settings.full:
        return model
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=LORA_TARGETS,
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft calls a transformers method deprecated upstream
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, config)


def answer_loss(model: Any, example: Encoded) -> Any:
    """The summed cross-entropy of the answer tokens. Logits are computed only where an answer token is predicted:
    the 49k-wide output layer over the whole prompt would be most of the step's time (STACK.md)."""
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([example.ids], device=device)
    start = example.answer_start
    keep = torch.arange(start - 1, len(example.ids) - 1, device=device)
    logits = model(input_ids=ids, logits_to_keep=keep).logits[0]
    return torch.nn.functional.cross_entropy(logits.float(), ids[0, start:], reduction="sum")


def trainable_state(model: Any) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _atomic_save(torch: Any, value: Any, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    torch.save(value, partial)
    os.replace(partial, path)
