"""Experience replay for vector environments: uniform and prioritized
(proportional, sum-tree), with n-step returns computed at sampling time.

Storage is time-major, one column per environment: ``obs[t, e]``. Keeping each
environment's steps in one column lets an n-step return be read as a slice
``t .. t+n-1`` of that column, cut at the first episode end, so nothing has
to be accumulated while acting. ``next_obs`` is stored explicitly: at an
episode's end it is the real final observation, which is what a truncated
episode must bootstrap from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class ReplayBatch:
    """A sampled batch, as tensors on the learner's device.

    ``returns`` is the n-step discounted reward sum, ``discounts`` is
    gamma^k * (1 - terminated) for the bootstrap from ``next_obs`` (0 when the
    episode terminated inside the window), ``weights`` the importance weights
    (ones for uniform replay) and ``indices`` the flat slots, for priority updates.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    returns: torch.Tensor
    next_obs: torch.Tensor
    discounts: torch.Tensor
    weights: torch.Tensor
    indices: np.ndarray

    def slice(self, s: slice) -> "ReplayBatch":
        return ReplayBatch(self.obs[s], self.actions[s], self.returns[s], self.next_obs[s],
                           self.discounts[s], self.weights[s], self.indices[s])


class UniformReplay:
    """A circular buffer of ``capacity`` transitions over ``num_envs`` columns."""

    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple[int, ...],
                 obs_dtype: np.dtype = np.float32, n_step: int = 1, gamma: float = 0.99,
                 device: torch.device | str = "cpu"):
        if capacity < num_envs:
            raise ValueError(f"replay capacity {capacity} is smaller than num_envs {num_envs}")
        self.rows = capacity // num_envs
        self.num_envs = num_envs
        self.n_step = n_step
        self.gamma = gamma
        self.device = torch.device(device)
        self.obs = np.zeros((self.rows, num_envs, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros_like(self.obs)
        self.actions = np.zeros((self.rows, num_envs), dtype=np.int64)
        self.rewards = np.zeros((self.rows, num_envs), dtype=np.float32)
        self.terminated = np.zeros((self.rows, num_envs), dtype=bool)
        self.episode_end = np.zeros((self.rows, num_envs), dtype=bool)
        # False for the filler step a NEXT_STEP-autoreset env takes to reset.
        self.valid = np.zeros((self.rows, num_envs), dtype=bool)
        self.pos = 0
        self.full = False
        self._discount_powers = gamma ** np.arange(n_step + 1, dtype=np.float64)

    @property
    def capacity(self) -> int:
        return self.rows * self.num_envs

    def __len__(self) -> int:
        return (self.rows if self.full else self.pos) * self.num_envs

    def add(self, obs, actions, rewards, next_obs, terminated, truncated, valid=None) -> None:
        """Store one vector step (arrays with a leading ``num_envs`` axis)."""
        p = self.pos
        self.obs[p] = obs
        self.next_obs[p] = next_obs
        self.actions[p] = actions
        self.rewards[p] = rewards
        self.terminated[p] = terminated
        self.episode_end[p] = np.logical_or(terminated, truncated)
        self.valid[p] = True if valid is None else valid
        self._on_add(p)
        self.pos = (p + 1) % self.rows
        self.full = self.full or self.pos == 0

    def _on_add(self, row: int) -> None:
        pass

    def extend(self, obs, actions, rewards, next_obs, terminated, episode_end) -> None:
        """Store whole episodes, in order, in a one-column buffer (demonstrations):
        arrays with a leading transitions axis; ``episode_end`` marks each
        episode's last step. The oldest transitions are overwritten first."""
        if self.num_envs != 1:
            raise ValueError("extend() stores a stream of transitions: it needs a buffer with num_envs=1")
        n = len(actions)
        if n > self.rows:  # only the newest rows would survive
            obs, actions, rewards, next_obs, terminated, episode_end = (
                a[n - self.rows:] for a in (obs, actions, rewards, next_obs, terminated, episode_end))
            n = self.rows
        rows = (self.pos + np.arange(n)) % self.rows
        self.obs[rows, 0] = obs
        self.next_obs[rows, 0] = next_obs
        self.actions[rows, 0] = actions
        self.rewards[rows, 0] = rewards
        self.terminated[rows, 0] = terminated
        self.episode_end[rows, 0] = episode_end
        self.valid[rows, 0] = True
        for r in np.unique(rows):  # priorities of the new rows, when the buffer keeps them
            self._on_add(int(r))
        self.full = self.full or self.pos + n >= self.rows
        self.pos = int((self.pos + n) % self.rows)

    # -- sampling -----------------------------------------------------------------
    def _filled_rows(self) -> int:
        return self.rows if self.full else self.pos

    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform flat slots (row * num_envs + env) of valid transitions."""
        high = self._filled_rows() * self.num_envs
        idx = rng.integers(0, high, size=batch_size)
        bad = ~self.valid.reshape(-1)[idx]
        while bad.any():  # filler steps are rare (one per episode): redraw them
            idx[bad] = rng.integers(0, high, size=int(bad.sum()))
            bad = ~self.valid.reshape(-1)[idx]
        return idx

    def n_step_targets(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For flat slots ``idx``: the n-step return, the bootstrap discount
        and the row that holds the bootstrap ``next_obs``.

        The window t..t+n-1 of the slot's column is cut at the first episode end
        and at the newest row written (whose successor does not exist yet).
        """
        rows, envs = np.divmod(idx, self.num_envs)
        n = self.n_step
        if n == 1:
            disc = self.gamma * (~self.terminated[rows, envs])
            return self.rewards[rows, envs], disc.astype(np.float32), rows
        k = np.arange(n)
        window = (rows[:, None] + k) % self.rows                         # (B, n)
        newest = (self.pos - 1) % self.rows
        ahead = (newest - rows) % self.rows                               # steps to the newest row
        stop = self.episode_end[window, envs[:, None]] | (k[None, :] >= ahead[:, None])
        stop[:, -1] = True
        last = stop.argmax(axis=1)                                       # first stop in the window
        inside = k[None, :] <= last[:, None]
        rewards = self.rewards[window, envs[:, None]] * inside
        returns = (rewards * self._discount_powers[:n]).sum(axis=1)
        end_rows = window[np.arange(len(idx)), last]
        disc = self._discount_powers[last + 1] * (~self.terminated[end_rows, envs])
        return returns.astype(np.float32), disc.astype(np.float32), end_rows

    def gather(self, idx: np.ndarray, weights: np.ndarray | None = None) -> ReplayBatch:
        """The batch for flat slots ``idx`` as tensors on the device."""
        rows, envs = np.divmod(idx, self.num_envs)
        returns, disc, end_rows = self.n_step_targets(idx)
        dev = self.device
        as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev, non_blocking=True)  # noqa: E731
        w = np.ones(len(idx), dtype=np.float32) if weights is None else weights.astype(np.float32)
        return ReplayBatch(
            obs=as_t(self.obs[rows, envs]).float(),
            actions=as_t(self.actions[rows, envs]),
            returns=as_t(returns),
            next_obs=as_t(self.next_obs[end_rows, envs]).float(),
            discounts=as_t(disc),
            weights=as_t(w),
            indices=idx,
        )

    def sample(self, batch_size: int, rng: np.random.Generator) -> ReplayBatch:
        return self.gather(self.sample_indices(batch_size, rng))

    def update_priorities(self, idx: np.ndarray, td_errors: np.ndarray) -> None:
        """Uniform replay keeps no priorities."""

    # -- checkpoints --------------------------------------------------------------
    def state_dict(self) -> dict:
        n = self._filled_rows()
        keys = ("obs", "next_obs", "actions", "rewards", "terminated", "episode_end", "valid")
        return {"pos": self.pos, "full": self.full, **{k: getattr(self, k)[:n].copy() for k in keys}}

    def load_state_dict(self, state: dict) -> None:
        n = len(state["actions"])
        for k in ("obs", "next_obs", "actions", "rewards", "terminated", "episode_end", "valid"):
            getattr(self, k)[:n] = state[k]
        self.pos, self.full = int(state["pos"]), bool(state["full"])


class SumTree:
    """A binary sum tree over ``size`` leaves, in one array (leaves at the
    end), updated and searched for whole batches at once: the loops run over
    tree levels (log2 size of them), never over items."""

    def __init__(self, size: int):
        self.leaves = 1 << max(1, int(np.ceil(np.log2(max(size, 2)))))
        self.tree = np.zeros(2 * self.leaves, dtype=np.float64)  # node i has children 2i, 2i+1

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def set(self, idx: np.ndarray, values: np.ndarray) -> None:
        nodes = np.asarray(idx, dtype=np.int64) + self.leaves
        self.tree[nodes] = values
        nodes = np.unique(nodes >> 1)
        while nodes[0] >= 1:
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]
            if nodes[0] == 1:
                break
            nodes = np.unique(nodes >> 1)

    def get(self, idx: np.ndarray) -> np.ndarray:
        return self.tree[np.asarray(idx, dtype=np.int64) + self.leaves]

    def find(self, prefix_sums: np.ndarray) -> np.ndarray:
        """Leaves whose cumulative-sum interval holds each value in ``prefix_sums``."""
        nodes = np.ones(len(prefix_sums), dtype=np.int64)
        values = np.array(prefix_sums, dtype=np.float64)
        while nodes[0] < self.leaves:
            left = 2 * nodes
            left_sum = self.tree[left]
            go_right = values >= left_sum
            # Float round-off can point right into an empty subtree: stay left then.
            go_right &= self.tree[left + 1] > 0
            values = np.where(go_right, values - left_sum, values)
            nodes = left + go_right
        return nodes - self.leaves


