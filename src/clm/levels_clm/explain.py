"""Attributions of a levels run: the player's chosen action and D's realism per tile (see clm.engine.attribution)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from clm.agents.dqn import q_network_args
from clm.agents.networks import QNetwork
from clm.core.errors import UserError
from clm.core.rundir import atomic_write_bytes, atomic_write_text
from clm.domains.heatmaps import Panel, attribution_sheet, colour_scale
from clm.domains.levels import levels_to_onehot, read_levels
from clm.domains.levels.render import level_heatmap, level_to_rgb
from clm.domains.levels.sim import ACTION_NAMES, N_ACTIONS
from clm.engine.attribution import (
    CONTEXT_SIZE,
    IG_STEPS,
    MARKER,
    attribute,
    attribution_record,
    captum_attr,
    cell_maps,
    needs_context,
    randomisation_check,
    realism_logit,
)
from clm.levels_clm.search import build_gan, load_run


def explain_levels(player: nn.Module, D: nn.Module, levels: list, context: torch.Tensor | None,
                   n_steps: int = IG_STEPS) -> dict[str, np.ndarray]:
    """The player's chosen action and D's realism of each level, explained
    per tile: ``player_ig``, ``player_saliency``, ``d_ig``, ``d_saliency``
    (N, H, W), the deltas, the actions, Q-values and D's logits."""
    x = torch.from_numpy(levels_to_onehot(levels)).float()
    zeros = torch.zeros_like(x)
    with torch.no_grad():
        q = player(x)
    actions = q.argmax(1)
    pa = attribute(player, x, zeros, actions, n_steps)
    da = attribute(realism_logit(D, context), x, zeros, None, n_steps)
    (p_ig, p_sal), (d_ig, d_sal) = cell_maps(pa), cell_maps(da)
    return {"x": x, "actions": actions.numpy(), "q_values": q.numpy(), "player_ig": p_ig, "player_saliency": p_sal,
            "player_delta": pa.convergence_delta, "player_score": pa.score, "player_baseline_score": pa.baseline_score,
            "d_ig": d_ig, "d_saliency": d_sal, "d_delta": da.convergence_delta, "d_logit": da.score,
            "d_baseline_logit": da.baseline_score}


def _level_sheet(level, e: dict[str, np.ndarray], i: int, action_name: str) -> bytes:

    ps, ds = colour_scale(e["player_ig"][i]), colour_scale(e["d_ig"][i])
    pss, dss = colour_scale(e["player_saliency"][i]), colour_scale(e["d_saliency"][i])
    realism = 1.0 / (1.0 + np.exp(-float(e["d_logit"][i])))
    row = [Panel(f"{level.name or 'level'}", level_to_rgb(level, cell=24)),
           Panel(f"player IG: Q({action_name})", level_heatmap(level, e["player_ig"][i], True, ps), True, ps),
           Panel("player saliency", level_heatmap(level, e["player_saliency"][i], False, pss), False, pss),
           Panel(f"D IG: realism {realism:.2f}", level_heatmap(level, e["d_ig"][i], True, ds), True, ds),
           Panel("D saliency", level_heatmap(level, e["d_saliency"][i], False, dss), False, dss)]
    return attribution_sheet([row])


def _levels_sanity(run, x: torch.Tensor, actions: np.ndarray, context: torch.Tensor | None) -> dict[str, Any]:
    torch.manual_seed(run.cfg.seed + 4_242)  # a random initialisation of each architecture, fixed
    fresh_q = QNetwork(**q_network_args(run.cfg.player, tuple(x.shape[1:]), N_ACTIONS))
    _, fresh_d = build_gan(run.cfg, tuple(x.shape[1:]), "cpu")
    fresh_q.eval(), fresh_d.eval()
    zeros = torch.zeros_like(x)
    return {"player": randomisation_check(run.player, fresh_q, lambda net: net, x, zeros, torch.from_numpy(actions)),
            "discriminator": randomisation_check(run.D, fresh_d, lambda net: realism_logit(net, context), x, zeros,
                                                 None)}


def explain_level_run(run_dir: str | Path, out: Path, levels_file: str | Path | None = None, n: int = 4,
                      sanity: bool = True) -> dict[str, Any]:
    """Explain a levels run's player and D on ``n`` levels (the archive's,
    else held-out real ones; or the levels of ``levels_file``) into ``out``
    (a fresh folder): one PNG per level and ``attributions.json``."""
    captum_attr()  # fail before loading anything when Captum is missing
    run = load_run(run_dir)
    if run.player is None:
        raise UserError(f"{run_dir} holds no player network (checkpoints/clm has no player weights): clm explain "
                        f"needs a levels run that `clm run` wrote", exit_code=2)
    if levels_file is not None:
        levels, source = list(read_levels(levels_file))[:n], f"file {levels_file}"
        if not levels:
            raise UserError(f"{levels_file} holds no levels", exit_code=2)
        shape = run.corpus[0].shape
        if any(lv.shape != shape for lv in levels):
            bad = next(lv for lv in levels if lv.shape != shape)
            raise UserError(f"{levels_file}: level {bad.name!r} is {bad.shape[0]}x{bad.shape[1]}, but the run's "
                            f"networks take {shape[0]}x{shape[1]} levels", exit_code=2)
    elif run.archive_levels:
        levels, source = run.archive_levels[:n], "the run's creative archive (levels/archive.txt)"
    else:
        levels, source = run.heldout[:n], "held-out real levels (the run's archive is empty)"
    context = (torch.from_numpy(levels_to_onehot(run.corpus[:CONTEXT_SIZE])).float() if needs_context(run.D)
               else None)
    e = explain_levels(run.player, run.D, levels, context)
    items = []
    for i, lv in enumerate(levels):
        name = f"level-{i}.png"
        action = ACTION_NAMES[int(e["actions"][i])]
        atomic_write_bytes(out / name, _level_sheet(lv, e, i, action))
        items.append({"picture": name, "name": lv.name, "level": lv.to_text(), "action": action,
                      "q_values": [round(float(v), 4) for v in e["q_values"][i]],
                      "q_chosen": float(e["player_score"][i]), "q_baseline": float(e["player_baseline_score"][i]),
                      "player_ig_sum": float(e["player_ig"][i].sum()), "player_ig_delta": float(e["player_delta"][i]),
                      "realism": float(1.0 / (1.0 + np.exp(-float(e["d_logit"][i])))),
                      "realism_logit": float(e["d_logit"][i]), "realism_logit_baseline": float(e["d_baseline_logit"][i]),
                      "d_ig_sum": float(e["d_ig"][i].sum()), "d_ig_delta": float(e["d_delta"][i])})
    record = attribution_record("levels", source, items, "the all-zero grid (no tile anywhere)",
                     "the player's Q-value of its greedy action, Q(s, a*)", "D's realism logit"
                     + (f", each level scored among {CONTEXT_SIZE} corpus levels (D's minibatch-std feature)"
                        if context is not None else ""))
    if sanity:
        record["sanity"] = _levels_sanity(run, e["x"], e["actions"], context)
    atomic_write_text(out / MARKER, json.dumps(record, indent=2) + "\n")
    return record
