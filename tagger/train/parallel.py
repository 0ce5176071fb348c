"""Data parallelism on torch.distributed: `tagger train --processes N` spawns N local workers (gloo on CPUs), and a
run started by `torchrun` joins the group torchrun made (NCCL when there are GPUs). Each process takes its share of
every global batch and the gradients are summed (tagger.train.loop), so the update is one process's."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from tagger._threads import threads
from tagger.train.loop import Ranks


def torchrun_ranks() -> Ranks | None:
    """This process's ranks when torchrun started it (its group joined), else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


def spawn(processes: int, job: Callable[[Ranks], Any]) -> None:
    """Run `job` (picklable: a module-level function or a partial of one) in `processes` local workers."""
    import torch.multiprocessing as mp

    with socket.socket() as probe:  # a free loopback port for the group's rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start: Any = mp.start_processes  # type: ignore[attr-defined]  # torch's stub leaves it out
    start(_worker, args=(processes, port, job), nprocs=processes, start_method="spawn", join=True)


def _worker(rank: int, world: int, port: int, job: Callable[[Ranks], Any]) -> None:
    import torch.distributed as dist

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    # The cores are shared out, not oversubscribed: threads beyond the free cores spin at barriers.
    cores = threads()
    os.environ["TAGGER_THREADS"] = str(max(1, cores // world))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        job(Ranks(rank, world))
    finally:
        dist.destroy_process_group()
