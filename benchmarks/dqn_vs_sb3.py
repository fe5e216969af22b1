"""Our DQN against Stable-Baselines3's DQN on CartPole-v1 at identical settings
(the rl-zoo3 tuned hyperparameters), alternating runs over several seeds; then
our default config's wall time to a greedy return >= 475.

    .venv/bin/pip install stable-baselines3==2.9.2   # benchmark-only extra
    .venv/bin/python benchmarks/dqn_vs_sb3.py --seeds 3 --solve-seeds 5

Each run is its own subprocess with one torch thread and one BLAS thread. Prints one line per run
and a final JSON line of the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

RLZOO = dict(  # rl-zoo3 hyperparams/dqn.yml, CartPole-v1
    total_steps=50_000, lr=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1_000,
    gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
    exploration_fraction=0.16, epsilon_end=0.04, hidden=(256, 256),
)
EVAL_EPISODES = 20


def run_ours(seed: int) -> dict:
    from clm.agents.dqn import DQN, DQNConfig

    cfg = DQNConfig(seed=seed, eval_interval=0, eval_episodes=EVAL_EPISODES, double_dqn=False,
                    dueling=False, n_step=1, prioritized=False, tau=1.0, loss="huber",
                    max_grad_norm=10.0, epsilon_start=1.0, num_envs=1, **RLZOO)
    agent = DQN(cfg)
    t, c = time.perf_counter(), time.process_time()
    while agent.env_steps < cfg.total_steps:
        agent.collect_step()
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    returns = agent.evaluate(EVAL_EPISODES, seed=10_000 + seed)
    return {"seconds": seconds, "cpu_seconds": cpu, "env_steps": agent.env_steps, "return": float(returns.mean())}


def run_sb3(seed: int) -> dict:
    import gymnasium as gym
    from stable_baselines3 import DQN as SB3DQN

    from clm.agents.dqn import greedy_returns
    from clm.agents.envs import make_vec_env

    r = RLZOO
    model = SB3DQN("MlpPolicy", gym.make("CartPole-v1"), learning_rate=r["lr"], batch_size=r["batch_size"],
                   buffer_size=r["buffer_size"], learning_starts=r["learning_starts"], gamma=r["gamma"],
                   target_update_interval=r["target_update_interval"], train_freq=r["train_freq"],
                   gradient_steps=r["gradient_steps"], exploration_fraction=r["exploration_fraction"],
                   exploration_final_eps=r["epsilon_end"], policy_kwargs=dict(net_arch=list(r["hidden"])),
                   seed=seed, device="cpu", verbose=0)
    t, c = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=r["total_steps"])
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    envs = make_vec_env("CartPole-v1", EVAL_EPISODES)
    returns = greedy_returns(envs, lambda obs: model.predict(obs, deterministic=True)[0], seed=10_000 + seed)
    return {"seconds": seconds, "cpu_seconds": cpu, "env_steps": model.num_timesteps, "return": float(returns.mean())}


def run_solve(seed: int) -> dict:
    from clm.agents.dqn import DQN, DQNConfig
    from clm.agents.training import learn

    cfg = DQNConfig(seed=seed, target_return=475, stop_at_target=True)  # the default config
    t = time.perf_counter()
    summary = learn(DQN(cfg))
    return {"seconds_to_475": summary["target_reached_seconds"],
            "steps_to_475": summary["target_reached_env_steps"],
            "best_eval_return": summary["best_eval_return"], "total_seconds": time.perf_counter() - t}


def one(kind: str, seed: int) -> dict:
    cmd = [sys.executable, __file__, "--one", kind, "--seed", str(seed)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--solve-seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run from here (more seeds for the returns)")
    ap.add_argument("--one", choices=["ours", "sb3", "solve"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from clm.core.runtime import set_threads

    set_threads(1)  # one torch thread and one BLAS thread, for both libraries
    if args.one:
        print(json.dumps({"ours": run_ours, "sb3": run_sb3, "solve": run_solve}[args.one](args.seed)))
        return
    ours, sb3, ratios, cpu_ratios = [], [], [], []
    for seed in range(args.first_seed, args.first_seed + args.seeds):  # alternate, so that machine noise hits both alike
        o, s = one("ours", seed), one("sb3", seed)
        o_sps, s_sps = o["env_steps"] / o["seconds"], s["env_steps"] / s["seconds"]
        ours.append(o), sb3.append(s), ratios.append(o_sps / s_sps)
        # CPU seconds per env step are less sensitive than wall time to other jobs on a shared machine
        cpu_ratios.append((s["cpu_seconds"] / s["env_steps"]) / (o["cpu_seconds"] / o["env_steps"]))
        print(f"seed {seed}: ours {o_sps:7.0f} steps/s return {o['return']:6.1f} | "
              f"sb3 {s_sps:7.0f} steps/s return {s['return']:6.1f} | ratio {o_sps / s_sps:.2f} "
              f"(CPU-time ratio {cpu_ratios[-1]:.2f})", flush=True)
    solves = []
    for seed in range(args.first_seed, args.first_seed + args.solve_seeds):
        r = one("solve", seed)
        solves.append(r)
        print(f"default config seed {seed}: 475 reached at {r['steps_to_475']} steps, "
              f"{r['seconds_to_475']} s (best {r['best_eval_return']:.1f})", flush=True)
    solved = [r for r in solves if r["seconds_to_475"] is not None]
    figures = {
        "ours_steps_per_second_median": statistics.median(o["env_steps"] / o["seconds"] for o in ours),
        "sb3_steps_per_second_median": statistics.median(s["env_steps"] / s["seconds"] for s in sb3),
        "speed_ratio_median": statistics.median(ratios),
        "cpu_time_ratio_median": statistics.median(cpu_ratios),
        "ours_returns": [o["return"] for o in ours],
        "sb3_returns": [s["return"] for s in sb3],
        "ours_return_mean": statistics.mean(o["return"] for o in ours),
        "sb3_return_mean": statistics.mean(s["return"] for s in sb3),
        "default_solved_seeds": f"{len(solved)}/{len(solves)}",
        "default_seconds_to_475_median": statistics.median(r["seconds_to_475"] for r in solved) if solved else None,
        "default_steps_to_475_median": statistics.median(r["steps_to_475"] for r in solved) if solved else None,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
