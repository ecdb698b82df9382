"""Data parallelism for train.py: every process holds both models and its own rows of each batch.

Under `torchrun` (WORLD_SIZE, RANK, LOCAL_RANK in the environment) each process joins one
process group (NCCL on GPUs, gloo on CPUs) and wraps the model it trains in
DistributedDataParallel, which averages the gradients across processes during backward
(Li et al. 2020, https://arxiv.org/abs/2006.15704). Every process draws the same global
batch from the same seeded RNG (images, captions, t, noise, the autoencoder's eps) and keeps
rows rank * B ... (rank + 1) * B of it, so N processes x B rows take the step one process
takes with N * B rows. Without torchrun, world = 1 and all of this is a no-op.
tests/test_ddp.py runs 2 gloo processes against 1 process with the same global batch.
"""

import os

import torch
import torch.distributed as dist
from harness import TrainingError


def setup(device):
    """(world, rank, device): joins the process group under torchrun; a GPU per local rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 1, 0, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return world, dist.get_rank(), device


def teardown(world):
    if world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world):
    if world > 1:
        dist.barrier()


def wrap(model, world, device):
    """DDP for world > 1 (gradients all-reduced in backward), else the model itself."""
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)


def my_rows(batch_size, rank):
    """This process's rows of a global batch of world * batch_size."""
    return slice(rank * batch_size, (rank + 1) * batch_size)


def mean(x, world):
    """The mean of a scalar over processes: the global batch's loss (a NaN stops them all)."""
    if world > 1:
        x = x.detach().clone()
        dist.all_reduce(x)
        x = x / world
    return x


def check_replicas(model, world):
    """Every process must hold rank 0's parameters exactly; raise if one has drifted."""
    if world == 1:
        return
    flat = torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    differs = torch.tensor(float(not torch.equal(flat, ref)), device=flat.device)
    dist.all_reduce(differs)
    if differs.item():
        raise TrainingError(
            f"{int(differs.item())} process(es) ended with other weights than rank 0"
        )
