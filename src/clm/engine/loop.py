"""The Creative Learning Model: the seed's loop, steps 1 to 6, on any domain.

1. Initialise the agent's Q-network (with its target network), G and D, and
   the domain's own parts (:meth:`CLMDomain.attach`; on Sokoban the designer
   DQN); the agent may start from demonstrations (:meth:`CLMDomain.start`).
2. The agent acts in its environment and collects experience; G generates
   (:meth:`CLMDomain.generate`: decoded, judged, the creative ones archived).
3. D trains on real data (plus the fed-back creative archive) against G's.
4. The agent improves its policy from its experience (DQN updates).
5. G updates from D's feedback plus the agent's term (:meth:`CLMDomain.gan_round`);
   agent decisions pick G's outputs (:meth:`CLMDomain.search`), and G's
   data joins the agent's training data (:meth:`CLMDomain.feed_agent`).
6. Repeat for ``rounds`` rounds, each network with its configured share
   (``gan_steps`` and ``player_steps`` per round; the domain's own agents,
   such as Sokoban's designer, take theirs in :meth:`CLMDomain.search`).

Under torchrun the player's learner is data-parallel (``player.ddp_data``,
see :class:`clm.agents.dqn.DQNConfig`): every gradient of the player is
averaged over the ranks. Everything else (G and D, the designer, the judge,
the archive, the evaluation) runs the same on every rank from the same
seeds, so the ranks hold the same networks; only rank 0 writes ``run_dir``.

What is Sokoban or art lives in the domain (:mod:`clm.engine.domain`),
found through the registry (:mod:`clm.engine.registry`); this file knows
neither.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clm.agents.dqn import DQN
from clm.agents.training import train_round
from clm.core import distributed
from clm.core.checkpoint import load_checkpoint, save_checkpoint, strip_prefix
from clm.core.config import to_dict
from clm.core.errors import UserError
from clm.core.logging import MetricLogger, NullLogger
from clm.core.rundir import write_summary
from clm.core.runtime import DeferredInterrupt, rng_state, seed_everything, set_rng_state, set_threads
from clm.gan.steps import AdversarialPair
from clm.engine import registry
from clm.engine.domain import CLMDomain
from clm.engine.parts import PartTimer


class CLMStopped(UserError):
    """The run stopped early (a diverging GAN, a stuck agent); the report says why."""

    def __init__(self, message: str, status: str):
        super().__init__(message)
        self.status = status  # the summary's status: gan_diverged | player_stuck


def make_domain(cfg, device: torch.device, run_dir: Path | None = None) -> CLMDomain:
    """The domain ``cfg`` is for: the registered domain whose config class it is."""
    return registry.spec_for_config(cfg).domain_cls(cfg, device, run_dir)


def run_clm(cfg, run_dir: Path, resume: bool = False, quiet: bool = False,
            domain: CLMDomain | None = None, listener=None) -> dict[str, Any]:
    """Run the CLM that ``cfg`` describes into ``run_dir``, on ``domain``
    (default: the one ``cfg``'s type is for, see :func:`make_domain`).
    ``listener(round, metrics)`` sees each logged row (see
    :class:`~clm.core.logging.MetricLogger`)."""
    run_dir = Path(run_dir) if run_dir is not None else None
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    device = distributed.device_for(cfg.device)  # a plain run: resolve_device; torchrun: cuda:LOCAL_RANK or cpu
    main = distributed.is_main()  # under torchrun only rank 0 writes run_dir (the others may get None)
    rng = np.random.default_rng(cfg.seed)
    timer = PartTimer()
    t_start = time.perf_counter()

    # -- step 1: data, G and D, the agent and the domain's own parts ----------------------------
    domain = domain if domain is not None else make_domain(cfg, device, run_dir if main else None)
    real_x = domain.real_data()
    gcfg = cfg.gan
    G, D = domain.build_gan(tuple(real_x.shape[1:]), device)
    gan = AdversarialPair(G, D, gcfg, amp=gcfg.amp)
    agent = DQN(domain.agent_config(), envs=domain.agent_env(gan), data_parallel=distributed.active())
    domain.attach(gan, agent, device)
    # the headline figure stays None until the agent is first evaluated: a run stopped
    # before that says "not evaluated", not 0.
    state: dict[str, Any] = {"round": 0, "evaluation": {}, "train_solve_rate": 0.0}
    ckpt = run_dir / "checkpoints" if run_dir is not None else None

    def gan_updates(n: int, rnd: int) -> dict[str, float]:
        """``n`` rounds of D steps and one G step; the figures of the last."""
        extra_loss, row = domain.gan_round(agent, real_x)
        agent.q.requires_grad_(False)  # the agent's term trains G only
        for _ in range(n):
            for _ in range(gcfg.d_steps):
                real = domain.d_real_batch(real_x, gcfg.batch_size)
                gd = gan.d_step(real, None, domain.g_condition(gcfg.batch_size, device),
                                domain.other_fakes(gcfg.batch_size))
            gg = gan.g_step(gcfg.batch_size, device, domain.g_condition(gcfg.batch_size, device),
                            extra_loss=extra_loss, real_for_features=real if gcfg.feature_matching > 0 else None)
            if (why := gan.diverged({**gd, **gg})) is not None:
                raise CLMStopped(f"the GAN diverged in round {rnd}: {why}", "gan_diverged")
        agent.q.requires_grad_(True)
        if n:
            row.update(d_loss=gd["d_loss"], d_accuracy=gd["d_accuracy"], g_loss=gg["g_loss"])
            if "g_extra_loss" in gg:
                row["g_agent_loss"] = gg["g_extra_loss"]
        return row

    exact_resume = None  # None: a fresh run; after a resume, whether every state read back exactly
    first_row: dict[str, float] = {}
    if resume:
        state, exact_resume = _load(ckpt, gan, agent, domain, timer, rng)
    else:
        if cfg.gan_warmup_steps:  # G learns the data before the agent's first round
            with timer.part("gan"):
                warm = gan_updates(cfg.gan_warmup_steps, 0)
            first_row.update({f"warmup_{k}": v for k, v in warm.items() if k in ("d_loss", "g_loss")})
        first_row.update(domain.start(agent, timer))
        state["evaluation"] = {k: v for k, v in first_row.items() if k in domain.evaluation_keys}
    logger = (MetricLogger(run_dir, total_steps=cfg.rounds, quiet=quiet, initial_step=state["round"], unit="round",
                           wandb=cfg.wandb, config=to_dict(cfg), resume=resume, listener=listener)
              if main else NullLogger())
    if first_row:
        logger.log(0, first_row)
    status, message = "ok", ""
    stop = DeferredInterrupt()  # Ctrl-C ends the round first, so that its checkpoint is whole
    stop_now = False  # whether the ranks agreed to stop at a round's end
    try:
        stop.__enter__()
        for rnd in range(state["round"], cfg.rounds):
            row: dict[str, float] = {}
            # -- steps 2 and 4: the agent acts and learns from its experience
            with timer.part("player"):
                played = train_round(agent, cfg.player_steps)
                # over every rank's episodes (data-parallel ranks play their own): the stuck check
                # must take the same decision on every rank
                solved, n_played = distributed.sum_counts(played.successes, played.episodes)
                state["train_solve_rate"] = solved / max(n_played, 1)
                if domain.success_flag:
                    row["player_train_solve_rate"] = state["train_solve_rate"]
                if played.mean_return is not None:
                    row["player_return"] = played.mean_return
                if played.loss is not None:
                    row["player_loss"] = played.loss
            # -- step 2: G generates; the domain judges and archives
            with timer.part("generation"):
                row.update(domain.generate(gan, agent, rng, rnd))
            # -- steps 3 and 5: D on real (+ fed-back) data against G; G on D's feedback + the agent's term
            with timer.part("gan"):
                row.update(gan_updates(cfg.gan_steps, rnd))
            # -- agent decisions -> data generation; step 5 (cont.): G's data trains the agent
            row.update(domain.search(gan, rnd, timer))
            row.update(domain.feed_agent(agent, timer))
            out_of_time = cfg.max_seconds > 0 and time.perf_counter() - t_start >= cfg.max_seconds
            if distributed.active():  # one decision for every rank (their clocks differ a little)
                out_of_time = distributed.sum_counts(int(out_of_time))[0] > 0
            if (rnd + 1) % cfg.eval_every == 0 or rnd + 1 == cfg.rounds or out_of_time:
                with timer.part("evaluation"):
                    state["evaluation"] = domain.evaluate(agent)
                row.update(state["evaluation"])
            row.update(**domain.round_figures(), **timer.shares())
            logger.log(rnd + 1, row)
            headline = next(iter(state["evaluation"].values()), None)
            logger.progress(rnd + 1, score=headline, **domain.progress())
            state["round"] = rnd + 1
            if domain.success_flag and (why := domain.stuck(rnd + 1, state["train_solve_rate"], headline)):
                raise CLMStopped(why, "player_stuck")
            if main:
                _save(ckpt, cfg, gan, agent, domain, timer, rng, state)
            stop_now = stop.requested
            if distributed.active():  # Ctrl-C reaches the ranks at different moments: stop together
                stop_now = distributed.sum_counts(int(stop.requested))[0] > 0
            if stop_now:
                raise KeyboardInterrupt
            if out_of_time and rnd + 1 < cfg.rounds:
                message = (f"stopped at the time budget (max_seconds={cfg.max_seconds:g}) after round {rnd + 1} "
                           f"of {cfg.rounds}; continue with --resume {run_dir}")
                break
    except CLMStopped as e:
        status = e.status
        message = str(e)
    except KeyboardInterrupt:
        status = "interrupted"
        message = (f"interrupted after round {state['round']} (its checkpoint is whole); continue with --resume {run_dir}"
                   if stop_now else f"interrupted in round {state['round'] + 1}; the last checkpoint is of round "
                   f"{state['round']}; continue with --resume {run_dir}")
    finally:
        stop.__exit__()
        logger.close()

    # -- outputs: the domain's artefacts and figures, the summary (the report is the caller's) ---
    figures = domain.finish(run_dir, gan, status) if main else {}
    evaluation = state["evaluation"] or {k: None for k in domain.evaluation_keys}
    summary = {
        "status": status, "message": message, "domain": domain.name, "rounds": state["round"],
        **figures, **evaluation,
        **({"player_train_solve_rate": state["train_solve_rate"]} if domain.success_flag else {}),
        "player_env_steps": agent.env_steps,
        "exact_resume": exact_resume,
        "wall_seconds": time.perf_counter() - t_start,
        **timer.shares(),
    }
    if agent.world > 1:
        summary["world_size"] = agent.world
    if main:
        write_summary(run_dir, summary)
    return summary


# -- checkpoints: one per round, all or nothing ------------------------------------------------
def _save(ckpt: Path, cfg, gan, agent, domain, timer, rng, state) -> None:
    """Every network, optimiser, buffer, counter and RNG of the run in one
    folder (``checkpoints/clm``): G and D, the agent, the domain's parts."""
    weights = {f"gan.{k}": v for k, v in gan.weights().items()}
    aw, ast, ameta = agent.training_state()
    weights.update({f"player.{k}": v for k, v in aw.items()})
    dw, dst = domain.checkpoint()
    weights.update(dw)
    st = {"gan": gan.state_dict(), "timer": dict(timer.seconds),
          "rng": rng.bit_generator.state, "global_rng": rng_state(), "state": state,
          "player": ast, "player_meta": ameta, "domain": dst}
    exact = bool(ameta["exact_resume"] and dst.get("exact", True))
    save_checkpoint(ckpt / "clm", weights, st, {"kind": "clm", "domain": domain.name, "round": state["round"],
                                               "exact_resume": exact, "config": to_dict(cfg)})


def _load(ckpt: Path, gan, agent, domain, timer, rng) -> tuple[dict, bool]:
    """Restore :func:`_save`'s checkpoint; returns the loop's state and whether the resume is exact."""
    where = str(ckpt / "clm")
    weights, st, meta = load_checkpoint(ckpt / "clm")
    if meta.get("kind") != "clm" or meta.get("domain", "levels") != domain.name:
        raise UserError(f"{where} is not a CLM checkpoint of the {domain.name} domain (kind: {meta.get('kind')}, "
                        f"domain: {meta.get('domain')})", exit_code=2)
    gan.load_weights(strip_prefix(weights, "gan."))
    gan.load_state_dict(st["gan"])
    timer.seconds.update(st["timer"])
    rng.bit_generator.state = st["rng"]
    agent.load_training_state(strip_prefix(weights, "player."), st["player"], st["player_meta"], where=where)
    exact = bool(agent.exact_resume) and domain.restore(weights, st["domain"], where)
    set_rng_state(st["global_rng"])  # last: loading the networks draws nothing, but keep the order obvious
    return dict(st["state"]), exact
