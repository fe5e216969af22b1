"""``clm tune``: a hyperparameter search over a training command's config, on Optuna or Ray Tune.

``clm tune dqn|gan|run`` searches ``clm dqn train``, ``clm gan train`` or
``clm run``. A study is a folder (``--out``) and an Optuna storage
(``--storage``, by default ``sqlite:///OUT/study.db``), so a stopped study
resumes where it stopped. Each trial is a normal run folder
(``OUT/trial-0007``, or ``OUT/trial-0007/seed-N`` with ``--seeds-per-trial``)
with its config.yaml, metrics.jsonl and summary.json. Optuna's TPE sampler
proposes the settings; a median pruner stops a trial whose intermediate
figure (the objective as the run logs it on the way: the DQN's greedy
evaluations, the CLM's held-out evaluations) falls below the median of
earlier trials at the same step. ``clm gan train`` logs no quality figure on
the way, so its trials are never pruned. At the end the study folder holds
``trials.csv`` (one row per trial), ``best.json`` and ``best.png`` (the best
value over trials).

``--backend ray`` runs the same study (the same Optuna storage, sampler,
pruner and space) with its trials in parallel on Ray Tune: a local Ray
instance of ``--workers`` CPUs, or the cluster at ``--ray-address``. The
driver asks the study for each trial's settings and feeds the pruner, so both
backends leave the same study folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any, Callable

from clm.cli.tune_checks import check_env, check_objective, check_ray_address, check_storage
from clm.cli.tune_space import DEFAULT_SPACES, KINDS, settings_of, suggest, write_outputs
from clm.core.errors import UsageError, UserError
from clm.engine import registry




@dataclasses.dataclass(frozen=True)
class Tunable:
    """What ``clm tune`` needs to know of one training command."""

    command: str  # dqn | gan | run
    space_name: str  # its key in DEFAULT_SPACES ("run": the domain's own, from the registry)
    objective: str  # its headline figure (the default objective)
    direction: str  # max | min: the headline's natural direction
    length_key: str  # the config key of the run's length (the pruner's steps of seed i are offset by i x it)
    fixed: tuple[str, ...]  # key=value settings of every trial (the user's, and --env/--data as keys)
    domain: str = registry.DEFAULT_DOMAIN  # clm run's domain


def tunable(args: argparse.Namespace) -> Tunable:
    """The command being tuned, its default objective and its fixed settings."""
    fixed = list(args.overrides)
    if args.env:
        if args.command != "dqn":
            raise UsageError(f"--env is an option of clm tune dqn, not clm tune {args.command}")
        fixed.append(f"env_id={json.dumps(args.env)}")
    if args.data:
        if args.command == "dqn":
            raise UsageError("--data is an option of clm tune gan|run; clm tune dqn takes --env")
        fixed.append(f"data={json.dumps(args.data)}")  # quoted: a path is never read as YAML
    if args.domain and args.command != "run":
        raise UsageError(f"--domain is an option of clm tune run, not clm tune {args.command}")
    if args.command == "dqn":
        return Tunable("dqn", "dqn", "eval_return_mean", "max", "total_steps", tuple(fixed))
    if args.command == "gan":
        from clm.gan.train import GanConfig

        levels = str(_fixed_value(fixed, "data", GanConfig.data)).startswith("levels")
        return Tunable("gan", "gan", "tile_kl" if levels else "fd_clf_ratio", "min", "steps", tuple(fixed))
    spec = registry.get(args.domain or registry.DEFAULT_DOMAIN)
    return Tunable("run", "run", spec.headline, "max", "rounds", tuple(fixed + ["report=false"]), spec.name)


def _fixed_value(fixed: list[str], key: str, default: Any) -> Any:
    from clm.core.config import parse_overrides

    return parse_overrides([o for o in fixed if o.split("=", 1)[0].strip() == key]).get(key, default)


def _config_class(t: Tunable) -> type:
    if t.command == "dqn":
        from clm.agents.dqn import DQNConfig

        return DQNConfig
    if t.command == "gan":
        from clm.gan.train import GanConfig

        return GanConfig
    return registry.get(t.domain).config_cls


def trial_config(t: Tunable, settings: list[str]):
    """The config of one trial: the command's defaults (clm run: its preset's, when ``preset=`` is fixed)
    < the fixed settings < ``settings``."""
    from clm.core.config import load_config

    base = None
    if t.command == "run" and (presets := registry.get(t.domain).presets):
        preset = _fixed_value(list(t.fixed), "preset", None)
        if preset is not None:
            if preset not in presets:
                raise UsageError(f"unknown preset {preset!r}: use one of {', '.join(presets)}")
            base = {**presets[preset], "preset": preset}
    return load_config(_config_class(t), None, list(t.fixed) + settings, base=base)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="search a training command's settings with Optuna (or Ray Tune)",
                       description=__doc__.splitlines()[0] + " Each trial is a run folder under --out; the study "
                                   "resumes from its storage.")
    cmds = p.add_subparsers(dest="tune_command", metavar="COMMAND", required=True)
    for name, what in (("dqn", "clm dqn train"), ("gan", "clm gan train"), ("run", "clm run")):
        c = cmds.add_parser(name, help=f"tune {what}")
        c.add_argument("--space", help="YAML file of key: {type: uniform|loguniform|int|categorical, low, high | "
                                       "choices} (default: the command's own space)")
        c.add_argument("--objective", help="summary key to optimise (default: the command's headline figure)")
        c.add_argument("--direction", choices=["max", "min"], help="default: the objective's natural direction")
        c.add_argument("--trials", type=int, required=True, help="trials to run in this session")
        c.add_argument("--seeds-per-trial", type=int, default=1, metavar="K",
                       help="each trial trains K seeds (seed, seed+1, ...) and scores their mean (default 1)")
        c.add_argument("--storage", help="Optuna storage URL (default: sqlite:///OUT/study.db)")
        c.add_argument("--study", help="study name (default: tune-COMMAND)")
        c.add_argument("--backend", choices=["optuna", "ray"], default="optuna",
                       help="optuna: trials one after another in this process; ray: trials in parallel on Ray Tune")
        c.add_argument("--workers", type=int, default=2, help="ray: trials at once (a local instance gets this many CPUs)")
        c.add_argument("--ray-address", help="ray: the address of a running Ray cluster (default: start a local one)")
        c.add_argument("--ray-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="ray: seconds to wait for --ray-address to answer before giving up (default 30)")
        c.add_argument("--out", help="study folder (default: runs/tune-COMMAND)")
        c.add_argument("--env", help="dqn: Gymnasium id, as clm dqn train --env")
        c.add_argument("--data", help="gan, run: the data, as clm gan train --data and clm run --data")
        c.add_argument("--domain", choices=registry.names(), help=f"run: the CLM's domain (default {registry.DEFAULT_DOMAIN})")
        c.add_argument("--seed", type=int, default=0, help="the sampler's seed")
        c.add_argument("overrides", nargs="*", metavar="key=value", help="settings fixed for every trial")
        c.set_defaults(func=cmd_tune, command=name)


def load_space(path: str | None, t: Tunable) -> dict[str, dict[str, Any]]:
    """The search space: ``path``'s YAML or the command's default; each key
    and each end of its range is checked by building a config with it (an
    unknown key, a bad distribution or a value the config rejects is a clear
    error naming the file and key)."""
    from clm.core.config import read_yaml

    default = registry.get(t.domain).tune_space if t.command == "run" else DEFAULT_SPACES[t.space_name]
    space = default if path is None else read_yaml(path)
    where = path or f"the default {t.command} space"
    if not isinstance(space, dict) or not space:
        raise UserError(f"{where}: a search space is a mapping of key: distribution", exit_code=2)
    for key, dist in space.items():
        if not isinstance(dist, dict) or dist.get("type") not in KINDS:
            raise UserError(f"{where}, key '{key}': give {{type: {'|'.join(KINDS)}, ...}}", exit_code=2)
        if dist["type"] == "categorical":
            if not isinstance(dist.get("choices"), list) or not dist["choices"]:
                raise UserError(f"{where}, key '{key}': a categorical needs a non-empty list of choices", exit_code=2)
            values = dist["choices"]
        else:
            lo, hi = dist.get("low"), dist.get("high")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not lo < hi \
                    or (dist["type"] == "loguniform" and lo <= 0):
                raise UserError(f"{where}, key '{key}': {dist['type']} needs numbers low < high"
                                + (" and low > 0" if dist["type"] == "loguniform" else ""), exit_code=2)
            values = [lo, hi]
        for v in values:  # the config's own checks: an unknown (nested) key, a wrong type, a value out of range
            try:
                trial_config(t, [f"{key}={json.dumps(v)}"])
            except UserError as e:
                raise UserError(f"{where}, key '{key}' = {v!r}: {e}", exit_code=2) from None
    return space


@dataclasses.dataclass(frozen=True)
class TrialPlan:
    """Everything one trial needs (plain data, so that Ray can ship it to a worker)."""

    tunable: Tunable
    out: str  # the study folder (absolute)
    objective: str
    seeds_per_trial: int


def run_trial(plan: TrialPlan, number: int, params: dict[str, Any],
              report: Callable[[int, float], None]) -> float:
    """Train trial ``number`` with ``params`` for each of its seeds, each in
    its own run folder; ``report(step, value)`` gets the objective whenever a
    run logs it on the way (it raises to stop the trial). The mean objective."""
    import math

    t = plan.tunable
    settings = [f"{k}={json.dumps(v)}" for k, v in params.items()]
    cfg = trial_config(t, settings)
    first_seed, length = int(cfg.seed), int(getattr(cfg, t.length_key))
    folder = Path(plan.out) / f"trial-{number:04d}"
    values = []
    for i in range(plan.seeds_per_trial):
        run_dir = folder if plan.seeds_per_trial == 1 else folder / f"seed-{first_seed + i}"
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg = trial_config(t, settings + [f"seed={first_seed + i}"])

        def listener(step: int, metrics: dict[str, Any], offset: int = i * (length + 1)) -> None:
            value = metrics.get(plan.objective)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                report(offset + step, float(value))

        summary = _train(t, cfg, run_dir, listener)
        value = summary.get(plan.objective)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise UserError(f"--objective {plan.objective}: clm {t.command}'s summary has no number under this key "
                            f"(it has {', '.join(sorted(summary))})", exit_code=2)
        values.append(float(value))
    return sum(values) / len(values)


def _train(t: Tunable, cfg, run_dir: Path, listener) -> dict[str, Any]:
    """One run of the tuned command, as the command itself makes it, quietly."""
    from clm.core.config import save_config

    save_config(cfg, run_dir / "config.yaml")
    if t.command == "dqn":
        from clm.agents.training import train_dqn

        return train_dqn(cfg, run_dir, quiet=True, listener=listener)
    if t.command == "gan":
        from clm.gan.train import train
        from clm.gan_adapters.domains import gan_domain

        return train(cfg, run_dir, gan_domain(cfg.data), quiet=True, listener=listener)
    from clm.engine.loop import run_clm

    summary = run_clm(cfg, run_dir, quiet=True, listener=listener)
    if summary["status"] != "ok":  # a diverged GAN or a stuck player: the trial failed, the study goes on
        raise RuntimeError(f"the run stopped early ({summary['status']}): {summary['message']}")
    return summary


def cmd_tune(args: argparse.Namespace) -> int:
    if args.trials < 1:
        raise UsageError("--trials must be >= 1")
    if args.seeds_per_trial < 1:
        raise UsageError("--seeds-per-trial must be >= 1")
    if args.workers < 1:
        raise UsageError("--workers must be >= 1")
    if args.backend != "ray" and args.ray_address:
        raise UsageError("--ray-address is for --backend ray")
    try:
        import optuna
    except ImportError:
        raise UsageError("clm tune needs Optuna: pip install -e .[tune]") from None
    if args.backend == "ray":
        try:
            import ray  # noqa: F401
            from ray import tune  # noqa: F401
        except ImportError:
            raise UsageError("--backend ray needs Ray Tune: pip install -e .[tune] (or pip install 'ray[tune]')") from None
    if args.ray_timeout <= 0:
        raise UsageError("--ray-timeout must be > 0 seconds")
    t = tunable(args)
    space = load_space(args.space, t)
    fixed_keys = {o.split("=", 1)[0].strip() for o in t.fixed}
    if clash := sorted(fixed_keys & set(space)):
        if args.space:
            raise UsageError(f"{', '.join(clash)} both fixed (key=value, --env, --data) and searched ({args.space}); "
                             "drop one")
        # the default space: a fixed key is one the user wants fixed, so it leaves the search
        space = {k: v for k, v in space.items() if k not in fixed_keys}
        if not space:
            raise UsageError("every key of the default space is fixed: nothing is left to search; give --space")
    # everything a user can get wrong is checked before a folder, a database or a trial is made
    cfg = trial_config(t, [])  # a bad fixed setting fails now, not in every trial
    if t.command == "dqn":
        check_env(cfg.env_id)
    objective = args.objective or t.objective
    check_objective(objective, t)
    direction = {"max": "maximize", "min": "minimize"}[args.direction or t.direction]
    out = Path(args.out or f"runs/tune-{args.command}").resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder; give a folder")
    storage = args.storage or f"sqlite:///{out / 'study.db'}"
    check_storage(storage, default=args.storage is None)
    if args.backend == "ray" and args.ray_address:
        check_ray_address(args.ray_address, args.ray_timeout)
    name = args.study or f"tune-{args.command}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True,
                                    sampler=optuna.samplers.TPESampler(seed=args.seed),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1))
    except Exception as e:  # a server that does not answer, a database that is not one
        if made:
            shutil.rmtree(out, ignore_errors=True)  # nothing of this study exists yet: leave nothing behind
        if isinstance(e, OSError):
            raise UserError(f"cannot create the study folder {out}: {e.strerror}; choose another --out",
                            exit_code=2) from None
        raise UserError(f"--storage {storage}: cannot open the study ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200]})", exit_code=2) from None
    saved = study.user_attrs.get("space")
    setup = {"command": args.command, "domain": t.domain, "objective": objective, "space": space,
             "seeds_per_trial": args.seeds_per_trial}
    if saved is not None and saved != json.loads(json.dumps(setup)):
        raise UserError(f"the study '{name}' in {storage} was made with another command, objective, space or "
                        "--seeds-per-trial; give a new --study name, or the same settings", exit_code=2)
    if study.direction.name.lower() != direction:
        raise UserError(f"the study '{name}' {study.direction.name.lower()}s; --direction says {direction}",
                        exit_code=2)
    study.set_user_attr("space", setup)
    plan = TrialPlan(t, str(out), objective, args.seeds_per_trial)
    if args.backend == "ray":
        try:
            run_on_ray(study, plan, space, args.trials, args.workers, args.ray_address, args.ray_timeout)
        except BaseException:
            if made and not any(out.glob("trial-*")):  # failed before its first trial: leave nothing behind
                shutil.rmtree(out, ignore_errors=True)
            raise
    else:
        study.optimize(lambda trial: run_trial(plan, trial.number, suggest(trial, space), _pruning_report(trial)),
                       n_trials=args.trials, catch=(RuntimeError,), gc_after_trial=False)
    write_outputs(study, out, objective)
    best = study.best_trial if any(x.state.name == "COMPLETE" for x in study.trials) else None
    done = sum(x.state.name == "COMPLETE" for x in study.trials)
    pruned = sum(x.state.name == "PRUNED" for x in study.trials)
    failed = sum(x.state.name == "FAIL" for x in study.trials)
    if best is None:
        print(f"no trial completed ({pruned} pruned, {failed} failed); study folder {out}")
        return 1
    print(f"{len(study.trials)} trials ({done} complete, {pruned} pruned, {failed} failed); best {objective} "
          f"{best.value:.4g} (trial {best.number}): {json.dumps(settings_of(best.params, space))}")
    print(f"study folder: {out} (trials.csv, best.json, best.png); resume with the same --out/--storage")
    return 0


def _pruning_report(trial) -> Callable[[int, float], None]:
    """The Optuna backend's report: the value goes to the trial, and the pruner may stop it."""

    seen: set[int] = set()

    def report(step: int, value: float) -> None:
        import optuna

        if step in seen:
            return  # the final evaluation may repeat the last step's
        seen.add(step)
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"{value:.4g} at step {step}")

    return report


