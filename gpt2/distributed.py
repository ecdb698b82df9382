"""Data parallelism for train.py: every process holds the whole model and its own rows of the batch.

Under `torchrun` (WORLD_SIZE, RANK, LOCAL_RANK in the environment) each process joins one
process group (NCCL on GPUs, gloo on CPUs), wraps the model in DistributedDataParallel, which
averages the gradients across processes during backward (Li et al. 2020,
https://arxiv.org/abs/2006.15704), and takes rows rank, rank + world, ... of one global batch
drawn by the same seeded sampler everywhere. Without torchrun, world = 1 and all of this is a
no-op. tests/test_ddp.py runs 2 gloo processes against 1 process with the same global batch.
"""

import os
from contextlib import nullcontext

import harness
import torch
import torch.distributed as dist


def setup(device_name: str):
    """(world, rank, device): joins the process group under torchrun; device per local rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = harness.pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return world, rank, device


def teardown(world: int):
    if world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: int):
    if world > 1:
        dist.barrier()


def wrap(model, world: int, device: torch.device):
    """DDP for world > 1 (gradients all-reduced in backward), else the model itself."""
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def no_sync_unless(last: bool, model, world: int):
    """Accumulation micro-steps skip the all-reduce; only the last one of a step pays for it."""
    return nullcontext() if world == 1 or last else model.no_sync()


def mean(x: torch.Tensor, world: int) -> torch.Tensor:
    """The mean of a scalar over processes (the global batch's loss)."""
    if world > 1:
        dist.all_reduce(x)
        x = x / world
    return x


def check_replicas(model, world: int):
    """Every process must hold rank 0's parameters exactly; raise if one has drifted."""
    if world == 1:
        return
    flat = torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    differs = torch.tensor(float(not torch.equal(flat, ref)), device=flat.device)
    dist.all_reduce(differs)
    if differs.item():
        raise harness.TrainingError(
            f"{int(differs.item())} process(es) ended with other weights than rank 0"
        )
