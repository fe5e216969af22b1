"""``clm tune``: a hyperparameter search over a training command's config, on Optuna.

A study is a folder (``--out``) and an Optuna storage (``--storage``, by
default ``sqlite:///OUT/study.db``), so a stopped study resumes where it
stopped. Each trial is a normal run folder (``OUT/trial-0007``) with its
config.yaml, metrics.jsonl and summary.json. Optuna's TPE sampler proposes
the settings; a median pruner stops a trial whose intermediate figure (the
DQN's greedy evaluations, logged every ``eval_interval`` env steps) falls
below the median of earlier trials at the same step. At the end the study
folder holds ``trials.csv`` (one row per trial), ``best.json`` and
``best.png`` (the best value over trials).

This first version searches ``clm dqn train``; ``clm gan train`` and
``clm run``, and the Ray backend, are not built yet and say so.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path
from typing import Any

from clm.core.errors import UsageError, UserError

#: each command's default search space (rl-zoo3's DQN ranges, narrowed for CPU budgets)
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
    },
}
#: each command's headline figure (the default objective) and its direction
HEADLINES = {"dqn": ("eval_return_mean", "max")}
KINDS = ("uniform", "loguniform", "int", "categorical")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="search a training command's settings with Optuna",
                       description=__doc__.splitlines()[0] + " Each trial is a run folder under --out; the study "
                                   "resumes from its storage.")
    cmds = p.add_subparsers(dest="tune_command", metavar="COMMAND", required=True)
    for name, what in (("dqn", "clm dqn train"), ("gan", "clm gan train (not built yet)"),
                       ("run", "clm run (not built yet)")):
        c = cmds.add_parser(name, help=f"tune {what}")
        c.add_argument("--space", help="YAML file of key: {type: uniform|loguniform|int|categorical, low, high | "
                                       "choices} (default: the command's own space)")
        c.add_argument("--objective", help="summary key to optimise (default: the command's headline figure)")
        c.add_argument("--direction", choices=["max", "min"], help="default: the objective's natural direction")
        c.add_argument("--trials", type=int, required=True, help="trials to run in this session")
        c.add_argument("--storage", help="Optuna storage URL (default: sqlite:///OUT/study.db)")
        c.add_argument("--study", help="study name (default: tune-COMMAND)")
        c.add_argument("--backend", choices=["optuna", "ray"], default="optuna")
        c.add_argument("--out", help="study folder (default: runs/tune-COMMAND)")
        c.add_argument("--env", help="dqn: Gymnasium id, as clm dqn train --env")
        c.add_argument("--seed", type=int, default=0, help="the sampler's seed")
        c.add_argument("overrides", nargs="*", metavar="key=value", help="settings fixed for every trial")
        c.set_defaults(func=cmd_tune, command=name)


def load_space(path: str | None, command: str, config_cls) -> dict[str, dict[str, Any]]:
    """The search space: ``path``'s YAML or the command's default; checked
    against the config's fields (an unknown key or a bad distribution is a
    clear error naming the file and key)."""
    import dataclasses

    from clm.core.config import read_yaml

    space = DEFAULT_SPACES[command] if path is None else read_yaml(path)
    where = path or f"the default {command} space"
    if not isinstance(space, dict) or not space:
        raise UserError(f"{where}: a search space is a mapping of key: distribution", exit_code=2)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    for key, dist in space.items():
        if key not in fields:
            raise UserError(f"{where}: unknown key '{key}' (valid keys: {', '.join(sorted(fields))})", exit_code=2)
        if not isinstance(dist, dict) or dist.get("type") not in KINDS:
            raise UserError(f"{where}, key '{key}': give {{type: {'|'.join(KINDS)}, ...}}", exit_code=2)
        if dist["type"] == "categorical":
            if not isinstance(dist.get("choices"), list) or not dist["choices"]:
                raise UserError(f"{where}, key '{key}': a categorical needs a non-empty list of choices", exit_code=2)
        else:
            lo, hi = dist.get("low"), dist.get("high")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not lo < hi \
                    or (dist["type"] == "loguniform" and lo <= 0):
                raise UserError(f"{where}, key '{key}': {dist['type']} needs numbers low < high"
                                + (" and low > 0" if dist["type"] == "loguniform" else ""), exit_code=2)
    return space


def suggest(trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One trial's settings, drawn by Optuna from ``space``."""
    out = {}
    for key, d in space.items():
        kind = d["type"]
        if kind == "categorical":
            out[key] = trial.suggest_categorical(key, d["choices"])
        elif kind == "int":
            out[key] = trial.suggest_int(key, int(d["low"]), int(d["high"]))
        else:
            out[key] = trial.suggest_float(key, float(d["low"]), float(d["high"]), log=kind == "loguniform")
    return out


