"""torchrun data parallel: gloo on CPU, NCCL on GPU. A single process is world size 1."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from model.bank import BankWrite


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> World:
    """Reads torchrun's RANK/WORLD_SIZE/LOCAL_RANK; initialises the process group if > 1."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    dev = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return World(rank, size, local, dev)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean(value: float, world: World) -> float:
    if world.size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=world.device)
    dist.all_reduce(t)
    return float(t.item()) / world.size


def gather_writes(writes: list[BankWrite], world: World) -> list[BankWrite]:
    """Every rank's bank writes, in rank order, on every rank."""
    if world.size == 1:
        return writes
    everyone: list[list[BankWrite] | None] = [None] * world.size
    dist.all_gather_object(everyone, writes)
    return [w for rank in everyone for w in (rank or [])]


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
