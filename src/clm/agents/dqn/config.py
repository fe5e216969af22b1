"""The DQN's hyperparameters (``DQNConfig``) and what follows from them alone:
their validation, the data-parallel split they allow, the exploration and
importance-weight schedules, and the Q-network they describe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from clm.core import distributed
from clm.core.errors import UserError


@dataclass
class DQNConfig:
    """Hyperparameters of a DQN run. The defaults are rl-zoo3's tuned CartPole-v1
    settings with a 128-128 network instead of 256-256 (a quarter of the
    FLOPs per update; it reached 500 within 50k steps in the seeds we tried)."""

    #: options removed in issue 24 after docs/results.md measured them as giving nothing
    REMOVED_KEYS: ClassVar[dict[str, str]] = {
        "obs_noise": "noise injection did not make the player more robust (docs/results.md, 'Robustness: the "
                     "player and D under perturbations')",
    }

    env_id: str = "CartPole-v1"  #: Gymnasium id of the environment
    seed: int = 0  #: seed of every random draw (same seed, same device -> same numbers)
    total_steps: int = 50_000  #: environment steps to train for (summed over envs)
    num_envs: int = 1  #: environments stepped together
    device: str = "cpu"  #: cpu, cuda or auto
    threads: int = 0  #: torch threads; 0 picks 1 (best for small networks on shared cores)
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