class PrioritizedReplay(UniformReplay):
    """Proportional prioritized replay (Schaul et al. 2016): P(i) = p_i^alpha /
    sum_k p_k^alpha, importance weights w_i = (N P(i))^-beta normalised by the
    batch maximum. New transitions get the largest priority seen so far."""

    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple[int, ...],
                 alpha: float = 0.6, eps: float = 1e-6, **kwargs):
        super().__init__(capacity, num_envs, obs_shape, **kwargs)
        self.alpha = alpha
        self.eps = eps
        self.tree = SumTree(self.capacity)
        self.max_priority = 1.0

    def _on_add(self, row: int) -> None:
        slots = row * self.num_envs + np.arange(self.num_envs)
        pri = np.where(self.valid[row], self.max_priority ** self.alpha, 0.0)
        self.tree.set(slots, pri)

    def probabilities(self, idx: np.ndarray) -> np.ndarray:
        return self.tree.get(idx) / self.tree.total

    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Stratified: one draw from each of ``batch_size`` equal slices of the total."""
        total = self.tree.total
        edges = np.arange(batch_size) * (total / batch_size)
        u = edges + rng.random(batch_size) * (total / batch_size)
        return self.tree.find(np.minimum(u, np.nextafter(total, 0)))

    def importance_weights(self, idx: np.ndarray, beta: float) -> np.ndarray:
        n = len(self)
        w = (n * self.probabilities(idx)) ** (-beta)
        return (w / w.max()).astype(np.float32)

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float = 0.4) -> ReplayBatch:
        idx = self.sample_indices(batch_size, rng)
        return self.gather(idx, self.importance_weights(idx, beta))

    def update_priorities(self, idx: np.ndarray, td_errors: np.ndarray) -> None:
        pri = np.abs(td_errors).astype(np.float64) + self.eps
        self.max_priority = max(self.max_priority, float(pri.max()))
        self.tree.set(idx, pri ** self.alpha)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "tree": self.tree.tree.copy(), "max_priority": self.max_priority}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.tree.tree[:] = state["tree"]
        self.max_priority = float(state["max_priority"])
