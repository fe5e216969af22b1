"""The CLM's Sokoban player against Stable-Baselines3 PPO and DQN on the same
env, corpus and held-out split, at equal env steps and at equal wall time.

    .venv/bin/pip install stable-baselines3==2.9.2   # benchmark-only extra
    .venv/bin/python benchmarks/player_vs_sb3.py --seeds 3

Learners (each in its own subprocess, one torch thread, run one after the
other, never side by side):

* ``ours``: the CLM's default player (``clm run``'s ``player`` config): DQN
  with double/dueling/3-step returns and DQfD on the exact solver's
  demonstrations of the training levels (with the square's 8 symmetries),
  pre-trained on them, then trained on the env;
* ``ours_nodemo``: the same DQN without demonstrations (epsilon from 1.0);
* ``sb3_ppo``: SB3 PPO, 16 envs, rl-zoo3's Atari-style settings scaled to
  this env (n_steps 128, batch 256, 4 epochs, lr 2.5e-4, clip 0.1, ent 0.01);
* ``sb3_dqn``: SB3 DQN with our plain DQN's hyperparameters (32 envs).

Both SB3 learners get the same conv torso as ours (3x3 convs 16-32 with
padding, then 128 units) through a features extractor, and gamma 0.97.

Each learner trains for ``--steps`` env steps (the player's budget in
``make run``: 30 rounds x 6,400) and then, for SB3, on until the wall time
that ``ours`` took for the same seed; the held-out solve rate is measured
every ``--eval-every`` env steps (evaluation time is not counted as
training time). Reported: held-out solve rate at equal env steps and at
equal wall time, paired by seed, mean and 95% t-interval.

A harder rung, ``--rung hard``: 10x10 levels with 2 boxes (the project's
generator, 2,000 training levels; see ``HARD_RUNG``), ``--steps`` set by the
user (``--learners ours`` for our player alone).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace

from benchstats import ci95

LEARNERS = ("ours", "ours_nodemo", "sb3_ppo", "sb3_dqn")


#: The harder rung: 10x10 levels with 2 boxes from the project's generator (7.6 optimal pushes, 20.5 moves
#: on average), a larger corpus (behaviour cloning on 2,000 levels' demonstrations reached 0.42 held-out
#: in a probe, on 800 far less) and a wider network; the rest is the CLM's player.
HARD_RUNG = dict(level_size=10, n_boxes=2, min_pushes=3, corpus_size=2_000)
HARD_PLAYER = dict(conv_channels=(32, 64), hidden=(256,), demo_buffer_size=400_000, pretrain_steps=6_000,
                   buffer_size=100_000)


def corpus_for(rung: str, player: list[str] | None = None, extra_levels: int = 0):
    """(config, corpus, held-out levels) of a rung; ``player``: key=value
    overrides of the player's DQNConfig, checked as the command line does;
    ``extra_levels``: that many more training levels from the same generator
    under another seed (the held-out split stays the same levels)."""
    from clm.agents.dqn import DQNConfig
    from clm.core.config import load_config, to_dict
    from clm.levels_clm.config import CLMConfig
    from clm.levels_clm.corpus import load_corpus

    cfg = CLMConfig() if rung == "main" else CLMConfig(**HARD_RUNG)
    if rung == "hard":
        cfg.player = replace(cfg.player, **HARD_PLAYER)
    if player:
        cfg.player = load_config(DQNConfig, base=to_dict(cfg.player), overrides=player)
    corpus, held = load_corpus(cfg)
    if extra_levels:
        from clm.domains.levels.generator import generate_levels

        seen = {lv.key() for lv in held}
        more = generate_levels(extra_levels, size=cfg.level_size, n_boxes=cfg.n_boxes, seed=20_000 + cfg.level_size,
                               min_pushes=cfg.min_pushes)
        corpus = corpus + [lv for lv in more if lv.key() not in seen]
    return cfg, corpus, held


def run_learner(kind: str, seed: int, rung: str, steps: int, wall: float, every: int,
                player: list[str] | None = None, extra_levels: int = 0) -> dict:
    import torch

    from clm.core.runtime import set_threads
    from clm.levels_clm.couplings import player_solve_rate

    set_threads(1)
    torch.manual_seed(seed)
    cfg, corpus, held = corpus_for(rung, player, extra_levels)
    curve: list[dict] = []
    train_seconds = 0.0

    def record(env_steps: int, policy) -> None:
        curve.append({"env_steps": int(env_steps), "seconds": round(train_seconds, 2),
                      "cpu_seconds": round(time.process_time(), 1),  # the whole process, evaluations too
                      "heldout": player_solve_rate(policy, held)})

    if kind.startswith("ours"):
        from clm.agents.dqn import DQN
        from clm.domains.levels.demos import solver_demonstrations
        from clm.domains.levels.env import SokobanVecEnv

        pc = replace(cfg.player, total_steps=steps, seed=seed)
        if kind == "ours_nodemo":
            pc = replace(pc, demo_fraction=0.0, pretrain_steps=0, epsilon_start=1.0, epsilon_end=0.05,
                         exploration_fraction=0.4)
        agent = DQN(pc, envs=SokobanVecEnv(corpus, num_envs=pc.num_envs, seed=seed))
        t = time.perf_counter()
        if pc.uses_demonstrations:
            d = solver_demonstrations(corpus, symmetries=True)
            agent.add_demonstrations(d.obs, d.actions, d.rewards, d.next_obs, d.terminated, d.episode_end)
            agent.pretrain()
        train_seconds += time.perf_counter() - t
        record(0, agent.greedy_actions)
        while agent.env_steps < steps:
            t = time.perf_counter()
            target = agent.env_steps + every
            while agent.env_steps < target:
                agent.collect_step()
            train_seconds += time.perf_counter() - t
            record(agent.env_steps, agent.greedy_actions)
        return {"curve": curve}

    import gymnasium as gym
    from stable_baselines3 import DQN as SB3DQN
    from stable_baselines3 import PPO
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from clm.domains.levels.env import SokobanEnv

    class GridTorso(BaseFeaturesExtractor):
        """The same conv torso as our player: 3x3 convs 16, 32 with padding, flattened."""

        def __init__(self, space: gym.spaces.Box):
            c, h, w = space.shape
            super().__init__(space, 32 * h * w)
            self.net = torch.nn.Sequential(torch.nn.Conv2d(c, 16, 3, padding=1), torch.nn.ReLU(),
                                           torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
                                           torch.nn.Flatten())

        def forward(self, x):
            return self.net(x.float())

    n_envs = 16 if kind == "sb3_ppo" else 32
    venv = DummyVecEnv([lambda i=i: SokobanEnv(corpus) for i in range(n_envs)])
    venv.seed(seed)
    pk = dict(features_extractor_class=GridTorso, normalize_images=False, net_arch=[128])
    if kind == "sb3_ppo":
        model = PPO("MlpPolicy", venv, n_steps=128, batch_size=256, n_epochs=4, learning_rate=2.5e-4,
                    clip_range=0.1, ent_coef=0.01, gamma=0.97, gae_lambda=0.95, policy_kwargs=pk, seed=seed,
                    device="cpu", verbose=0)
    else:
        model = SB3DQN("MlpPolicy", venv, learning_rate=5e-4, buffer_size=60_000, learning_starts=2_000,
                       batch_size=64, gamma=0.97, train_freq=1, gradient_steps=2, target_update_interval=2_000,
                       exploration_fraction=0.4, exploration_final_eps=0.05, max_grad_norm=10.0,
                       policy_kwargs=pk, seed=seed, device="cpu", verbose=0)
    policy = lambda obs: model.predict(obs, deterministic=True)[0]  # noqa: E731
    record(0, policy)
    while model.num_timesteps < steps or train_seconds < wall:
        t = time.perf_counter()
        model.learn(total_timesteps=every, reset_num_timesteps=False)
        train_seconds += time.perf_counter() - t
        record(model.num_timesteps, policy)
        if model.num_timesteps >= 4 * steps:  # a cap, should ours be very slow
            break
    return {"curve": curve}


def at_steps(curve: list[dict], steps: int) -> float:
    """Held-out solve rate at the first evaluation at or past ``steps``."""
    return next(p["heldout"] for p in curve if p["env_steps"] >= steps)


def at_wall(curve: list[dict], seconds: float) -> float:
    """Held-out solve rate of the last evaluation whose training time is within ``seconds``."""
    inside = [p for p in curve if p["seconds"] <= seconds * 1.02]
    return inside[-1]["heldout"] if inside else curve[0]["heldout"]


def one(kind: str, seed: int, rung: str, steps: int, wall: float, every: int, player: list[str],
        extra_levels: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--one", kind, "--seed", str(seed), "--rung", rung, "--steps", str(steps),
           "--wall", str(wall), "--eval-every", str(every), "--extra-levels", str(extra_levels),
           *[a for kv in player for a in ("--player", kv)]]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--rung", choices=["main", "hard"], default="main", help="main: 7x7 1 box; hard: 10x10 2 boxes")
    ap.add_argument("--steps", type=int, default=192_000, help="env steps per learner (equal-steps point)")
    ap.add_argument("--eval-every", type=int, default=32_000)
    ap.add_argument("--learners", default=",".join(LEARNERS), help="comma-separated subset of " + ", ".join(LEARNERS))
    ap.add_argument("--one", choices=LEARNERS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--wall", type=float, default=0.0)
    ap.add_argument("--player", action="append", default=[], metavar="KEY=VALUE",
                    help="override a field of our player's DQNConfig (repeatable), e.g. batch_size=128")
    ap.add_argument("--extra-levels", type=int, default=0,
                    help="this many more training levels from the same generator (another seed; same held-out split)")
    args = ap.parse_args()
    from clm.agents.dqn import DQNConfig
    from clm.core.config import load_config
    from clm.core.errors import UserError

    try:
        load_config(DQNConfig, overrides=args.player)  # a bad --player key or value stops here, with the valid keys
    except UserError as e:
        ap.error(f"--player: {e}")
    learners = [k.strip() for k in args.learners.split(",") if k.strip()]
    bad = [k for k in learners if k not in LEARNERS]
    if bad or not learners or learners[0] != "ours":
        ap.error(f"--learners: unknown {bad} (valid: {', '.join(LEARNERS)}); 'ours' must come first")
    if args.one:
        print(json.dumps(run_learner(args.one, args.seed, args.rung, args.steps, args.wall, args.eval_every, args.player,
                                      args.extra_levels)))
        return
    results: dict[str, list[dict]] = {k: [] for k in learners}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        ours = one("ours", seed, args.rung, args.steps, 0.0, args.eval_every, args.player, args.extra_levels)
        wall = ours["curve"][-1]["seconds"]
        results["ours"].append(ours)
        line = [f"seed {seed}: ours {at_steps(ours['curve'], args.steps):.3f} in {wall:.0f} s"]
        for kind in learners[1:]:
            r = one(kind, seed, args.rung, args.steps, wall, args.eval_every, args.player, args.extra_levels)
            results[kind].append(r)
            line.append(f"{kind} {at_steps(r['curve'], args.steps):.3f} at {args.steps} steps, "
                        f"{at_wall(r['curve'], wall):.3f} at {wall:.0f} s")
        print(" | ".join(line), flush=True)
    figures: dict = {"rung": args.rung, "steps": args.steps, "seeds": args.seeds, "player": args.player,
                     "extra_levels": args.extra_levels}
    walls = [r["curve"][-1]["seconds"] for r in results["ours"]]
    figures["ours_wall_seconds"] = walls
    for kind, runs in results.items():
        steps_vals = [at_steps(r["curve"], args.steps) for r in runs]
        wall_vals = [at_wall(r["curve"], w) for r, w in zip(runs, walls)]
        m, lo, hi = ci95(steps_vals)
        figures[f"{kind}_heldout_at_steps"] = {"mean": m, "ci95": [lo, hi], "per_seed": steps_vals}
        m, lo, hi = ci95(wall_vals)
        figures[f"{kind}_heldout_at_wall"] = {"mean": m, "ci95": [lo, hi], "per_seed": wall_vals}
        figures[f"{kind}_curves"] = [r["curve"] for r in runs]
    for kind in learners[1:]:
        diffs = [a - b for a, b in zip(figures["ours_heldout_at_steps"]["per_seed"],
                                       figures[f"{kind}_heldout_at_steps"]["per_seed"])]
        m, lo, hi = ci95(diffs)
        figures[f"ours_minus_{kind}_at_steps"] = {"mean": m, "ci95": [lo, hi]}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
