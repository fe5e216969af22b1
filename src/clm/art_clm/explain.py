"""Attributions of an art run: the painter's last decision and D's realism per pixel (see clm.engine.attribution)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clm.art_clm.domain import load_art_run
from clm.core.rundir import atomic_write_bytes, atomic_write_text
from clm.domains.heatmaps import Panel, attribution_sheet, colour_scale
from clm.domains.images.art_pictures import canvas_heatmap, canvas_picture
from clm.domains.images.canvas import BLANK
from clm.engine.attribution import (
    CONTEXT_SIZE,
    MARKER,
    Attribution,
    attribute,
    attribution_record,
    captum_attr,
    greedy_decisions,
    needs_context,
    randomisation_check,
    realism_logit,
)


def explain_art_run(run_dir: str | Path, out: Path, n: int = 4, sanity: bool = True) -> dict[str, Any]:
    """The painter's last decision of ``n`` greedy episodes (over its canvas
    and G's proposals) and D's realism of the finished canvases, explained per
    pixel, into ``out``."""
    captum_attr()
    art, painter = load_art_run(run_dir)
    D, cfg = art.gan.D, art.cfg
    env = art.canvas_env(n, cfg.seed + 700)
    obs, actions = greedy_decisions(env, painter.greedy_actions, cfg.episode_steps)
    finals = np.stack([e["canvases"][-1] for e in env.pop_finished()[:n]])[:, None].astype(np.float32)
    x = torch.from_numpy(obs).float()
    base = x.clone()
    base[:, :-1] = BLANK  # canvas and proposals blank; the time plane is kept (not explained)
    q_net = painter.q.eval()
    pa = attribute(q_net, x, base, torch.from_numpy(actions))
    context = art.real_data()[:CONTEXT_SIZE].cpu() if needs_context(D) else None
    fx = torch.from_numpy(finals)
    da = attribute(realism_logit(D, context), fx, torch.full_like(fx, BLANK), None)
    items = []
    k = cfg.n_proposals
    for i in range(len(x)):
        canvas = obs[i, 0]
        s_ig = colour_scale(pa.integrated_gradients[i, :-1])
        s_sal = colour_scale(pa.saliency[i, :-1])
        top = [Panel("canvas at the decision", canvas_picture(canvas)),
               Panel(f"painter IG: action {int(actions[i])}", canvas_heatmap(canvas, pa.integrated_gradients[i, 0],
                                                                            True, s_ig), True, s_ig)]
        top += [Panel(f"painter IG: proposal {j + 1}", canvas_heatmap(obs[i, 1 + j], pa.integrated_gradients[i, 1 + j],
                                                                      True, s_ig), True, s_ig) for j in range(k)]
        top.append(Panel("painter saliency (canvas)", canvas_heatmap(canvas, pa.saliency[i, 0], False, s_sal), False,
                         s_sal))
        d_ig, d_sal = da.integrated_gradients[i, 0], da.saliency[i, 0]
        realism = 1.0 / (1.0 + np.exp(-float(da.score[i])))
        bottom = [Panel("finished canvas", canvas_picture(finals[i, 0])),
                  Panel(f"D IG: realism {realism:.2f}", canvas_heatmap(finals[i, 0], d_ig, True, colour_scale(d_ig)),
                        True, colour_scale(d_ig)),
                  Panel("D saliency", canvas_heatmap(finals[i, 0], d_sal, False, colour_scale(d_sal)), False,
                        colour_scale(d_sal))]
        name = f"canvas-{i}.png"
        atomic_write_bytes(out / name, attribution_sheet([top, bottom]))
        items.append({"picture": name, "action": int(actions[i]), "q_chosen": float(pa.score[i]),
                      "q_baseline": float(pa.baseline_score[i]),
                      "player_ig_sum": float(pa.integrated_gradients[i].sum()),
                      "player_ig_delta": float(pa.convergence_delta[i]), "realism": realism,
                      "realism_logit": float(da.score[i]), "realism_logit_baseline": float(da.baseline_score[i]),
                      "d_ig_sum": float(d_ig.sum()), "d_ig_delta": float(da.convergence_delta[i])})
    record = attribution_record("art", "the greedy painter's last decision of fresh episodes, and their finished canvases",
                     items, "the blank canvas (and blank proposals; the time plane kept)",
                     "the painter's Q-value of its greedy action", "D's realism logit")
    if sanity:
        def per_pixel(a: Attribution) -> tuple[np.ndarray, np.ndarray]:
            return a.integrated_gradients[:, :-1], a.saliency[:, :-1]  # canvas and proposals, not the time plane

        from clm.agents.dqn import q_network_args
        from clm.agents.networks import QNetwork

        torch.manual_seed(cfg.seed + 4_242)
        fresh_q = QNetwork(**q_network_args(painter.cfg, tuple(x.shape[1:]), painter.n_actions)).eval()
        _, fresh_d = art.build_gan(tuple(fx.shape[1:]), torch.device("cpu"))
        record["sanity"] = {
            "player": randomisation_check(q_net, fresh_q, lambda net: net, x, base, torch.from_numpy(actions),
                                          per_pixel),
            "discriminator": randomisation_check(D, fresh_d.eval(), lambda net: realism_logit(net, context), fx,
                                                 torch.full_like(fx, BLANK), None)}
    atomic_write_text(out / MARKER, json.dumps(record, indent=2) + "\n")
    return record


# -- text: words --------------------------------------------------------------------------------------------
