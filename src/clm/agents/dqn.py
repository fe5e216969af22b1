"""DQN with its common extensions, top to bottom in one file.

One agent with switches: MLP or conv Q-network, dueling head, Double DQN,
n-step returns, uniform or prioritized replay, hard or Polyak target updates,
an epsilon-greedy schedule, Huber loss, gradient clipping, several
environments stepped together, greedy evaluation that keeps the best
checkpoint, and learning from demonstrations (DQfD, Hester et al. 2018:
expert transitions kept in their own buffer, a share of every batch, with a
large-margin loss that ranks the expert's action above the others by a
margin, and optional pre-training on them before the first env step).
Hyperparameters live in ``DQNConfig``.

Why it is fast on a CPU: the target network only changes between training
bursts (its updates are counted in env steps, as in Stable-Baselines3), so a
burst of ``gradient_steps`` updates samples all its batches at once and
evaluates the target network on all their next states in one forward pass;
on a CPU, a plain MLP Q-network acts and gets its gradients through
hand-written NumPy passes over flat parameter buffers (see networks.py), and
every network's update is one step of ``torch.optim.Adam(fused=True)``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from clm.agents.envs import (autoreset_mode, check_spaces, env_state, final_observations,
                             make_vec_env, restore_env_state)
from clm.agents.networks import NumpyMLP, QNetwork, flatten_parameters, plain_mlp_layers, split_like
from clm.agents.replay import PrioritizedReplay, ReplayBatch, UniformReplay
from clm.core import distributed
from clm.core.checkpoint import checkpoint_exists, load_checkpoint, read_meta, save_checkpoint, strip_prefix
from clm.core.config import to_dict
from clm.core.errors import UserError
from clm.core.runtime import DeferredInterrupt, resolve_device, rng_state, set_rng_state


@dataclass
class DQNConfig:
    """Hyperparameters of a DQN run. The defaults are rl-zoo3's tuned CartPole-v1
    settings with a 128-128 network instead of 256-256 (a quarter of the
    FLOPs per update; it reached 500 within 50k steps in the seeds we tried)."""

    env_id: str = "CartPole-v1"  #: Gymnasium id of the environment
    seed: int = 0  #: seed of every random draw (same seed, same device -> same numbers)
    total_steps: int = 50_000  #: environment steps to train for (summed over envs)
    num_envs: int = 1  #: environments stepped together
    device: str = "cpu"  #: cpu, cuda or auto
    threads: int = 0  #: torch threads; 0 picks 1 (best for small networks on shared cores)
    obs_noise: float = 0.0  #: std of Gaussian noise added to the observations of each training batch (noise injection: the Q-network learns to act on perturbed inputs; acting and evaluation see clean ones)
    amp: bool = False  #: bfloat16 autocast of the Q-network's forward passes, on CPU and CUDA (losses and Adam stay float32; the CPU's hand-written NumPy path for plain MLPs then does not apply)
    network: Literal["auto", "mlp", "conv"] = "auto"  #: Q-network kind; auto: conv for 3-D observations
    hidden: tuple[int, ...] = (128, 128)  #: widths of the fully connected layers (rl-zoo3 uses 256, 256)
    conv_channels: tuple[int, ...] = (32, 64)  #: channels of the 3x3 conv layers
    channels_last: bool | None = None  #: observations are (H, W, C); None guesses (last dim < first)
    dueling: bool = False  #: dueling value/advantage head
    double_dqn: bool = False  #: Double DQN target (online argmax, target value)
    n_step: int = 1  #: n-step returns
    gamma: float = 0.99  #: discount
    lr: float = 2.3e-3  #: Adam learning rate
    batch_size: int = 64  #: transitions per gradient step
    buffer_size: int = 100_000  #: replay capacity in transitions
    learning_starts: int = 1_000  #: env steps before the first update
    train_freq: int = 256  #: env steps between training bursts
    gradient_steps: int = 128  #: updates per training burst
    target_update_interval: int = 10  #: env steps between target updates
    tau: float = 1.0  #: target update rate: 1.0 copies (hard), < 1 Polyak-averages
    loss: Literal["huber", "mse"] = "huber"  #: TD loss
    max_grad_norm: float = 10.0  #: gradient clipping by global norm (0: off)
    epsilon_start: float = 1.0  #: exploration at step 0
    epsilon_end: float = 0.04  #: exploration after the schedule
    exploration_fraction: float = 0.16  #: share of total_steps over which epsilon falls linearly
    prioritized: bool = False  #: prioritized replay (proportional, sum tree)
    per_alpha: float = 0.6  #: priority exponent
    per_beta: float = 0.4  #: importance-weight exponent at step 0, annealed to 1
    per_eps: float = 1e-6  #: added to |TD error| so that no priority is 0
    demo_fraction: float = 0.0  #: DQfD: share of each batch drawn from demonstrations (once some are added)
    demo_margin: float = 0.8  #: DQfD: margin by which the expert's action must beat every other action
    demo_loss_weight: float = 1.0  #: DQfD: weight of the large-margin loss on demonstration rows
    demo_buffer_size: int = 100_000  #: DQfD: demonstration transitions kept (oldest dropped first)
    pretrain_steps: int = 0  #: DQfD: updates on demonstrations alone before the first env step
    eval_interval: int = 2_500  #: env steps between greedy evaluations (0: only at the end)
    eval_episodes: int = 20  #: episodes per evaluation
    target_return: float | None = None  #: record when a greedy evaluation first reaches this
    stop_at_target: bool = False  #: stop training once target_return is reached
    log_interval: int = 1_000  #: env steps between metric rows
    checkpoint_interval: int = 25_000  #: env steps between checkpoints (0: only at the end)
    ddp_data: Literal["rank", "replicated"] = "rank"  #: under torchrun: rank = each rank acts in its own envs (seeds offset by rank * num_envs) into its own replay and computes batch_size / N rows of every update; replicated = every rank acts the same and computes its slice of one global batch (one process's numbers, N times the acting)

    def validate(self) -> None:
        if not self.lr > 0:
            raise UserError(f"config key 'lr' must be > 0, got {self.lr}")
        positive = ["total_steps", "num_envs", "batch_size", "buffer_size", "train_freq",
                    "gradient_steps", "target_update_interval", "n_step", "eval_episodes",
                    "log_interval"]
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"config key '{name}' must be >= 1, got {getattr(self, name)}")
        if not self.obs_noise >= 0:
            raise UserError(f"config key 'obs_noise' must be >= 0, got {self.obs_noise}")
        if not 0 < self.tau <= 1:
            raise UserError(f"config key 'tau' must be in (0, 1], got {self.tau}")
        if not 0 <= self.gamma <= 1:
            raise UserError(f"config key 'gamma' must be in [0, 1], got {self.gamma}")
        if self.buffer_size < self.num_envs * max(2, self.n_step + 1):
            raise UserError("config key 'buffer_size' is too small for num_envs and n_step")
        if not 0 <= self.demo_fraction < 1:
            raise UserError(f"config key 'demo_fraction' must be in [0, 1), got {self.demo_fraction}")
        if self.demo_margin < 0 or self.demo_loss_weight < 0 or self.pretrain_steps < 0:
            raise UserError("config keys 'demo_margin', 'demo_loss_weight' and 'pretrain_steps' must be >= 0")
        if self.demo_buffer_size < 1:
            raise UserError(f"config key 'demo_buffer_size' must be >= 1, got {self.demo_buffer_size}")
        if self.ddp_data not in ("rank", "replicated"):
            raise UserError(f"config key 'ddp_data' must be rank or replicated, got {self.ddp_data!r}")

    @property
    def uses_demonstrations(self) -> bool:
        return self.demo_fraction > 0 or self.pretrain_steps > 0


def check_data_parallel(cfg: DQNConfig, world: int) -> None:
    """What a data-parallel learner over ``world`` processes needs of a config
    (clear errors, exit code 2): each update's agent rows and demonstration
    rows split into equal slices, so that the mean of the ranks' gradients is
    the gradient of the global batch's loss."""
    if world <= 1:
        return
    distributed.local_share(cfg.batch_size, "batch_size", world)
    if cfg.demo_fraction > 0:
        demo_rows = max(1, int(round(cfg.batch_size * cfg.demo_fraction)))
        if demo_rows % world:
            raise UserError(f"batch_size={cfg.batch_size} with demo_fraction={cfg.demo_fraction:g} makes {demo_rows} "
                            f"demonstration rows per batch, which do not divide over {world} processes (each rank "
                            f"takes an equal slice of them); choose demo_fraction so that round(batch_size * "
                            f"demo_fraction) is a multiple of {world}", exit_code=2)


