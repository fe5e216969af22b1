"""``clm tune``'s search spaces (each command's default; Optuna's draws of a
trial's settings) and the study's outputs (trials.csv, best.json, best.png)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after the non-interactive backend

from clm.core.rundir import atomic_write_bytes, atomic_write_text  # noqa: E402

#: each command's default search space (dqn: rl-zoo3's DQN ranges, narrowed for CPU budgets)
DEFAULT_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "dqn": {
        "lr": {"type": "loguniform", "low": 1e-4, "high": 3e-3},
        "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
        "gamma": {"type": "categorical", "choices": [0.95, 0.98, 0.99, 0.995]},
        # at most 8 updates per env step (rl-zoo3's space allows 128: a trial of 20,000 steps then makes 2.5M updates)
        "train_freq": {"type": "categorical", "choices": [16, 64, 256]},
        "gradient_steps": {"type": "categorical", "choices": [4, 16, 64, 128]},
        "target_update_interval": {"type": "categorical", "choices": [10, 100, 1000, 5000]},
        "exploration_fraction": {"type": "uniform", "low": 0.05, "high": 0.5},
        "epsilon_end": {"type": "uniform", "low": 0.01, "high": 0.1},
        "hidden": {"type": "categorical", "choices": [[64, 64], [128, 128], [256, 256]]},  # rl-zoo3's net_arch
    },
    # the stable ns/hinge settings around the defaults (wgan-gp wants its own beta1 and d_steps)
    "gan": {
        "lr_g": {"type": "loguniform", "low": 5e-5, "high": 1e-3},
        "lr_d": {"type": "loguniform", "low": 5e-5, "high": 1e-3},
        "beta1": {"type": "categorical", "choices": [0.0, 0.5]},
        "loss": {"type": "categorical", "choices": ["ns", "hinge"]},
        "d_steps": {"type": "categorical", "choices": [1, 2]},
        "spectral_norm": {"type": "categorical", "choices": [False, True]},
        "label_smoothing": {"type": "uniform", "low": 0.0, "high": 0.2},
        "ema_decay": {"type": "categorical", "choices": [0.99, 0.999]},
    },
}
KINDS = ("uniform", "loguniform", "int", "categorical")


def suggest(trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One trial's settings, drawn by Optuna from ``space``."""
    out = {}
    for key, d in space.items():
        kind = d["type"]
        if kind == "categorical":
            if any(isinstance(c, (list, dict)) for c in d["choices"]):  # Optuna's choices are scalars: lists go as JSON
                out[key] = json.loads(trial.suggest_categorical(key, [json.dumps(c) for c in d["choices"]]))
            else:
                out[key] = trial.suggest_categorical(key, d["choices"])
        elif kind == "int":
            out[key] = trial.suggest_int(key, int(d["low"]), int(d["high"]))
        else:
            out[key] = trial.suggest_float(key, float(d["low"]), float(d["high"]), log=kind == "loguniform")
    return out


def settings_of(params: dict[str, Any], space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A trial's settings from Optuna's stored params (list choices are stored as JSON text)."""
    return {k: json.loads(v) if isinstance(v, str) and any(isinstance(c, (list, dict))
                                                            for c in space.get(k, {}).get("choices", []))
            else v for k, v in params.items()}


def write_outputs(study, out: Path, objective: str) -> None:
    """trials.csv, best.json and best.png (the best value over trials), each written atomically."""
    keys = sorted({k for t in study.trials for k in t.params})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["trial", "state", objective, *keys])
    for t in study.trials:
        w.writerow([t.number, t.state.name.lower(), "" if t.value is None else t.value,
                    *[t.params.get(k, "") for k in keys]])
    atomic_write_text(out / "trials.csv", buf.getvalue())
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        return
    best = study.best_trial
    atomic_write_text(out / "best.json", json.dumps({"trial": best.number, objective: best.value,
                                                     "params": settings_of(best.params,
                                                                           study.user_attrs["space"]["space"]),
                                                     "run_dir": str(out / f"trial-{best.number:04d}")}, indent=1))
    maximise = study.direction.name == "MAXIMIZE"
    xs, ys, running = [], [], None
    for t in complete:
        running = t.value if running is None else (max if maximise else min)(running, t.value)
        xs.append(t.number)
        ys.append(running)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([t.number for t in complete], [t.value for t in complete], "o", alpha=0.4, label="trial")
    ax.step(xs, ys, where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.legend()
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(out / "best.png", png.getvalue())
