"""Data parallelism for train.py: every process holds the whole model and its own rows of the batch.

Under `torchrun` (WORLD_SIZE, RANK, LOCAL_RANK in the environment) each process joins one
process group (NCCL on GPUs, gloo on CPUs) and wraps the model in DistributedDataParallel,
which averages the gradients across processes during backward (Li et al. 2020,
https://arxiv.org/abs/2006.15704). Every process draws the same global batch (same seed) and
keeps rows rank, rank + world, ... of it. BatchNorm normalises over each process's own rows
(as torch's DDP does without SyncBatchNorm; `--sync-bn`: over all rows, model.py's
BatchNorm2d.global_stats); DDP broadcasts rank 0's running statistics before every forward. Without torchrun, world = 1 and all of this is a no-op.
tests/test_ddp.py runs 2 gloo processes against 1 process with the same global batch.
"""

import os

import harness
import torch
import torch.distributed as dist


def setup(device_name):
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


def teardown(world):
    if world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model, world, device):
    """DDP for world > 1 (gradients all-reduced in backward), else the model itself."""
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def mean(x, world):
    """The mean of a scalar tensor over processes (the global batch's loss)."""
    if world > 1:
        dist.all_reduce(x)
        x = x / world
    return x


def check_replicas(model, world):
    """Every process must hold rank 0's parameters exactly (raise if not); then every process
    takes rank 0's buffers (BN running statistics), as DDP does before each forward."""
    if world == 1:
        return
    for buf in model.buffers():
        dist.broadcast(buf, src=0)
    flat = torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    differs = torch.tensor(float(not torch.equal(flat, ref)), device=flat.device)
    dist.all_reduce(differs)
    if differs.item():
        raise harness.TrainingError(f"{int(differs.item())} process(es) ended with other weights than rank 0")  # fmt: skip