def linear_schedule(start: float, end: float, duration: float, t: float) -> float:
    if duration <= 0:
        return end
    return start + (end - start) * min(1.0, t / duration)


def q_network_args(cfg: DQNConfig, obs_shape: tuple[int, ...], n_actions: int) -> dict[str, Any]:
    """The :class:`QNetwork` keyword arguments of ``cfg`` for observations of
    ``obs_shape``: what the agent builds, and what a reader of a saved agent
    (``clm explain``, ``clm compress``) rebuilds its Q-network from."""
    kind = cfg.network
    if kind == "auto":
        kind = "conv" if len(obs_shape) == 3 else "mlp"
    channels_last = cfg.channels_last
    if channels_last is None:
        channels_last = len(obs_shape) == 3 and obs_shape[-1] < obs_shape[0]
    return dict(obs_shape=tuple(obs_shape), n_actions=n_actions, kind=kind, hidden=tuple(cfg.hidden),
                conv_channels=tuple(cfg.conv_channels), dueling=cfg.dueling, channels_last=channels_last)


class DQN:
    """A DQN agent bound to a vector environment.

    >>> agent = DQN(DQNConfig(total_steps=20_000))
    >>> summary = agent.learn()
    >>> agent.evaluate(10)
    """

    def __init__(self, cfg: DQNConfig, envs: gym.vector.VectorEnv | None = None,
                 eval_envs: gym.vector.VectorEnv | None = None, data_parallel: bool = False):
        """``data_parallel``: learn together with the other ranks of the running
        process group (torchrun), as ``cfg.ddp_data`` says: every gradient is
        averaged over the ranks, each of which computes ``batch_size / N`` rows
        of every update. The agent's own learner only: the CLM's designer
        stays a plain agent on every rank."""
        self.cfg = cfg
        self.world = distributed.world_size() if data_parallel else 1
        self.rank = distributed.rank() if data_parallel else 0
        self.replicated = self.world > 1 and cfg.ddp_data == "replicated"
        check_data_parallel(cfg, self.world)
        # cpu/cuda/auto: the rank's device (cuda:LOCAL_RANK); a device the caller already chose for this
        # rank (the CLM passes its own, e.g. cuda:1) is taken as it is
        chosen = cfg.device.startswith("cuda:")
        self.device = distributed.device_for(cfg.device) if data_parallel and not chosen else resolve_device(cfg.device)
        self.envs = envs if envs is not None else make_vec_env(cfg.env_id, cfg.num_envs)
        check_spaces(self.envs, cfg.env_id)
        if self.envs.num_envs != cfg.num_envs:
            raise UserError(f"the vector env has {self.envs.num_envs} envs, config num_envs is {cfg.num_envs}")
        self._eval_envs = eval_envs
        self.same_step = autoreset_mode(self.envs) == gym.vector.AutoresetMode.SAME_STEP
        obs_space = self.envs.single_observation_space
        self.n_actions = int(self.envs.single_action_space.n)
        obs_shape = tuple(obs_space.shape)
        net_args = q_network_args(cfg, obs_shape, self.n_actions)
        torch.manual_seed(cfg.seed)
        self.q = QNetwork(**net_args).to(self.device)
        if self.world > 1:  # the same seed made the same weights; rank 0's make sure of it, as DDP does
            distributed.broadcast_from_main(list(self.q.state_dict().values()))
        self.q_target = QNetwork(**net_args).to(self.device)
        self.q_target.load_state_dict(self.q.state_dict())
        self.q_target.requires_grad_(False)
        # On a CPU, plain MLPs act and get their gradients through hand-written
        # NumPy passes (see networks.py) and keep parameters, gradients and
        # Adam's moments in flat buffers.
        # The large-margin loss of demonstrations goes through autograd.
        self._fast: NumpyMLP | None = None
        if plain_mlp_layers(self.q) is not None and self.device.type == "cpu" and not cfg.uses_demonstrations \
                and not cfg.amp:
            params = list(self.q.parameters())
            self._online = [flatten_parameters(params)]
            self._target = [flatten_parameters(list(self.q_target.parameters()))]
            self._flat_grad = torch.zeros_like(self._online[0])
            self._grad_views = [g.numpy() for g in split_like(self._flat_grad, params)]
            self._fast = NumpyMLP(plain_mlp_layers(self.q))
            self._fast_target = NumpyMLP(plain_mlp_layers(self.q_target))
        else:
            self._online, self._target = list(self.q.parameters()), list(self.q_target.parameters())
        self._target_synced_at = 0  # gradient_steps at the last hard target copy
        # Adam over the flat buffer (fast path) or the parameters, with the fused kernel:
        # one operation per tensor, and on the fast path one tensor.
        self.optimizer = torch.optim.Adam(self._online, lr=cfg.lr, fused=True)
        replay_cls = PrioritizedReplay if cfg.prioritized else UniformReplay
        extra = dict(alpha=cfg.per_alpha, eps=cfg.per_eps) if cfg.prioritized else {}
        self.replay = replay_cls(cfg.buffer_size, cfg.num_envs, obs_shape, obs_dtype=obs_space.dtype,
                                 n_step=cfg.n_step, gamma=cfg.gamma, device=self.device, **extra)
        self.demos: UniformReplay | None = None  # made by add_demonstrations
        self._obs_shape, self._obs_dtype = obs_shape, obs_space.dtype
        # One seed per rank for what a rank draws for itself (data-parallel, ddp_data=rank: its actions,
        # its replay rows, its envs, seeded as a single process's envs num_envs * rank onwards); the
        # replicated mode and a plain agent draw one process's stream.
        own = self.world > 1 and not self.replicated
        self.rng = np.random.default_rng(distributed.rank_seed(cfg.seed) if own else cfg.seed)
        self._env_seed = distributed.rank_seed(cfg.seed, cfg.num_envs) if own else cfg.seed
        # Counters and episode bookkeeping: all of it goes into checkpoints.
        self.env_steps = 0
        self.gradient_steps = 0
        self.episodes = 0
        self.successes = 0  # episodes that ended with a success flag set
        self.best_eval_return = -math.inf
        self.target_reached_at: dict[str, float] | None = None
        self.recent_returns: deque[float] = deque(maxlen=20)
        self.wall_before = 0.0  # wall seconds of earlier sessions of a resumed run
        self._obs: np.ndarray | None = None
        self._prev_done = np.zeros(cfg.num_envs, dtype=bool)
        self._ep_return = np.zeros(cfg.num_envs, dtype=np.float64)
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_count = 0
        self.exact_resume: bool | None = None  # None: not resumed; after a load, whether it was exact

    def _autocast(self):
        """bfloat16 autocast of a forward pass when ``amp`` is on (CPU or CUDA), else nothing."""
        if self.cfg.amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- acting -------------------------------------------------------------------------
    def epsilon(self) -> float:
        c = self.cfg
        return linear_schedule(c.epsilon_start, c.epsilon_end, c.exploration_fraction * c.total_steps,
                               self.env_steps)

    @torch.no_grad()
    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        if self._fast is not None:
            return self._fast.q_values(obs).argmax(axis=1)
        x = torch.as_tensor(obs, device=self.device).float()
        with self._autocast():
            return self.q(x).float().argmax(dim=1).cpu().numpy()

    def act(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        n = len(obs)
        u = self.rng.random(2 * n)  # one draw for both: Generator.integers costs 7x random
        explore = u[:n] < epsilon
        random_actions = (u[n:] * self.n_actions).astype(np.int64)
        if explore.all():  # no forward pass needed: early training is all exploration
            return random_actions
        return np.where(explore, random_actions, self.greedy_actions(obs))

    # -- learning -------------------------------------------------------------------------
    def _td_gradients(self, obs, actions, target, weights, n_demo: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Gradients of the weighted TD loss for every online parameter, and
        the TD errors Q(s, a) - target. The last ``n_demo`` rows are
        demonstrations: they add DQfD's large-margin loss, max_a [Q(s, a) +
        margin * (a != a_E)] - Q(s, a_E), weighted by ``demo_loss_weight``."""
        if self._fast is not None:
            td = self._fast.td_gradients(obs.numpy(), actions.numpy(), target.numpy(), weights.numpy(),
                                         out=self._grad_views, huber=self.cfg.loss == "huber")
            return [self._flat_grad], torch.from_numpy(td)
        with self._autocast():
            q_all = self.q(obs).float()  # the loss in float32: bf16's 8-bit mantissa would round TD errors away
        q = q_all.gather(1, actions[:, None]).squeeze(1)
        td = q - target
        loss = (weights * self._per_item_loss(td)).mean()
        if n_demo:
            loss = loss + self.cfg.demo_loss_weight * self.margin_loss(q_all[-n_demo:], actions[-n_demo:])
        return list(torch.autograd.grad(loss, self._online)), td.detach()

    def margin_loss(self, q: torch.Tensor, expert_actions: torch.Tensor) -> torch.Tensor:
        """DQfD's supervised loss, averaged over rows: how far the best
        margin-raised Q-value lies above the expert action's Q-value (0 once
        the expert's action leads every other action by the margin)."""
        margins = torch.full_like(q, self.cfg.demo_margin)
        margins.scatter_(1, expert_actions[:, None], 0.0)
        return ((q + margins).max(dim=1).values - q.gather(1, expert_actions[:, None]).squeeze(1)).mean()

    def _per_item_loss(self, td: torch.Tensor) -> torch.Tensor:
        if self.cfg.loss == "huber":
            return F.smooth_l1_loss(td, torch.zeros_like(td), reduction="none")
        return td.pow(2)

    @torch.no_grad()
    def _record_losses(self, td: torch.Tensor, weights: torch.Tensor) -> None:
        """Add the losses of updates whose TD errors are the rows of ``td``
        (one row per update) to the logged running mean."""
        self._loss_sum += (weights * self._per_item_loss(td)).mean(dim=-1).sum()
        self._loss_count += td.shape[0] if td.dim() == 2 else 1

    @torch.no_grad()
    def _update(self, grads: list[torch.Tensor]) -> None:
        """One Adam step with ``grads``, the same maths as ``loss.backward()``,
        ``clip_grad_norm_`` and ``Adam.step()``. Gradients come in as a list
        (on the fast path one flat tensor, from the NumPy pass) and go to the
        optimizer's fused kernel; clipping scales them in place, which on a
        CPU reads the norm without a device sync. Data-parallel, they are
        first averaged over the ranks (DistributedDataParallel's reduction,
        done by hand: these gradients never pass through ``backward()``), so
        the clipping sees the global batch's gradient norm."""
        if self.world > 1:
            distributed.average_gradients(grads)
        max_norm = self.cfg.max_grad_norm
        if max_norm > 0:
            norm = grads[0].norm() if len(grads) == 1 else torch.linalg.vector_norm(
                torch.stack([g.norm() for g in grads]))
            if self.device.type == "cpu":
                if float(norm) + 1e-6 > max_norm:
                    scale = max_norm / (float(norm) + 1e-6)
                    for g in grads:
                        g.mul_(scale)
            else:
                scale = (max_norm / (norm + 1e-6)).clamp_(max=1.0)
                for g in grads:
                    g.mul_(scale)
        for p, g in zip(self._online, grads):
            p.grad = g
        self.optimizer.step()
        self.gradient_steps += 1

    @torch.no_grad()
    def td_targets(self, b: ReplayBatch, target_next: torch.Tensor) -> torch.Tensor:
        """n-step TD targets: R + gamma^k (1 - done) Q'(s', a*), where a* is the
        target net's argmax, or the online net's with Double DQN."""
        if self.cfg.double_dqn:
            online = self.online_q_values(b.next_obs)
            best = online.argmax(dim=1, keepdim=True)
            value = target_next.gather(1, best).squeeze(1)
        else:
            value = target_next.max(dim=1).values
        return b.returns + b.discounts * value

    # -- demonstrations (DQfD) ------------------------------------------------------------
    def add_demonstrations(self, obs, actions, rewards, next_obs, terminated, episode_end) -> int:
        """Keep expert transitions (whole episodes, in order; arrays with a
        leading transitions axis, ``episode_end`` marking each episode's last
        step) for DQfD. They are never evicted by the agent's own experience;
        past ``demo_buffer_size`` the oldest demonstrations go first. Returns
        the number of demonstration transitions held."""
        if not self.cfg.uses_demonstrations:
            raise UserError("demonstrations need demo_fraction > 0 or pretrain_steps > 0 in the DQN config")
        if len(actions) == 0:
            return 0 if self.demos is None else len(self.demos)
        if tuple(obs.shape[1:]) != self._obs_shape:
            raise UserError(f"demonstration observations have shape {tuple(obs.shape[1:])}; "
                            f"the environment's are {self._obs_shape}")
        if not bool(np.asarray(episode_end)[-1]):
            raise UserError("demonstrations must end with a complete episode (episode_end[-1] is False)")
        self._demo_buffer().extend(obs, actions, rewards, next_obs, terminated, episode_end)
        return len(self.demos)

    def _demo_buffer(self) -> UniformReplay:
        """The demonstrations' one-column replay, made on first use."""
        if self.demos is None:
            self.demos = UniformReplay(self.cfg.demo_buffer_size, 1, self._obs_shape, obs_dtype=self._obs_dtype,
                                       n_step=self.cfg.n_step, gamma=self.cfg.gamma, device=self.device)
        return self.demos

    def pretrain(self, n_updates: int | None = None) -> None:
        """DQfD's pre-training: ``n_updates`` (default ``pretrain_steps``)
        updates on demonstrations alone, with the target network copied as
        often, in updates, as during training."""
        if self.demos is None or len(self.demos) == 0:
            raise UserError("pretrain() needs demonstrations: call add_demonstrations first")
        c = self.cfg
        n_updates = c.pretrain_steps if n_updates is None else n_updates
        every = max(1, c.target_update_interval * c.gradient_steps // c.train_freq)
        done = 0
        while done < n_updates:
            k = min(every, n_updates - done)
            self.train_burst(k, demo_only=True)
            self.update_target()
            done += k

    def _demo_rows(self) -> int:
        if self.demos is None or len(self.demos) == 0 or self.cfg.demo_fraction <= 0:
            return 0
        return max(1, int(round(self.cfg.batch_size * self.cfg.demo_fraction)))

    def _mine(self, n_updates: int, n: int) -> np.ndarray | slice:
        """Which of ``n_updates * n`` drawn rows this rank computes: all of
        them, or (replicated data-parallel) its slice of each update's ``n``."""
        if not self.replicated:
            return slice(None)
        k = n // self.world
        return (np.arange(n_updates)[:, None] * n + self.rank * k + np.arange(k)).reshape(-1)

    def _sample_burst(self, n_updates: int, n_agent: int, n_demo: int, beta: float | None) -> ReplayBatch:
        """``n_updates`` batches laid end to end, each ``n_agent`` rows of the
        agent's replay followed by ``n_demo`` rows of demonstrations; with
        ``obs_noise``, their observations (and next observations) carry
        Gaussian noise drawn from the agent's own generator (so a resumed run
        draws the same noise; under data-parallel training each rank draws it
        for its own rows)."""
        b = self._draw_burst(n_updates, n_agent, n_demo, beta)
        if self.cfg.obs_noise <= 0:
            return b
        noisy = lambda x: x.float() + torch.from_numpy(  # noqa: E731
            self.rng.standard_normal(tuple(x.shape), dtype=np.float32) * self.cfg.obs_noise).to(x.device)
        return replace(b, obs=noisy(b.obs), next_obs=noisy(b.next_obs))

    def _draw_burst(self, n_updates: int, n_agent: int, n_demo: int, beta: float | None) -> ReplayBatch:
        """The rows of :meth:`_sample_burst`, as drawn. Replicated
        data-parallel: the rows are drawn for the global batch (the
        importance weights normalised over it) and this rank keeps its
        ``1 / N`` of each part of each batch."""
        parts = []
        if n_agent:
            idx = self.replay.sample_indices(n_updates * n_agent, self.rng)
            weights = self.replay.importance_weights(idx, beta) if beta is not None else None
            keep = self._mine(n_updates, n_agent)
            parts.append(self.replay.gather(idx[keep], None if weights is None else weights[keep]))
        if n_demo:
            idx = self.demos.sample_indices(n_updates * n_demo, self.rng)
            parts.append(self.demos.gather(idx[self._mine(n_updates, n_demo)]))
        if len(parts) == 1:
            return parts[0]
        if self.replicated:
            n_agent, n_demo = n_agent // self.world, n_demo // self.world
        a, d = parts
        per = lambda x, k: x.reshape(n_updates, k, *x.shape[1:])  # noqa: E731
        cat = lambda x, y: torch.cat([per(x, n_agent), per(y, n_demo)], 1).reshape(-1, *x.shape[1:])  # noqa: E731
        idx = np.concatenate([a.indices.reshape(n_updates, n_agent), np.full((n_updates, n_demo), -1)], 1).reshape(-1)
        return ReplayBatch(cat(a.obs, d.obs), cat(a.actions, d.actions), cat(a.returns, d.returns),
                           cat(a.next_obs, d.next_obs), cat(a.discounts, d.discounts),
                           cat(a.weights, d.weights), idx)

    def train_burst(self, n_updates: int, demo_only: bool = False) -> None:
        """``n_updates`` gradient steps with the target network held fixed.
        With demonstrations, the last rows of every batch are demonstrations
        (all rows with ``demo_only``)."""
        c = self.cfg
        B = c.batch_size
        n_demo = B if demo_only else self._demo_rows()
        n_agent = B - n_demo
        # Data-parallel: this rank computes n_agent / N agent rows and n_demo / N demonstration rows of
        # every update (drawn from its own replay, or sliced from the global draw when replicated).
        a_rows, d_rows = n_agent // self.world, n_demo // self.world
        draw_agent, draw_demo = (n_agent, n_demo) if self.world == 1 or self.replicated else (a_rows, d_rows)
        B = a_rows + d_rows
        if c.prioritized and n_agent:
            beta = linear_schedule(c.per_beta, 1.0, c.total_steps, self.env_steps)
            for _ in range(n_updates):  # priorities change after each step: sample one by one
                b = self._sample_burst(1, draw_agent, draw_demo, beta)
                target = self.td_targets(b, self.target_q_values(b.next_obs))
                grads, td = self._td_gradients(b.obs, b.actions, target, b.weights, d_rows)
                self._update(grads)
                self._record_losses(td, b.weights)
                self._update_priorities(b.indices[:a_rows], td[:a_rows])
            return
        # Uniform replay: every batch of the burst in one draw, the fixed target
        # net on all their next states in one forward pass.
        burst = self._sample_burst(n_updates, draw_agent, draw_demo, None)
        target_next = self.target_q_values(burst.next_obs)
        targets = None if c.double_dqn else self.td_targets(burst, target_next)
        tds = torch.empty(n_updates, B, device=self.device)
        for i in range(n_updates):
            s = slice(i * B, (i + 1) * B)
            b = burst.slice(s)
            # Double DQN's argmax needs the online net as it is at this step.
            target = targets[s] if targets is not None else self.td_targets(b, target_next[s])
            grads, tds[i] = self._td_gradients(b.obs, b.actions, target, b.weights, d_rows)
            self._update(grads)
        self._record_losses(tds, burst.weights.view(n_updates, B))

    def _update_priorities(self, idx: np.ndarray, td: torch.Tensor) -> None:
        """New priorities from the TD errors of the rows this rank computed;
        replicated data-parallel, the whole global batch's (gathered), so that
        every rank's replay stays the same."""
        if self.replicated:
            idx = np.concatenate([t.numpy() for t in distributed.gather_tensors(torch.from_numpy(idx))])
            td = torch.cat(distributed.gather_tensors(td.detach()))
        self.replay.update_priorities(idx, td.cpu().numpy())

    @torch.no_grad()
    def target_q_values(self, obs: torch.Tensor) -> torch.Tensor:
        if self._fast is not None:
            return torch.from_numpy(self._fast_target.q_values(obs.numpy()))
        with self._autocast():
            return self.q_target(obs).float()

    @torch.no_grad()
    def online_q_values(self, obs: torch.Tensor) -> torch.Tensor:
        if self._fast is not None:
            return torch.from_numpy(self._fast.q_values(obs.numpy()))
        with self._autocast():
            return self.q(obs).float()

    @torch.no_grad()
    def update_target(self) -> None:
        if self.cfg.tau >= 1.0:
            # A hard copy is a no-op until the online net has changed (between
            # bursts most of the interval's ticks find nothing new to copy).
            if self._target_synced_at == self.gradient_steps:
                return
            self._target_synced_at = self.gradient_steps
            for t, o in zip(self._target, self._online):
                t.copy_(o)
        else:
            for t, o in zip(self._target, self._online):
                t.lerp_(o, self.cfg.tau)

    def collect_step(self) -> None:
        """One vector step: act, store the transitions, track episodes, update
        the target net when its interval ticks."""
        c = self.cfg
        if self._obs is None:
            self._obs, _ = self.envs.reset(seed=self._env_seed)
        obs = self._obs
        actions = self.act(obs, self.epsilon())
        next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
        done = np.logical_or(terminated, truncated)
        if self.same_step:
            real_next, valid = final_observations(next_obs, infos, done), None
        else:  # next-step autoreset: this step only reset the envs that ended last step
            real_next, valid = next_obs, ~self._prev_done
        self.replay.add(obs, actions, rewards, real_next, terminated, truncated, valid)
        live = valid if valid is not None else True
        self._ep_return += np.where(live, rewards, 0.0)
        success = infos.get("is_success", infos.get("solved")) if isinstance(infos, dict) else None
        if success is not None:  # success flags (Gymnasium's is_success; Sokoban's solved)
            self.successes += int(np.sum(np.logical_and(done, success)))
        for i in np.flatnonzero(done):
            self.recent_returns.append(float(self._ep_return[i]))
            self._ep_return[i] = 0.0
            self.episodes += 1
        self._prev_done = done
        self._obs = next_obs
        before = self.env_steps
        self.env_steps += c.num_envs
        if self.env_steps // c.target_update_interval > before // c.target_update_interval:
            self.update_target()
        if self.env_steps >= c.learning_starts and self.env_steps // c.train_freq > before // c.train_freq:
            self.train_burst(c.gradient_steps)

    def pop_mean_loss(self) -> float | None:
        """The mean loss of the updates since the last call (None: none).
        Data-parallel, over every rank's rows (a collective: the ranks call it
        at the same points, the log rows of ``learn`` and the CLM's rounds),
        so that the figure is the global batch's, as one process logs it."""
        loss_sum, count = float(self._loss_sum), self._loss_count
        if self.world > 1:
            both = distributed.mean_across_ranks({"sum": loss_sum, "count": float(count)})
            loss_sum, count = both["sum"], both["count"]  # both scaled by 1 / N: their ratio is the global mean
        if count == 0:
            return None
        value = loss_sum / count
        self._loss_sum.zero_()
        self._loss_count = 0
        return value

    def learn(self, logger=None, checkpoint_dir: Path | None = None,
              on_eval=None) -> dict[str, Any]:
        """Train until ``total_steps``; returns the summary figures.

        Evaluates greedily every ``eval_interval`` steps (keeping the best
        weights in ``checkpoint_dir/best``), logs every ``log_interval`` steps
        and checkpoints every ``checkpoint_interval`` steps. On Ctrl-C it saves
        a checkpoint and re-raises ``KeyboardInterrupt``.
        """
        c = self.cfg
        t0 = time.perf_counter()
        steps_at_start = self.env_steps
        next_log = _next_multiple(self.env_steps, c.log_interval)
        next_eval = _next_multiple(self.env_steps, c.eval_interval) if c.eval_interval > 0 else math.inf
        next_ckpt = (_next_multiple(self.env_steps, c.checkpoint_interval)
                     if c.checkpoint_interval > 0 else math.inf)
        wall = lambda: self.wall_before + time.perf_counter() - t0  # noqa: E731
        with DeferredInterrupt() as stop:
            while self.env_steps < c.total_steps:
                self.collect_step()
                logged_now = False
                if self.env_steps >= next_eval:
                    next_eval = _next_multiple(self.env_steps, c.eval_interval)
                    self._evaluate_and_keep_best(logger, checkpoint_dir, wall())
                    if on_eval is not None:
                        on_eval(self)
                    if c.stop_at_target and self.target_reached_at is not None:
                        break
                if self.env_steps >= next_log:
                    next_log = _next_multiple(self.env_steps, c.log_interval)
                    logged_now = True
                    elapsed = time.perf_counter() - t0
                    row = {"loss": self.pop_mean_loss(), "epsilon": self.epsilon(),
                           "episodes": self.episodes, "gradient_steps": self.gradient_steps,
                           "env_steps_per_second": (self.env_steps - steps_at_start) / max(elapsed, 1e-9)}
                    if row["loss"] is not None and not math.isfinite(row["loss"]):
                        # data-parallel: decide on the weights, the same on every rank (a rank's loss is its own)
                        self._check_finite(checkpoint_dir, force=self.world == 1)
                    if self.recent_returns:
                        row["episode_return"] = float(np.mean(self.recent_returns))
                    if logger is not None:
                        logger.log(self.env_steps, {k: v for k, v in row.items() if v is not None})
                        logger.progress(self.env_steps, ret=row.get("episode_return", float("nan")),
                                        best=self.best_eval_return)
                if checkpoint_dir is not None and self.env_steps >= next_ckpt:
                    next_ckpt = _next_multiple(self.env_steps, c.checkpoint_interval)
                    self._check_finite(checkpoint_dir)
                    self.save(Path(checkpoint_dir) / "latest", wall_seconds=wall())
                stop_now = stop.requested
                if self.world > 1:  # every rank stops at the same step: they agree at each log row
                    stop_now = logged_now and distributed.sum_counts(int(stop.requested))[0] > 0
                if stop_now:  # Ctrl-C: this step, its burst and its rows are whole, so resume is exact
                    if checkpoint_dir is not None:
                        self._check_finite(checkpoint_dir)
                        self.save(Path(checkpoint_dir) / "latest", wall_seconds=wall())
                    raise KeyboardInterrupt
        train_wall = wall()
        final = self.evaluate(c.eval_episodes)
        mean, std = float(np.mean(final)), float(np.std(final))
        if mean > self.best_eval_return:
            self.best_eval_return = mean
            if checkpoint_dir is not None:
                self.save_weights(Path(checkpoint_dir) / "best", eval_return=mean)
        if c.target_return is not None and self.target_reached_at is None and mean >= c.target_return:
            self.target_reached_at = {"env_steps": self.env_steps, "wall_seconds": train_wall}
        if logger is not None:
            logger.log(self.env_steps, {"eval_return_mean": mean, "eval_return_std": std})
        if checkpoint_dir is not None:
            self.save(Path(checkpoint_dir) / "latest", wall_seconds=train_wall)
        total_wall = wall()
        summary = {
            "eval_return_mean": mean,
            "eval_return_std": std,
            "best_eval_return": self.best_eval_return,
            "env_steps": self.env_steps,
            "gradient_steps": self.gradient_steps,
            "episodes": self.episodes,
            "wall_seconds": total_wall,
            "train_wall_seconds": train_wall,
            "env_steps_per_second": self.env_steps / max(train_wall, 1e-9),
            "exact_resume": self.exact_resume,
        }
        if c.target_return is not None:
            hit = self.target_reached_at
            summary["target_return"] = c.target_return
            summary["target_reached_env_steps"] = hit["env_steps"] if hit else None
            summary["target_reached_seconds"] = hit["wall_seconds"] if hit else None
        return summary

    def _evaluate_and_keep_best(self, logger, checkpoint_dir, wall_seconds: float) -> None:
        returns = self.evaluate(self.cfg.eval_episodes)
        mean = float(np.mean(returns))
        if logger is not None:
            logger.log(self.env_steps, {"eval_return_mean": mean, "eval_return_std": float(np.std(returns))})
        if mean > self.best_eval_return:
            self.best_eval_return = mean
            if checkpoint_dir is not None:
                self.save_weights(Path(checkpoint_dir) / "best", eval_return=mean)
        t = self.cfg.target_return
        if t is not None and self.target_reached_at is None and mean >= t:
            self.target_reached_at = {"env_steps": self.env_steps, "wall_seconds": wall_seconds}

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, n_episodes: int, seed: int | None = None) -> np.ndarray:
        """Greedy returns of ``n_episodes`` episodes, one per env of an eval vector env."""
        if self._eval_envs is None or self._eval_envs.num_envs != n_episodes:
            self._eval_envs = make_vec_env(self.cfg.env_id, n_episodes)
        return greedy_returns(self._eval_envs, self.greedy_actions,
                              seed=self.cfg.seed + 10_000 if seed is None else seed)

    def _check_finite(self, checkpoint_dir: Path | None, force: bool = False) -> None:
        """Stop with a clear message when the loss or the weights went non-finite
        (a good checkpoint is never overwritten by a broken one)."""
        if not force and all(bool(torch.isfinite(p).all()) for p in self._online):
            return
        last = "none was saved yet"
        if checkpoint_dir is not None and checkpoint_exists(Path(checkpoint_dir) / "latest"):
            _, meta = read_meta(Path(checkpoint_dir) / "latest")
            last = f"{Path(checkpoint_dir) / 'latest'} (env step {meta.get('env_steps')})"
        raise UserError(f"training diverged: the Q-network's loss or weights became NaN or infinite by env step "
                        f"{self.env_steps}; lower lr (now {self.cfg.lr:g}) or max_grad_norm. The last good "
                        f"checkpoint: {last}")

    # -- checkpoints -------------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        return {**{f"q.{k}": v for k, v in self.q.state_dict().items()},
                **{f"q_target.{k}": v for k, v in self.q_target.state_dict().items()}}

    def save_weights(self, folder: Path, **meta: Any) -> None:
        save_checkpoint(folder, self.weights(), {}, {"kind": "dqn", "env_steps": self.env_steps, **meta})

    def training_state(self, wall_seconds: float = 0.0) -> tuple[dict[str, torch.Tensor], dict, dict]:
        """(weights, state, meta) of the full training state, plain data only:
        resuming from it continues exactly when ``meta["exact_resume"]``."""
        env, whole = env_state(self.envs)
        state = {
            "optimizer": self.optimizer.state_dict(),
            "replay": self.replay.state_dict(),
            "demos": None if self.demos is None else self.demos.state_dict(),
            "counters": {"env_steps": self.env_steps, "gradient_steps": self.gradient_steps,
                         "episodes": self.episodes, "successes": self.successes,
                         "best_eval_return": self.best_eval_return,
                         "wall_seconds": wall_seconds, "target_reached_at": self.target_reached_at,
                         "loss_sum": float(self._loss_sum), "loss_count": self._loss_count},
            "rng": {"numpy_generator": self.rng.bit_generator.state, "global": rng_state()},
            "episode": {"obs": self._obs, "prev_done": self._prev_done, "ep_return": self._ep_return,
                        "recent_returns": list(self.recent_returns)},
            "env": env,
            "shape": {"num_envs": self.cfg.num_envs, "buffer_size": self.cfg.buffer_size,
                      "prioritized": self.cfg.prioritized, "demo_buffer_size": self.cfg.demo_buffer_size},
        }
        return self.weights(), state, {"kind": "dqn", "env_steps": self.env_steps, "exact_resume": whole,
                                       "config": to_dict(self.cfg)}

    def save(self, folder: Path, wall_seconds: float = 0.0) -> None:
        """The full training state: resuming from it continues exactly."""
        save_checkpoint(folder, *self.training_state(wall_seconds))

    def load(self, folder: Path, with_state: bool = True) -> None:
        weights, state, meta = load_checkpoint(folder, map_location=self.device, with_state=with_state)
        self.load_training_state(weights, state if with_state else None, meta, where=str(folder))

    def load_training_state(self, weights: dict[str, torch.Tensor], state: dict | None, meta: dict,
                            where: str = "the checkpoint") -> None:
        """Restore :meth:`training_state` (weights only when ``state`` is None)."""
        if meta.get("kind") != "dqn":
            raise UserError(f"{where} is not a DQN checkpoint (kind: {meta.get('kind')})")
        try:
            self.q.load_state_dict(strip_prefix(weights, "q."))
            self.q_target.load_state_dict(strip_prefix(weights, "q_target."))
        except RuntimeError as e:
            raise UserError(f"checkpoint {where} does not fit this config's network: {str(e).splitlines()[0]}")
        if state is None:
            return
        saved = state.get("shape", {})
        for key, value in saved.items():
            if getattr(self.cfg, key) != value:
                raise UserError(f"{key} is {getattr(self.cfg, key)} in this config but {value} in checkpoint {where}: "
                                f"the replay and environments are saved at that size; resume without changing "
                                f"{key}, or start a new run", exit_code=2)
        self.optimizer.load_state_dict(state["optimizer"])
        self.replay.load_state_dict(state["replay"])
        if state.get("demos") is not None:
            self._demo_buffer().load_state_dict(state["demos"])
        cnt = state["counters"]
        self.env_steps, self.gradient_steps = cnt["env_steps"], cnt["gradient_steps"]
        self.episodes, self.best_eval_return = cnt["episodes"], cnt["best_eval_return"]
        self.successes = cnt.get("successes", 0)
        self._loss_sum.fill_(cnt.get("loss_sum", 0.0))
        self._loss_count = int(cnt.get("loss_count", 0))
        self.wall_before, self.target_reached_at = cnt["wall_seconds"], cnt["target_reached_at"]
        self._target_synced_at = -1  # unknown after a load: copy at the next tick
        self.rng.bit_generator.state = state["rng"]["numpy_generator"]
        set_rng_state(state["rng"]["global"])
        ep = state["episode"]
        self._obs, self._prev_done, self._ep_return = ep["obs"], ep["prev_done"], ep["ep_return"]
        self.recent_returns = deque(ep["recent_returns"], maxlen=20)
        restored = restore_env_state(self.envs, state["env"])
        # Exact only when the env's whole state was saved and reads back the same.
        self.exact_resume = bool(meta.get("exact_resume", False)) and restored
        if self.world > 1 and not self.replicated:
            # The checkpoint holds rank 0's envs, replay and draws only. The other ranks start from its
            # replay, with fresh streams of their own (not rank 0's again), and new episodes.
            if self.rank:
                self.rng = np.random.default_rng([distributed.rank_seed(self.cfg.seed), self.env_steps])
                self._env_seed = distributed.rank_seed(self.cfg.seed, self.cfg.num_envs) + self.env_steps
                self._obs, self._prev_done = None, np.zeros(self.cfg.num_envs, dtype=bool)
                self._ep_return = np.zeros(self.cfg.num_envs, dtype=np.float64)
            self.exact_resume = False


def greedy_returns(envs: gym.vector.VectorEnv, policy, seed: int) -> np.ndarray:
    """Run every env of ``envs`` for exactly one episode with ``policy(obs) ->
    actions``; return the episode returns (later episodes are ignored)."""
    obs, _ = envs.reset(seed=seed)
    n = envs.num_envs
    returns = np.zeros(n)
    running = np.ones(n, dtype=bool)
    while running.any():
        obs, rewards, terminated, truncated, _ = envs.step(policy(obs))
        returns += np.where(running, rewards, 0.0)
        running &= ~np.logical_or(terminated, truncated)
    return returns


def _next_multiple(value: int, interval: int) -> int:
    return (value // interval + 1) * interval

