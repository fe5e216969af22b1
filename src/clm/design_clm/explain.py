"""Attributions of a design run: the editor's last decision and D's realism per element (see clm.engine.attribution)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clm.agents.dqn import q_network_args
from clm.agents.networks import QNetwork
from clm.core.rundir import atomic_write_bytes, atomic_write_text
from clm.design_clm.config import DesignConfig
from clm.domains.heatmaps import Panel, attribution_sheet, colour_scale
from clm.domains.images.art_pictures import canvas_heatmap, canvas_picture
from clm.engine.attribution import (MARKER, Attribution, attribute, attribution_record, captum_attr,
                                    greedy_decisions, randomisation_check, realism_logit)
from clm.engine.runs import load_domain_run


def _picture(design: np.ndarray) -> np.ndarray:
    return canvas_picture(1.0 - 2.0 * np.asarray(design, np.float64))  # material black, void white


def _heat(design: np.ndarray, scores: np.ndarray, signed: bool, scale: float) -> np.ndarray:
    return canvas_heatmap(1.0 - 2.0 * np.asarray(design, np.float64), scores, signed, scale)


def explain_design_run(run_dir, out: Path, n: int = 4, sanity: bool = True) -> dict[str, Any]:
    """The editor's last decision of ``n`` greedy episodes on held-out load cases (over its design, the load
    planes and the energy plane) and D's realism of the finished designs with their load planes, per element.
    Baselines: the all-void design (the load planes and the time plane kept, the energy plane zero)."""
    captum_attr()
    domain, editor = load_domain_run(run_dir, DesignConfig)
    cfg, D = domain.cfg, domain.gan.D
    cases = domain.held_idx[:n]
    env = domain.make_env(len(cases), cases, cfg.seed + 700)
    obs, actions = greedy_decisions(_Fixed(env, cases), editor.greedy_actions, cfg.episode_steps)
    finals = np.stack([e["design"] for e in sorted(env.pop_finished()[: len(cases)], key=lambda e: e["case"])])
    x = torch.from_numpy(obs).float()
    base = x.clone()
    base[:, 0], base[:, 5] = 0.0, 0.0  # no material, no energy; load planes and time kept
    q_net = editor.q.eval()
    pa = attribute(q_net, x, base, torch.from_numpy(actions))
    fx = torch.from_numpy(np.concatenate([finals[:, None] * 2 - 1, domain.planes[cases]], 1)).float()
    fbase = fx.clone()
    fbase[:, 0] = -1.0
    da = attribute(realism_logit(D, None), fx, fbase, None)
    items = []
    for i in range(len(x)):
        design = obs[i, 0]
        s_ig, s_sal = colour_scale(pa.integrated_gradients[i, 0]), colour_scale(pa.saliency[i, 0])
        d_ig, d_sal = da.integrated_gradients[i, 0], da.saliency[i, 0]
        realism = 1.0 / (1.0 + np.exp(-float(da.score[i])))
        top = [Panel("design at the decision", _picture(design)),
               Panel(f"editor IG: action {int(actions[i])}", _heat(design, pa.integrated_gradients[i, 0], True, s_ig),
                     True, s_ig),
               Panel("editor saliency", _heat(design, pa.saliency[i, 0], False, s_sal), False, s_sal)]
        bottom = [Panel("finished design", _picture(finals[i])),
                  Panel(f"D IG: realism {realism:.2f}", _heat(finals[i], d_ig, True, colour_scale(d_ig)), True,
                        colour_scale(d_ig)),
                  Panel("D saliency", _heat(finals[i], d_sal, False, colour_scale(d_sal)), False, colour_scale(d_sal))]
        name = f"design-{i}.png"
        atomic_write_bytes(out / name, attribution_sheet([top, bottom]))
        items.append({"picture": name, "load_case": int(cases[i]), "action": int(actions[i]),
                      "q_chosen": float(pa.score[i]), "q_baseline": float(pa.baseline_score[i]),
                      "player_ig_sum": float(pa.integrated_gradients[i].sum()),
                      "player_ig_delta": float(pa.convergence_delta[i]), "realism": realism,
                      "realism_logit": float(da.score[i]), "d_ig_sum": float(d_ig.sum()),
                      "d_ig_delta": float(da.convergence_delta[i])})
    record = attribution_record("design", "the greedy editor's last decision on held-out load cases, and the "
                                "finished designs", items, "the all-void design (load planes and time kept)",
                                "the editor's Q-value of its greedy action", "D's realism logit")
    if sanity:
        def per_element(a: Attribution) -> tuple[np.ndarray, np.ndarray]:
            return a.integrated_gradients[:, 0], a.saliency[:, 0]

        torch.manual_seed(cfg.seed + 4_242)
        fresh_q = QNetwork(**q_network_args(editor.cfg, tuple(x.shape[1:]), editor.n_actions)).eval()
        _, fresh_d = domain.build_gan(None, torch.device("cpu"))
        record["sanity"] = {
            "player": randomisation_check(q_net, fresh_q, lambda net: net, x, base, torch.from_numpy(actions),
                                          per_element),
            "discriminator": randomisation_check(D, fresh_d.eval(), lambda net: realism_logit(net, None), fx, fbase,
                                                 None)}
    atomic_write_text(out / MARKER, json.dumps(record, indent=2) + "\n")
    return record


class _Fixed:
    """The env with its first episodes' load cases fixed (``reset`` passes them on)."""

    def __init__(self, env, cases):
        self.env, self.num_envs, self.cases = env, env.num_envs, cases

    def reset(self):
        return self.env.reset(options={"cases": np.arange(len(self.cases))})

    def step(self, actions):
        return self.env.step(actions)
