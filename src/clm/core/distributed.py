"""Data-parallel training across processes started by ``torchrun``, in one place.

``torchrun --nproc_per_node N -m clm gan train ...`` starts N copies of the
command and tells each its place through the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``). This module
turns that into a process group (gloo on the CPU, NCCL on CUDA, one GPU per
process: ``cuda:LOCAL_RANK``) and holds every helper the training loops use
to split a global batch over the ranks and to put the pieces back together:

- :class:`BatchDraws`: the random draws that make a global batch (indices,
  noise) come from one generator in the same state on every rank; each rank
  keeps its slice. So N processes at global batch B see exactly the rows one
  process at batch B sees, and their averaged gradient is the same number up
  to the order of float additions.
- :func:`sum_across_ranks` (differentiable), :func:`batch_mean`,
  :func:`batch_std`, :class:`CrossRankBatchNorm`: statistics over the global
  batch for the layers that couple the samples of a batch (BatchNorm in G,
  the minibatch-std feature of D), which otherwise would see only a slice.
- :func:`average_gradients` and :func:`mean_across_ranks`: what DDP does to
  gradients, for learners that compute theirs without ``loss.backward()``
  (the DQN), and the logged figures of the global batch.

Without torchrun (``WORLD_SIZE`` unset or 1) no process group is made and
every helper is the identity: a plain run computes exactly what it did
before this module existed.
"""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from clm.core.errors import UserError
from clm.core.runtime import resolve_device


# -- where this process stands ------------------------------------------------------------------
@dataclass(frozen=True)
class LaunchEnv:
    """What torchrun told this process: its global rank, the number of
    processes in all, and its index among the processes of its machine."""

    rank: int
    world_size: int
    local_rank: int


def launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv | None:
    """The torchrun variables of ``environ`` (default ``os.environ``), or
    None for a plain process (no ``WORLD_SIZE``, or a world of one, which
    runs as a plain process: no process group, the numbers of a plain run)."""
    environ = os.environ if environ is None else environ
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return None
        rank, local_rank = int(environ["RANK"]), int(environ.get("LOCAL_RANK", environ["RANK"]))
    except (KeyError, ValueError):
        raise UserError("WORLD_SIZE is set but RANK/LOCAL_RANK are missing or not integers: start data-parallel "
                        "runs with torchrun (torchrun --nproc_per_node N -m clm ...)", exit_code=2)
    if not 0 <= rank < world or local_rank < 0:
        raise UserError(f"RANK {rank} is outside WORLD_SIZE {world}: start data-parallel runs with torchrun",
                        exit_code=2)
    return LaunchEnv(rank, world, local_rank)


