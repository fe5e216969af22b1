"""Reading a finished CLM run back for generation (``clm generate``, ``clm
serve``, the benchmarks): its config, G, D and agent, checked before use."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import torch

from clm.agents.dqn import DQN
from clm.core.checkpoint import load_checkpoint, strip_prefix
from clm.core.config import load_config, read_yaml
from clm.core.errors import UserError
from clm.core.rundir import require_run_dir
from clm.engine.loop import make_domain


def load_domain_run(run_dir, config_cls, device: str = "cpu"):
    """(the domain with the run's G and D, its agent DQN) of a finished
    ``clm run --domain NAME`` whose config is ``config_cls``. The domain's
    :meth:`~clm.engine.domain.CLMDomain.loaded` then sets what depends on G and D."""
    run_dir = require_run_dir(run_dir, "run")
    try:
        cfg = load_config(config_cls, base=read_yaml(run_dir / "config.yaml"))
    except UserError as e:
        raise UserError(f"{run_dir} is not a run of this domain, or comes from an incompatible clm version: {e}",
                        exit_code=2)
    weights, _, _ = load_checkpoint(run_dir / "checkpoints" / "clm", with_state=False)
    dev = torch.device(device)
    domain = make_domain(cfg, dev, run_dir)
    G, D = domain.build_gan(tuple(domain.real_data().shape[1:]), dev)
    try:
        G.load_state_dict(strip_prefix(weights, "gan.G_ema.") or strip_prefix(weights, "gan.G."))
        D.load_state_dict(strip_prefix(weights, "gan.D."))
    except RuntimeError as e:
        raise UserError(f"the checkpoint in {run_dir} does not match its config.yaml: {str(e).splitlines()[0]}",
                        exit_code=2)
    G.eval(), D.eval()
    gan = SimpleNamespace(sampler=G, D=D)
    agent = DQN(replace(domain.agent_config(), device=device), envs=domain.agent_env(gan))
    agent.load_training_state(strip_prefix(weights, "player."), None, {"kind": "dqn"},
                              where=str(run_dir / "checkpoints" / "clm"))
    domain.loaded(gan)
    return domain, agent
