"""Data-parallel learning of one DQN over the ranks of a torchrun process group.

Every gradient is averaged over the ranks (DistributedDataParallel's
reduction, done by hand: the learner's gradients never pass through
``backward()``), each rank computing ``batch_size / N`` rows of every update.
``ddp_data=rank``: each rank acts in its own envs, into its own replay, with
its own random streams; ``ddp_data=replicated``: every rank acts the same and
draws one global batch, of which it computes its slice. A plain agent is the
world of one, where every method here is the identity.
"""

from __future__ import annotations

import numpy as np
import torch

from clm.agents.dqn.config import DQNConfig, check_data_parallel
from clm.core import distributed
from clm.core.runtime import resolve_device


class DataParallel:
    """This rank's place among the learners (world 1 when not data-parallel)."""

    def __init__(self, cfg: DQNConfig, active: bool):
        self.world = distributed.world_size() if active else 1
        self.rank = distributed.rank() if active else 0
        self.replicated = self.world > 1 and cfg.ddp_data == "replicated"
        self.active = active
        check_data_parallel(cfg, self.world)

    @property
    def own_streams(self) -> bool:
        """Whether this rank draws for itself (ddp_data=rank: its actions, its
        replay rows, its envs), rather than one process's stream."""
        return self.world > 1 and not self.replicated

    def device(self, requested: str) -> torch.device:
        """cpu/cuda/auto: the rank's device (cuda:LOCAL_RANK); a device the
        caller already chose for this rank (the CLM passes its own, e.g.
        cuda:1) is taken as it is."""
        if self.active and not requested.startswith("cuda:"):
            return distributed.device_for(requested)
        return resolve_device(requested)

    def seeds(self, seed: int, num_envs: int) -> tuple[int, int]:
        """(the agent's NumPy generator's seed, its envs' reset seed): under
        ddp_data=rank one per rank, the envs seeded as a single process's
        envs ``num_envs * rank`` onwards."""
        if self.own_streams:
            return distributed.rank_seed(seed), distributed.rank_seed(seed, num_envs)
        return seed, seed

    def resumed_seeds(self, seed: int, num_envs: int, env_steps: int) -> tuple[np.random.Generator, int]:
        """A rank other than 0 resuming under ddp_data=rank (the checkpoint
        holds rank 0's streams only): fresh streams of its own, not rank 0's
        again."""
        return (np.random.default_rng([distributed.rank_seed(seed), env_steps]),
                distributed.rank_seed(seed, num_envs) + env_steps)

    def same_start(self, tensors: list[torch.Tensor]) -> None:
        """The same seed made the same weights; rank 0's make sure of it, as DDP does."""
        if self.world > 1:
            distributed.broadcast_from_main(tensors)

    def average_gradients(self, grads: list[torch.Tensor]) -> None:
        if self.world > 1:
            distributed.average_gradients(grads)

    def rows(self, n_agent: int, n_demo: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """((agent rows, demonstration rows) this rank computes per update,
        (the rows it draws per update)): replicated, it draws the global batch
        and keeps its slice; ddp_data=rank, it draws its own share."""
        mine = n_agent // self.world, n_demo // self.world
        drawn = (n_agent, n_demo) if self.world == 1 or self.replicated else mine
        return mine, drawn

    def mine(self, n_updates: int, n: int) -> np.ndarray | slice:
        """Which of ``n_updates * n`` drawn rows this rank computes: all of
        them, or (replicated) its slice of each update's ``n``."""
        if not self.replicated:
            return slice(None)
        k = n // self.world
        return (np.arange(n_updates)[:, None] * n + self.rank * k + np.arange(k)).reshape(-1)

    def priority_rows(self, idx: np.ndarray, td: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        """The rows whose priorities this rank updates: its own, or
        (replicated) the whole global batch's, gathered, so that every rank's
        replay stays the same."""
        if not self.replicated:
            return idx, td
        idx = np.concatenate([t.numpy() for t in distributed.gather_tensors(torch.from_numpy(idx))])
        return idx, torch.cat(distributed.gather_tensors(td.detach()))

    def mean_loss(self, loss_sum: float, count: int) -> tuple[float, float]:
        """(loss sum, update count) over every rank's rows (a collective),
        both scaled by 1 / N: their ratio is the global batch's mean."""
        if self.world == 1:
            return loss_sum, count
        both = distributed.mean_across_ranks({"sum": loss_sum, "count": float(count)})
        return both["sum"], both["count"]

    def any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank (a collective)."""
        if self.world == 1:
            return flag
        return distributed.sum_counts(int(flag))[0] > 0
