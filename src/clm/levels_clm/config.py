"""The CLM's configuration: the loop's own settings plus one nested config per
network (the GAN, the player DQN, the designer DQN)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from clm.agents.dqn import DQNConfig
from clm.core.errors import UserError
from clm.gan.config import TileGanConfig
from clm.levels_clm.qd_grid import SECOND_AXES


def _gan() -> TileGanConfig:
    # MLP G and D: on 7x7 grids they were 5x faster per step than the DCGAN pair (17 vs 100 ms for D).
    # Spectral norm on D: without it D's loss fell to ~0.1 within 1,200 steps on the 7x7 corpus (G's loss
    # climbing to 9); with it D's loss held at ~1.27 and the tile KL to the corpus fell to 0.34 (from 0.50).
    return TileGanConfig(z_dim=16, g_width=32, d_width=32, arch="mlp", lr_g=5e-4, lr_d=5e-4, spectral_norm=True,
                         label_smoothing=0.0,  # as in the CLM evidence runs
                         diffaug="", minibatch_std=True, ema=True, ema_decay=0.99, gumbel_tau=1.0,
                         divergence_patience=300)


def _player() -> DQNConfig:
    # DQfD on the solver's demonstrations: pre-training alone reaches 0.86 held-out on the default corpus
    # (plain DQN: 0.19 after 192k env steps); a quarter of each batch stays demonstrations while the player
    # explores from a pre-trained policy, so epsilon starts low.
    return DQNConfig(env_id="sokoban", num_envs=32, network="conv", conv_channels=(16, 32), hidden=(128,),
                     dueling=True, double_dqn=True, n_step=3, gamma=0.97, lr=5e-4, batch_size=64,
                     buffer_size=60_000, learning_starts=2_000, train_freq=32, gradient_steps=2,
                     target_update_interval=2_000, epsilon_start=0.2, exploration_fraction=0.3, epsilon_end=0.02,
                     max_grad_norm=10.0, eval_interval=0, demo_fraction=0.25, pretrain_steps=3_000)


def _designer() -> DQNConfig:
    return DQNConfig(env_id="designer", num_envs=8, network="mlp", hidden=(64, 64), lr=1e-3, batch_size=32,
                     buffer_size=20_000, learning_starts=256, train_freq=8, gradient_steps=2, gamma=0.9,
                     target_update_interval=256, exploration_fraction=0.5, epsilon_end=0.1, eval_interval=0)


@dataclass
class CLMConfig:
    """Settings of ``clm run`` (``key=value``; nested: ``player.lr=1e-3``)."""

    data: str = "generated"  #: generated (the project's own generator) | boxoban:DIR | a Boxoban file/folder
    preset: Literal["small", "boxoban"] = "small"  #: small: 7x7, 1 box, CPU minutes; boxoban: 10x10 corpus, GPU
    seed: int = 0  #: seed of everything
    device: str = "cpu"  #: cpu | cuda | auto, for all networks
    threads: int = 0  #: torch threads (0: 1)
    level_size: int = 7  #: generated corpus: square level size
    n_boxes: int = 1  #: generated corpus: boxes per level (1: a DQN visibly learns within CPU minutes)
    min_pushes: int = 3  #: generated corpus: least optimal pushes of a level
    corpus_size: int = 800  #: training levels (generated corpus; at most this many from files)
    heldout_size: int = 200  #: held-out real levels for the player's solve rate
    rounds: int = 30  #: CLM rounds (the seed's loop, steps 2-5)
    max_seconds: float = 0.0  #: wall-clock budget of this session of the run: no round starts after it is spent (0: none); the last round is evaluated
    gan_steps: int = 60  #: D and G updates per round (fixed schedule)
    gan_warmup_steps: int = 0  #: D and G updates before round 1 (0: none; G then starts with the player)
    player_steps: int = 6_400  #: player env steps per round (fixed schedule)
    designer_steps: int = 128  #: designer env steps per round
    designer_step_size: float = 0.5  #: how far one designer action moves one latent coordinate
    designer_horizon: int = 8  #: designer actions per episode before a fresh random z
    samples_per_round: int = 64  #: raw G samples judged per round (playable ones may join the pool)
    generated_to_player: bool = True  #: coupling: verified generated levels join the player's pool
    designer_search: bool = True  #: coupling: a designer DQN searches G's latent space
    archive_feedback: bool = True  #: coupling: the archive feeds D's real data and the player's pool
    edit_search: bool = False  #: coupling (issue 25, ACCEL): each round, random edits (domains/levels/edit_env) of G's playable samples and the archive's levels are judged; creative ones join the archive (so D's real batches, with archive_feedback) and the QD grid; playable ones the player's greedy policy fails join its pool (its frontier, with generated_to_player)
    edits_per_round: int = 64  #: edited levels judged per round (with edit_search)
    edit_max_boxes: int = 2  #: most boxes an edit may make a level hold (with edit_search)
    player_demos: bool = True  #: the player learns from the solver's solutions (DQfD) of every level in its pool; false: plain DQN (player.demo_fraction and player.pretrain_steps then do not apply)
    demo_symmetries: bool = True  #: demonstrations under the 8 symmetries of the square too (square levels)
    d_adversarial_flips: int = 0  #: adversarial training of D: this many gradient-guided wall/floor flips (each lowering D's score most) on a share of D's real batches, still labelled real (0: off)
    d_adversarial_fraction: float = 0.5  #: the share of D's real batches so flipped (with d_adversarial_flips)
    robustness_eval: bool = False  #: at the end, the player's held-out solve rate under perturbations and D's realism under adversarial flips, into the summary (hybrid/robustness.py)
    robustness_noise: float = 0.5  #: std of the observation noise of that evaluation
    pool_source: Literal["generator", "classic"] = "generator"  #: where the player's extra levels come from: G's verified levels (the CLM), or as many fresh levels per round from the project's classic generator (the oracle of the evidence runs; the archive then stays out of the pool)
    generated_fraction: float = 0.3  #: share of the player's pool that is generated (when coupled)
    archive_real_fraction: float = 0.2  #: share of D's real batches drawn from the archive (when coupled)
    min_novelty: int = 3  #: creative: at least this many cells differ from every corpus/archive level
    target_pushes: float = 8.0  #: difficulty term saturates at this many optimal pushes
    solve_time_limit: float = 1.0  #: solver seconds per judged level
    solver_jobs: int = 1  #: workers for the solver checks of G's levels: Ray's tasks when ray.init has run in this process, else this many worker processes (1: in this process; results are the same)
    archive_size: int = 500  #: most creative levels kept
    qd_descriptor: str = "wall_density"  #: second axis of the run's QD grid (first: optimal pushes): wall_density, box_goal_distance or realism
    eval_levels: int = 200  #: held-out levels for the player's solve rate each evaluation
    eval_every: int = 5  #: rounds between held-out evaluations
    stuck_rounds: int = 10  #: stop as player_stuck if the player solved nothing in this round and after (0: never)
    wandb: Literal["", "offline", "online"] = ""  #: Weights & Biases logging: "" off, "offline" (no account), "online"
    report: bool = True  #: write report.html at the end
    gan: TileGanConfig = field(default_factory=_gan)  #: the GAN (loss, stabilisers, widths, learning rates)
    player: DQNConfig = field(default_factory=_player)  #: the player DQN
    designer: DQNConfig = field(default_factory=_designer)  #: the designer DQN (acts in G's latent space)

    #: options removed in issue 24 after docs/results.md measured them as giving nothing
    REMOVED_KEYS: ClassVar[dict[str, str]] = {
        "schedule": "the adaptive schedule changed neither the solve rate nor the time to the bar (docs/results.md, "
                    "'Problem 3: complexity against efficiency')",
        "player_steers_generator": "the player's difficulty steer cut G's playable samples and helped nothing "
                                   "(docs/results.md, 'The player: DQfD on the exact solver's demonstrations')",
        "steer_weight": "it weighted the removed difficulty steer (see player_steers_generator)",
        "steer_quantile": "it set the removed difficulty steer's target (see player_steers_generator)",
        "pool_symmetries": "it did not make the player more robust (docs/results.md, 'Robustness: the player and D "
                           "under perturbations')",
        "pool_wall_moves": "it did not make the player more robust (docs/results.md, 'Robustness: the player and D "
                           "under perturbations')",
        "generated_filter": "neither 'unsolved' nor 'novel' raised the held-out solve rate (docs/results.md, "
                            "'Problem 1: does generated data train the agent?')",
        "feedback_levels": "feeding D the QD grid's elites gave nothing over the archive (docs/results.md, "
                           "'Problem 2 (QD)')",
    }

    def validate(self) -> None:
        if unused := _unused_keys_set(self):
            raise UserError("clm run does not use " + "; ".join(unused) + ". Drop these keys", exit_code=2)
        if self.level_size < 3:
            raise UserError(f"config key 'level_size' must be >= 3 (a wall ring around floor), got {self.level_size}",
                            exit_code=2)
        if self.d_adversarial_flips < 0 or not 0 < self.d_adversarial_fraction <= 1 or self.robustness_noise < 0:
            raise UserError("d_adversarial_flips must be >= 0, d_adversarial_fraction in (0, 1], robustness_noise >= 0",
                            exit_code=2)
        for name in ("eval_every", "eval_levels", "samples_per_round", "edits_per_round", "edit_max_boxes", "archive_size", "corpus_size", "heldout_size",
                     "n_boxes", "solver_jobs"):
            if getattr(self, name) < 1:
                raise UserError(f"config key '{name}' must be >= 1, got {getattr(self, name)}", exit_code=2)
        if self.designer_steps < 0 or self.stuck_rounds < 0 or self.min_pushes < 0 or self.min_novelty < 0:
            raise UserError("designer_steps, stuck_rounds, min_pushes and min_novelty must be >= 0", exit_code=2)
        if not self.solve_time_limit > 0 or not self.target_pushes > 0:
            raise UserError("solve_time_limit and target_pushes must be > 0", exit_code=2)
        if not self.max_seconds >= 0:
            raise UserError(f"max_seconds must be >= 0 (0: no budget), got {self.max_seconds}", exit_code=2)
        if not self.designer_step_size > 0 or self.designer_horizon < 1:
            raise UserError("designer_step_size must be > 0 and designer_horizon >= 1", exit_code=2)
        if self.rounds < 1 or self.gan_steps < 0 or self.player_steps < 1:
            raise UserError("rounds and player_steps must be >= 1, gan_steps >= 0")
        if not 0 <= self.generated_fraction < 1 or not 0 <= self.archive_real_fraction < 1:
            raise UserError("generated_fraction and archive_real_fraction must lie in [0, 1)")
        if self.qd_descriptor not in SECOND_AXES:
            raise UserError(f"unknown qd_descriptor '{self.qd_descriptor}': valid ones are {', '.join(SECOND_AXES)} "
                            f"(the first axis is always pushes)", exit_code=2)
        if self.pool_source not in ("generator", "classic"):
            raise UserError(f"unknown pool_source '{self.pool_source}': use generator or classic")
        if not (self.data in ("generated",) or self.data.startswith("boxoban:") or self.data):
            raise UserError(f"unknown data '{self.data}': use generated, boxoban:DIR or a Boxoban file/folder")


#: DQNConfig keys of the player and the designer that ``clm run`` sets itself
DQN_KEYS_SET_BY_CLM = {
    "env_id": "the player plays the corpus, the designer G's latent space",
    "total_steps": "set by rounds x player_steps (designer_steps for the designer)",
    "seed": "the top-level seed seeds everything", "device": "use the top-level device",
    "threads": "use the top-level threads", "eval_interval": "use eval_every (rounds)",
    "eval_episodes": "use eval_levels", "target_return": "the CLM reports held-out solve rates",
    "stop_at_target": "the CLM runs its rounds", "log_interval": "the CLM logs every round",
    "checkpoint_interval": "the CLM saves every round",
}


#: the designer's keys clm run does not use: the player's, and its data-parallel mode (only the player's learner is
#: data-parallel under torchrun; the designer runs alike on every rank)
DESIGNER_KEYS_NOT_IN_CLM = {**DQN_KEYS_SET_BY_CLM,
                            "ddp_data": "only the player's learner is data-parallel; the designer runs alike on every rank"}


def _unused_keys_set(cfg: CLMConfig) -> list[str]:
    """``section.key (why)`` for each key set to other than its default that clm run does not use."""
    out = []
    for section, keys, default in (("player", DQN_KEYS_SET_BY_CLM, _player()),
                                   ("designer", DESIGNER_KEYS_NOT_IN_CLM, _designer())):
        mine = getattr(cfg, section)
        out += [f"{section}.{k} ({why})" for k, why in keys.items() if getattr(mine, k) != getattr(default, k)]
    return out


PRESETS = {
    "small": {},
    # The real Boxoban corpus at full scale: 10x10, 4 boxes; sized for a GPU.
    "boxoban": {"level_size": 10, "n_boxes": 4, "min_pushes": 6, "corpus_size": 50_000, "heldout_size": 1_000, "rounds": 200, "gan_steps": 200,
                "player_steps": 50_000, "designer_steps": 512, "samples_per_round": 256, "eval_levels": 1_000,
                "solve_time_limit": 2.0, "target_pushes": 20.0, "device": "auto", "stuck_rounds": 50,
                "gan": {"arch": "dcgan", "g_width": 64, "d_width": 64, "z_dim": 32},
                "player": {"num_envs": 256, "buffer_size": 500_000, "conv_channels": [64, 64, 64],
                           "hidden": [256], "train_freq": 256, "gradient_steps": 8, "batch_size": 256}},
}
