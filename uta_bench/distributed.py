"""torchrun support: exact sharding (no padded duplicates) and gathering to every rank.

``torchrun --nproc_per_node N -m uta_bench run zeroshot ...`` sets RANK / WORLD_SIZE / LOCAL_RANK;
:func:`setup` joins the process group through the one set-up in ``uta_bench.training.dist`` (NCCL on
CUDA, gloo on CPU). Work is split into fixed chunks
assigned round-robin (``chunks[rank::world]``), so every sample is computed exactly once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def current() -> Dist:
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        return Dist(td.get_rank(), td.get_world_size(), int(os.environ.get("LOCAL_RANK", td.get_rank())))
    return Dist()


def setup(device: str = "cpu") -> tuple[Dist, str]:
    """Join the torchrun process group if there is one (``training.setup_distributed``); returns
    (Dist, device for this rank)."""
    from uta_bench.training.dist import setup_distributed

    env = setup_distributed(device)
    if env.world_size <= 1:
        return Dist(), device
    return Dist(env.rank, env.world_size, env.local_rank), str(env.device)


def gather(obj, dist: Dist) -> list:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if not dist.enabled:
        return [obj]
    import torch.distributed as td

    out = [None] * dist.world
    td.all_gather_object(out, obj)
    return out


def broadcast(obj, dist: Dist):
    """Rank 0's ``obj`` on every rank."""
    if not dist.enabled:
        return obj
    import torch.distributed as td

    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]