class PruningLogger:
    """The run's MetricLogger, which also reports each greedy evaluation to
    the trial and stops the run (optuna.TrialPruned) when the pruner says so."""

    def __init__(self, inner, trial, key: str):
        self.inner, self.trial, self.key = inner, trial, key
        self.reported: set[int] = set()

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        import optuna

        self.inner.log(step, metrics)
        if self.key in metrics and step not in self.reported:  # the final evaluation may repeat the last step
            self.reported.add(step)
            self.trial.report(float(metrics[self.key]), step)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"{self.key}={metrics[self.key]:.4g} at step {step}")

    def __getattr__(self, name):
        return getattr(self.inner, name)


def run_dqn_trial(trial, out: Path, fixed: list[str], space, objective: str) -> float:
    """One ``clm dqn train`` run with the trial's settings, in ``OUT/trial-NNNN``; its objective."""
    from clm.agents.dqn import DQN, DQNConfig
    from clm.core.config import load_config, save_config
    from clm.core.logging import MetricLogger
    from clm.core.rundir import write_summary
    from clm.core.runtime import seed_everything, set_threads

    params = suggest(trial, space)
    cfg = load_config(DQNConfig, None, fixed + [f"{k}={json.dumps(v)}" for k, v in params.items()])
    run_dir = out / f"trial-{trial.number:04d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    agent = DQN(cfg)
    logger = MetricLogger(run_dir, total_steps=cfg.total_steps, quiet=True, unit="step")
    try:
        summary = agent.learn(logger=PruningLogger(logger, trial, objective),
                              checkpoint_dir=run_dir / "checkpoints")
    finally:
        logger.close()
    write_summary(run_dir, {"env_id": cfg.env_id, **summary})
    if objective not in summary:
        raise UserError(f"--objective {objective}: clm dqn train's summary has no such key (it has "
                        f"{', '.join(sorted(summary))})", exit_code=2)
    return float(summary[objective])


def cmd_tune(args: argparse.Namespace) -> int:
    if args.command != "dqn":
        raise UsageError(f"clm tune {args.command} is not built yet: this version tunes clm dqn train")
    if args.backend == "ray":
        raise UsageError("--backend ray is not built yet: this version runs its trials on Optuna in one process")
    if args.trials < 1:
        raise UsageError("--trials must be >= 1")
    try:
        import optuna
    except ImportError:
        raise UsageError("clm tune needs Optuna: pip install -e .[tune]") from None
    from clm.agents.dqn import DQNConfig
    from clm.core.config import load_config

    space = load_space(args.space, args.command, DQNConfig)
    fixed = list(args.overrides) + ([f"env_id={json.dumps(args.env)}"] if args.env else [])
    fixed_keys = {o.split("=", 1)[0].strip() for o in fixed}
    if clash := sorted(fixed_keys & set(space)):
        raise UsageError(f"{', '.join(clash)} both fixed (key=value) and searched (the space); drop one")
    load_config(DQNConfig, None, fixed)  # a bad fixed setting fails now, not in every trial
    objective, natural = HEADLINES[args.command]
    objective = args.objective or objective
    direction = {"max": "maximize", "min": "minimize"}[args.direction or natural]
    out = Path(args.out or f"runs/tune-{args.command}")
    out.mkdir(parents=True, exist_ok=True)
    storage = args.storage or f"sqlite:///{out / 'study.db'}"
    name = args.study or f"tune-{args.command}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True,
                                    sampler=optuna.samplers.TPESampler(seed=args.seed),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1))
    except Exception as e:  # a URL that cannot be opened, a folder that does not exist
        raise UserError(f"--storage {storage}: cannot open the study ({type(e).__name__}: {e})", exit_code=2) from None
    saved = study.user_attrs.get("space")
    setup = {"command": args.command, "objective": objective, "space": space}
    if saved is not None and saved != json.loads(json.dumps(setup)):
        raise UserError(f"the study '{name}' in {storage} was made with another command, objective or space; "
                        "give a new --study name, or the same --space and --objective", exit_code=2)
    if study.direction.name.lower() != direction:
        raise UserError(f"the study '{name}' {study.direction.name.lower()}s; --direction says {direction}",
                        exit_code=2)
    study.set_user_attr("space", setup)
    study.optimize(lambda t: run_dqn_trial(t, out, fixed, space, objective), n_trials=args.trials,
                   catch=(), gc_after_trial=False)
    _write_outputs(study, out, objective)
    best = study.best_trial if any(t.state.name == "COMPLETE" for t in study.trials) else None
    done = sum(t.state.name == "COMPLETE" for t in study.trials)
    pruned = sum(t.state.name == "PRUNED" for t in study.trials)
    if best is None:
        print(f"no trial completed ({pruned} pruned); study folder {out}")
        return 1
    print(f"{len(study.trials)} trials ({done} complete, {pruned} pruned); best {objective} {best.value:.4g} "
          f"(trial {best.number}): {json.dumps(best.params)}")
    print(f"study folder: {out} (trials.csv, best.json, best.png); resume with the same --out/--storage")
    return 0


def _write_outputs(study, out: Path, objective: str) -> None:
    """trials.csv, best.json and best.png (the best value over trials), each written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clm.core.rundir import atomic_write_bytes, atomic_write_text

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
                                                     "params": best.params,
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