def run_on_ray(study, plan: TrialPlan, space, n_trials: int, workers: int, address: str | None,
               timeout: float = 30.0) -> None:
    """``n_trials`` trials of ``study`` on Ray Tune, ``workers`` at once.

    The driver keeps the study: a Ray Tune searcher asks it for each trial's
    settings and tells it the result, and a scheduler reports each
    intermediate value to it and stops the trials its pruner prunes. The
    trials themselves run :func:`run_trial` in Ray's workers, so a cluster
    runs them on many machines (the run folders then land on each worker's
    disk at the same path: give --out on a shared file system)."""
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler
    from ray.tune.search import Searcher

    asked: dict[str, Any] = {}  # Ray's trial id -> the study's trial (shared by the searcher and the scheduler)
    reported: dict[str, set[int]] = {}  # Ray's trial id -> the steps reported to the study

    class StudySearcher(Searcher):
        def save(self, checkpoint_path: str) -> None:  # the study's storage holds the search's state
            pass

        def restore(self, checkpoint_path: str) -> None:
            pass

        def suggest(self, trial_id: str):
            trial = study.ask()
            asked[trial_id] = trial
            return {"number": trial.number, "params": suggest(trial, space)}

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            trial = asked.pop(trial_id, None)
            if trial is None:  # pruned: the scheduler has told the study
                return
            if error or not result or not result.get("final"):
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, result["value"])

    class StudyPruner(FIFOScheduler):
        def on_trial_result(self, tune_controller, trial, result: dict) -> str:
            st = asked.get(trial.trial_id)
            if st is None or result.get("final") or "step" not in result:
                return TrialScheduler.CONTINUE
            seen = reported.setdefault(trial.trial_id, set())
            if result["step"] not in seen:  # the final evaluation may repeat the last step's
                seen.add(result["step"])
                st.report(result["value"], result["step"])
                if st.should_prune():
                    asked.pop(trial.trial_id)
                    study.tell(st, state=optuna.trial.TrialState.PRUNED)
                    return TrialScheduler.STOP
            return TrialScheduler.CONTINUE

    def trainable(config: dict) -> None:
        from ray import tune as ray_tune

        def report(step: int, value: float) -> None:
            ray_tune.report({"step": step, "value": value})

        value = run_trial(plan, config["number"], config["params"], report)
        ray_tune.report({"value": value, "final": 1})

    mode = "max" if study.direction.name == "MAXIMIZE" else "min"
    started = not ray.is_initialized()
    if started:
        if address:
            check_ray_address(address, timeout)
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            tune_config=tune.TuneConfig(search_alg=StudySearcher(metric="value", mode=mode),
                                        scheduler=StudyPruner(), num_samples=n_trials, max_concurrent_trials=workers,
                                        metric="value", mode=mode),
            run_config=tune.RunConfig(name=study.study_name, storage_path=str(Path(plan.out) / "ray"), verbose=0))
        tuner.fit()
    finally:
        if started:
            ray.shutdown()


