"""One distributed set-up for every trainer and the torchrun side of evaluation.

``torchrun --nproc_per_node N ...`` sets RANK / WORLD_SIZE / LOCAL_RANK. With WORLD_SIZE > 1,
:func:`setup_distributed` joins the process group (gloo on CPU, nccl on CUDA, one GPU per local rank);
otherwise the run is a single process and no process group is created.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "cpu") -> DistEnv:
    """This process's place in the torchrun job, with the process group joined when there is one.

    ``device``: "cpu", "cuda", "cuda:N" or "auto" (CUDA when available). Under torchrun a CUDA device
    becomes ``cuda:LOCAL_RANK``.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = torch.device(device)
    if world <= 1:
        return DistEnv(0, 1, 0, dev)
    import torch.distributed as td

    local = int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not td.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        log.debug("joining process group: backend %s, world size %d", backend, world)
        td.init_process_group(backend=backend)
    return DistEnv(td.get_rank(), td.get_world_size(), local, dev)


def teardown_distributed(env: DistEnv) -> None:
    """Leave the process group (no-op for a single process or when it is already gone)."""
    if env.world_size <= 1:
        return
    import torch.distributed as td

    if td.is_initialized():
        td.destroy_process_group()