def launched_as_main(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is rank 0 of a torchrun launch, or a plain
    process (readable before the process group exists: it decides who may
    create the run folder)."""
    env = launch_env(environ)
    return env is None or env.rank == 0


def active() -> bool:
    """Whether a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0 (or a plain process): the one that writes the run folder, logs and prints."""
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def rank_seed(seed: int, stride: int = 1) -> int:
    """This rank's own seed, ``seed + rank * stride`` (rank 0 keeps ``seed``):
    one seed per rank for what each rank draws for itself (noise inside a
    network, its own environments)."""
    return seed + rank() * stride


def local_share(global_n: int, what: str, world: int | None = None) -> int:
    """``global_n / world_size``: each rank's share of a global batch; a clear
    error when it does not divide (the ranks' slices must be equal, so that
    averaging their gradients gives the global batch's)."""
    world = world_size() if world is None else world
    if global_n % world:
        raise UserError(f"{what}={global_n} does not divide over {world} processes: each rank takes an equal slice "
                        f"of the global batch; use a multiple of {world} (e.g. {what}={global_n // world * world or world})",
                        exit_code=2)
    return global_n // world


# -- devices, backends, the process group ------------------------------------------------------
def backend_for(device: torch.device) -> str:
    """NCCL for CUDA tensors, gloo for CPU tensors (NCCL runs only on GPUs)."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def rank_device(requested: str, local_rank: int, cuda_devices: int) -> torch.device:
    """The device of the process with ``local_rank`` on a machine with
    ``cuda_devices`` GPUs, for a config's ``device`` (cpu, cuda or auto): one
    GPU per process, ``cuda:LOCAL_RANK``, since NCCL refuses two ranks on
    one GPU. A pure function of its arguments (tested without GPUs)."""
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "auto":
        if cuda_devices == 0:
            return torch.device("cpu")
        requested = "cuda"
    if requested == "cuda":
        if cuda_devices == 0:
            raise UserError("device=cuda asked for, but torch sees no CUDA GPU; use device=cpu (gloo) or device=auto",
                            exit_code=2)
        if local_rank >= cuda_devices:
            raise UserError(f"this process has LOCAL_RANK {local_rank} but the machine has {cuda_devices} GPU(s); "
                            f"data-parallel training takes one GPU per process: use torchrun --nproc_per_node "
                            f"{cuda_devices} or fewer, or device=cpu", exit_code=2)
        return torch.device("cuda", local_rank)
    if requested.startswith("cuda:"):
        raise UserError(f"device={requested}: under torchrun each process takes the GPU of its LOCAL_RANK; give "
                        f"device=cuda (or auto)", exit_code=2)
    raise UserError(f"unknown device '{requested}': use cpu, cuda or auto", exit_code=2)


def device_for(requested: str) -> torch.device:
    """This process's device: :func:`rank_device` under torchrun, else
    :func:`clm.core.runtime.resolve_device` (a plain run: as ever)."""
    env = launch_env()
    if env is None:
        return resolve_device(requested)
    return rank_device(requested, env.local_rank, torch.cuda.device_count() if torch.cuda.is_available() else 0)


@contextmanager
def process_group(requested_device: str) -> Iterator[torch.device]:
    """Join the process group torchrun prepared (gloo for a CPU device, NCCL
    for CUDA) for the length of the block; yields this process's device.
    A plain process gets its device and no group. A group made by the caller
    is used as it is and left to the caller to close."""
    device = device_for(requested_device)
    env = launch_env()
    if env is None or dist.is_initialized():
        yield device
        return
    if not dist.is_available():
        raise UserError("this torch was built without torch.distributed: data-parallel training is not available",
                        exit_code=2)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group(backend_for(device), device_id=device)
    else:
        dist.init_process_group(backend_for(device))
    try:
        yield device
    except BaseException:
        dist.destroy_process_group()  # no barrier: the other ranks may never reach one
        raise
    # Leave together: a rank that tore down its gloo connections while another still had the last
    # collective's messages in flight aborted at exit ("terminate called without an active
    # exception", 2 runs in about 60 on a loaded 2-core machine). The barrier waits for rank 0's
    # final evaluation too, as torchrun itself waits for every rank.
    dist.barrier()
    gc.collect()  # no collective state left for the interpreter's own teardown
    dist.destroy_process_group()


def _collective_device() -> torch.device:
    """Where tensors must live for the group's collectives (NCCL: this rank's GPU)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# -- the global batch, drawn once and sliced --------------------------------------------------------
def default_generator(device: torch.device) -> torch.Generator:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.default_generators[device.index if device.index is not None else torch.cuda.current_device()]
    return torch.default_generator


class BatchDraws:
    """The random draws a training loop makes for its global batches
    (indices, conditions, noise), and each rank's slice of them.

    A plain process draws from torch's default generator with the very
    calls the loop made before (the same numbers). Data-parallel, every rank
    holds a generator in the same state and draws the whole global batch,
    then keeps rows ``[rank * B / N, (rank + 1) * B / N)``: the ranks together
    see exactly the rows one process would, whatever N is. Drawing a whole
    batch of indices or noise costs microseconds; the networks' passes, which
    are what the ranks share out, cost milliseconds.
    """

    def __init__(self, device: torch.device, generator: torch.Generator | None = None, rank: int = 0,
                 world: int = 1):
        self.device, self.generator, self.rank, self.world = torch.device(device), generator, rank, world

    @classmethod
    def for_training(cls, seed: int, device: torch.device) -> "BatchDraws":
        """The draws of a loop whose models were just built from ``seed`` on
        every rank. Data-parallel: the shared generator continues the default
        generator's stream (so it is one process's stream), and this rank's
        default generators are reseeded with :func:`rank_seed`, one seed per
        rank, for the noise drawn inside networks (Gumbel, DiffAugment),
        which no slicing can make equal to one process's."""
        if not active():
            return cls(device)
        shared = torch.Generator(device=device)
        shared.set_state(default_generator(device).get_state())
        torch.manual_seed(rank_seed(seed))
        return cls(device, shared, rank(), world_size())

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def mine(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch ``x``."""
        if self.world == 1:
            return x
        k = local_share(len(x), "batch", self.world)
        return x[self.rank * k:(self.rank + 1) * k]

    def randint(self, high: int, n: int) -> torch.Tensor:
        return self.mine(torch.randint(high, (n,), device=self.device, generator=self.generator))

    def randn(self, n: int, *shape: int) -> torch.Tensor:
        return self.mine(torch.randn(n, *shape, device=self.device, generator=self.generator))

    def rand(self, n: int, *shape: int) -> torch.Tensor:
        return self.mine(torch.rand(n, *shape, device=self.device, generator=self.generator))

    def state(self) -> torch.Tensor | None:
        return None if self.generator is None else self.generator.get_state()

    def set_state(self, state: torch.Tensor | None) -> None:
        if self.generator is not None and state is not None:
            self.generator.set_state(state.cpu())


# -- collectives ---------------------------------------------------------------------------------
class _SumAcrossRanks(torch.autograd.Function):
    """y = sum over ranks of x, on every rank. Each rank's loss depends on
    every rank's x through y, so the gradient of x is the sum over ranks of
    the gradients of y: the backward pass is the same collective. It calls
    itself through ``apply``, so it is differentiable twice (a gradient
    penalty through the minibatch-std feature)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _SumAcrossRanks.apply(grad)


def sum_across_ranks(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over the ranks (differentiable); ``x`` itself in a plain process."""
    return _SumAcrossRanks.apply(x) if active() else x


def batch_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean over dim 0 of the global batch whose rows ``x`` holds a slice
    of (differentiable); ``x.mean(0)`` in a plain process. The row count
    travels in the same collective, so unequal slices are averaged right."""
    if not active():
        return x.mean(0)
    s = x.sum(0)
    packed = sum_across_ranks(torch.cat([s.reshape(-1), s.new_full((1,), float(len(x)))]))
    return (packed[:-1] / packed[-1]).reshape(s.shape)


def _global_moments(x: torch.Tensor, dims: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, biased variance, count) over ``dims`` of the global batch whose
    slice ``x`` is, in float64, in one collective (differentiable). One pass,
    E[x^2] - E[x]^2: every collective is a wait for the slowest rank, so one
    beats two; float64 makes the cancellation harmless (float32 activations
    have 24 bits; float64 keeps 29 more than the difference needs when the
    mean is up to ~1000 standard deviations away from 0)."""
    xd = x.double()
    s, ss = xd.sum(dims), xd.pow(2).sum(dims)
    n_local = xd.numel() // max(s.numel(), 1)
    packed = sum_across_ranks(torch.cat([s.reshape(-1), ss.reshape(-1), s.new_full((1,), float(n_local))]))
    k = s.numel()
    n = packed[-1]
    mean = packed[:k] / n
    var = (packed[k:2 * k] / n - mean.pow(2)).clamp_min(0.0)
    return mean.reshape(s.shape), var.reshape(s.shape), n


def batch_std(x: torch.Tensor) -> torch.Tensor:
    """``x.std(0, unbiased=False)`` over the global batch (differentiable, in x's dtype)."""
    if not active():
        return x.std(0, unbiased=False)
    _, var, _ = _global_moments(x, [0])
    return var.sqrt().to(x.dtype)


def average_gradients(grads: list[torch.Tensor]) -> None:
    """Replace each gradient by its mean over the ranks, in place: what
    DistributedDataParallel does during ``loss.backward()``, for a learner
    that gets its gradients another way (``autograd.grad``, a NumPy pass).
    Each rank's loss is the mean over its equal slice, so the mean of the
    ranks' gradients is the gradient of the global batch's mean loss."""
    if not active():
        return
    world = dist.get_world_size()
    if len(grads) == 1:
        dist.all_reduce(grads[0])
        grads[0].div_(world)
        return
    flat = torch.cat([g.reshape(-1) for g in grads])  # one collective, as DDP's buckets do
    dist.all_reduce(flat)
    flat.div_(world)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_from_main(tensors: list[torch.Tensor]) -> None:
    """Overwrite ``tensors`` (in place) with rank 0's, as DDP does with a
    model's parameters and buffers when it wraps it."""
    if not active():
        return
    dev = _collective_device()
    for t in tensors:
        if t.device == dev:
            dist.broadcast(t, 0)
        else:
            buf = t.to(dev)
            dist.broadcast(buf, 0)
            t.copy_(buf)


def mean_across_ranks(values: dict[str, float]) -> dict[str, float]:
    """Each figure's mean over the ranks (one collective): for per-rank means
    over equal slices, the global batch's figure, the same on every rank, so
    that a check on it (divergence) stops every rank at the same step."""
    if not active() or not values:
        return values
    keys = list(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def sum_counts(*counts: int) -> tuple[int, ...]:
    """Integer counts summed over the ranks (episodes, successes)."""
    if not active():
        return counts
    t = torch.tensor(counts, dtype=torch.int64, device=_collective_device())
    dist.all_reduce(t)
    return tuple(int(v) for v in t.tolist())


def gather_tensors(x: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's ``x`` (same shape and dtype on every rank), in rank order, on every rank."""
    if not active():
        return [x]
    dev = _collective_device()
    parts = [torch.empty_like(x, device=dev) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.to(dev))
    return [p.to(x.device) for p in parts]


def rank_rng_states() -> list[torch.Tensor]:
    """The default torch generator state (CPU, then this rank's GPU when it
    has one) of every rank, gathered for a checkpoint that resumes each
    rank's own noise stream."""
    own = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        own = torch.cat([own, torch.cuda.get_rng_state()])
    return gather_tensors(own)


def set_rank_rng_state(states: list[torch.Tensor] | None, fallback_seed: int) -> bool:
    """Restore this rank's entry of :func:`rank_rng_states`; when the
    checkpoint holds none for this world size, reseed with
    ``rank_seed(fallback_seed)``. Returns whether the state was restored."""
    if not states or len(states) != world_size():
        torch.manual_seed(rank_seed(fallback_seed))
        return False
    own = states[rank()].to(torch.uint8).cpu()
    n_cpu = torch.get_rng_state().numel()
    torch.set_rng_state(own[:n_cpu])
    if own.numel() > n_cpu and torch.cuda.is_available():
        torch.cuda.set_rng_state(own[n_cpu:])
    return True


# -- networks --------------------------------------------------------------------------------------
def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` in DistributedDataParallel (its parameters and buffers are
    broadcast from rank 0 on entry; its gradients averaged in
    ``backward()``). No buffer broadcast at each forward: the buffers (the
    global-batch BatchNorm statistics, spectral norm's power iteration)
    follow the same computation on every rank, so they stay equal without
    one more collective per forward pass."""
    device_ids = [device.index] if torch.device(device).type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, forward_sync_buffers=False)


class CrossRankBatchNorm(nn.Module):
    """BatchNorm whose training statistics are those of the global batch
    (every rank's slice), so that G's output for a sample does not depend on
    how the batch was split. ``torch.nn.SyncBatchNorm`` does this on GPUs only
    (it refuses CPU tensors); this one runs on both, through
    :func:`sum_across_ranks`.

    It takes over a BatchNorm module's own parameters and buffers (the same
    tensors, under the same names), so optimisers, state dicts, checkpoints
    and EMA copies see no difference; :func:`restore_batchnorm` puts the
    original module back. In eval mode, or without a process group, it is
    plain BatchNorm on the running statistics."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        self.original = [bn]  # in a list: not a submodule (its tensors are ours already)
        self.num_features, self.eps, self.momentum = bn.num_features, bn.eps, bn.momentum
        self.affine, self.track_running_stats = bn.affine, bn.track_running_stats
        self.weight, self.bias = bn.weight, bn.bias
        self.register_buffer("running_mean", bn.running_mean)
        self.register_buffer("running_var", bn.running_var)
        self.register_buffer("num_batches_tracked", bn.num_batches_tracked)
        self.train(bn.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            bn = self.original[0]
            bn.train(self.training)  # not a submodule: .train()/.eval() of the network do not reach it
            return bn(x)
        dims = [0] + list(range(2, x.dim()))  # every axis but the channels
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        mean, var, n = _global_moments(xf, dims)  # var biased, as BatchNorm normalises
        y = (xf - mean.to(xf.dtype).view(shape)) * torch.rsqrt(var + self.eps).to(xf.dtype).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                count = float(n)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                unbiased = var.detach() * (count / max(count - 1.0, 1.0))  # the running variance is unbiased
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        return y.to(x.dtype)


def use_cross_rank_batchnorm(module: nn.Module) -> int:
    """Replace every BatchNorm inside ``module`` by :class:`CrossRankBatchNorm`
    (in place); returns how many were replaced."""
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, CrossRankBatchNorm(child))
            count += 1
        else:
            count += use_cross_rank_batchnorm(child)
    return count


def restore_batchnorm(module: nn.Module) -> None:
    """Undo :func:`use_cross_rank_batchnorm` (in place): the original
    BatchNorm modules, which share every tensor with their replacements."""
    for name, child in list(module.named_children()):
        if isinstance(child, CrossRankBatchNorm):
            bn = child.original[0]
            bn.train(child.training)
            setattr(module, name, bn)
        else:
            restore_batchnorm(child)
