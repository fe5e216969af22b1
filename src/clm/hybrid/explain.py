"""Why the agent and D decide as they do: attributions over their inputs.

For the agent's chosen action (its Q-network's ``Q(s, a*)``, ``a*`` the
greedy action) and for D's realism (its logit), two attributions over the
input grid, computed with Captum:

- **Integrated Gradients** (Sundararajan et al. 2017): the path integral of
  the gradient from a baseline input to the input, times their difference.
  Its attributions sum to ``f(x) - f(baseline)`` (completeness); Captum's
  convergence delta is how far the numerical integral misses that sum, and
  it is kept with every map.
- **Saliency** (Simonyan et al. 2014): ``|df/dx|`` at the input, reduced
  over channels by the maximum, as the paper reduces over colour channels.

Baselines (decisions of ours): levels and words are one-hot grids, and their
baseline is the all-zero grid (no tile, no letter anywhere); a cell then
differs from the baseline in the one channel of the tile it holds, so the
cell's IG summed over channels is the attribution of that tile. A canvas's
baseline is the blank canvas (every painting starts from it). The agent's
other inputs (G's proposals, the episode's time) follow the same rules, time
kept at its value (it is not explained).

D's score is its logit (log-odds of "real"), not the probability: the
sigmoid of a confident D saturates, and its gradients (the saliency) vanish.
A D with the minibatch-std feature scores a level together with its batch
(the judge scores levels in batches); here each level is scored among a
fixed batch of real levels (``context``), one level at a time through
``torch.func.vmap``, so that a level's attribution is its own.

The sanity check is Adebayo et al. (2018)'s model-parameter randomisation
test: an attribution that explains the network must change when the
network's learned weights are replaced by random ones. The layers are
re-initialised from the output back (cascading); for each step the Spearman
rank correlation of the per-cell |attribution| with the trained network's is
averaged over the explained inputs. A control recomputes the trained
network's IG with another integration rule (32-step trapezoid): it shows how
much of a change the numerics alone make.

Captum is imported only when attributions are computed, so that the rest of
clm works without it (it is pinned in requirements.lock and the extra
``[explain]``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from clm.core.errors import UserError

#: IG's integration: Captum's default rule, with more steps than its default 50 for small deltas
IG_STEPS = 64
IG_METHOD = "gausslegendre"
#: the control of the sanity check: the same IG, integrated by another rule
CONTROL_STEPS, CONTROL_METHOD = 32, "riemann_trapezoid"
#: the marker file of an attributions folder (``clm explain`` replaces only folders that hold it)
MARKER = "attributions.json"
#: real levels (or words, canvases) that a minibatch-std D scores each input among
CONTEXT_SIZE = 63
#: the sanity check passes when the randomised network's maps rank the cells unlike the trained one's
#: (mean Spearman of |IG| below this) while the control's rank them alike (above the next)
SANITY_MAX_RANDOM_SPEARMAN = 0.5
SANITY_MIN_CONTROL_SPEARMAN = 0.9


def captum_attr():
    """``captum.attr``, or a clear error when Captum is not installed."""
    try:
        import captum.attr
    except ImportError as e:
        raise UserError("attributions need Captum: pip install captum==0.9.0 (pinned in requirements.lock; "
                        "pip install -e '.[explain]')", exit_code=2) from e
    return captum.attr


def captum_version() -> str:
    import captum

    return str(captum.__version__)


# -- the scores that are explained -------------------------------------------------------------------
def realism_logit(D: nn.Module, context: torch.Tensor | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x (B, ...) -> (B,)``: D's logit of each input. With ``context`` (a
    batch of real inputs) each input is scored in a batch with the context,
    as a minibatch-std D needs a batch; without it, the inputs are D's batch
    (right for a D without batch statistics)."""
    if context is None:
        return lambda x: D(x)[0]

    def one(xi: torch.Tensor) -> torch.Tensor:
        return D(torch.cat([xi[None], context]))[0][0]

    return torch.func.vmap(one)


def needs_context(D: nn.Module) -> bool:
    """Whether D's score of an input depends on the rest of its batch (the minibatch-std feature)."""
    return bool(getattr(D, "minibatch_std", False))


# -- Integrated Gradients and saliency ---------------------------------------------------------------
@dataclass
class Attribution:
    """Attributions of a batch of inputs (arrays shaped like the inputs) and the score they explain."""

    integrated_gradients: np.ndarray  #: (N, *input) IG
    saliency: np.ndarray  #: (N, *input) |df/dx|
    convergence_delta: np.ndarray  #: (N,) sum(IG) - (f(x) - f(baseline)), Captum's
    score: np.ndarray  #: (N,) f(x)
    baseline_score: np.ndarray  #: (N,) f(baseline)


def _select(out: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    return out if target is None else out.gather(1, target[:, None]).squeeze(1)


def attribute(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, baseline: torch.Tensor,
              target: torch.Tensor | None = None, n_steps: int = IG_STEPS, method: str = IG_METHOD,
              with_saliency: bool = True) -> Attribution:
    """IG and saliency of ``forward(x)`` ((B,) scores, or (B, A) with
    ``target`` the column of each row) with respect to ``x``."""
    attr = captum_attr()
    x, baseline = x.detach().float(), baseline.detach().float()
    tgt = None if target is None else target.long()
    ig, delta = attr.IntegratedGradients(forward).attribute(
        x, baselines=baseline, target=tgt, n_steps=n_steps, method=method, return_convergence_delta=True)
    sal = (attr.Saliency(forward).attribute(x.clone().requires_grad_(True), target=tgt, abs=True)
           if with_saliency else torch.zeros_like(x))
    with torch.no_grad():
        score, base = _select(forward(x), tgt), _select(forward(baseline), tgt)
    return Attribution(ig.detach().numpy(), sal.detach().numpy(), delta.detach().numpy(), score.numpy(),
                       base.numpy())


def cell_maps(a: Attribution, channel_axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(IG summed over channels: signed, per cell; saliency's maximum over channels)."""
    return a.integrated_gradients.sum(channel_axis), a.saliency.max(channel_axis)


# -- the sanity check (Adebayo et al. 2018) -------------------------------------------------------------
def _layer_of(key: str) -> str:
    """The layer a state-dict entry belongs to (``head.value.0.weight`` -> ``head.value.0``; a spectral
    norm's ``conv.1.parametrizations.weight.original`` -> ``conv.1``)."""
    return key.split(".parametrizations.")[0] if ".parametrizations." in key else key.rsplit(".", 1)[0]


def layers(net: nn.Module) -> list[str]:
    """The network's layers that hold weights, input side first (state-dict order)."""
    out: list[str] = []
    for k in net.state_dict():
        if _layer_of(k) not in out:
            out.append(_layer_of(k))
    return out


def spearman_of_magnitudes(a: np.ndarray, b: np.ndarray) -> float:
    """The mean over inputs of the Spearman rank correlation of |a| and |b|
    (per-cell maps, (N, ...)); an input where either map is constant counts as 0."""
    from scipy.stats import spearmanr

    out = []
    for x, y in zip(np.abs(a).reshape(len(a), -1), np.abs(b).reshape(len(b), -1)):
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            out.append(0.0)
        else:
            out.append(float(spearmanr(x, y).statistic))
    return float(np.mean(out))


def randomisation_check(trained: nn.Module, fresh: nn.Module, forward_of: Callable[[nn.Module], Callable],
                        x: torch.Tensor, baseline: torch.Tensor, target: torch.Tensor | None,
                        reduce: Callable[[Attribution], tuple[np.ndarray, np.ndarray]] = cell_maps) -> dict[str, Any]:
    """Adebayo et al.'s model-parameter randomisation test of ``trained``.

    ``fresh`` is the same architecture at a random initialisation;
    ``forward_of(net)`` is the score explained (the same target rows for
    every network, as in the paper). Returns the control (the trained
    network's IG by another integration rule), the fully randomised network's
    correlations, and each cascade step (layers from the output back)."""
    reference = reduce(attribute(forward_of(trained), x, baseline, target))
    control = reduce(attribute(forward_of(trained), x, baseline, target, CONTROL_STEPS, CONTROL_METHOD,
                               with_saliency=False))
    names = layers(trained)
    fresh_state = fresh.state_dict()
    net = copy.deepcopy(trained)
    cascade = []
    for name in reversed(names):
        state = net.state_dict()
        state.update({k: v for k, v in fresh_state.items() if _layer_of(k) == name})
        net.load_state_dict(state)
        ig, sal = reduce(attribute(forward_of(net), x, baseline, target))
        cascade.append({"randomised_down_to": name, "spearman_ig": spearman_of_magnitudes(reference[0], ig),
                        "spearman_saliency": spearman_of_magnitudes(reference[1], sal)})
    out = {"control_spearman_ig": spearman_of_magnitudes(reference[0], control[0]),
           "random_spearman_ig": cascade[-1]["spearman_ig"],
           "random_spearman_saliency": cascade[-1]["spearman_saliency"],
           "cascade": cascade, "inputs": int(len(x)),
           "thresholds": {"random_below": SANITY_MAX_RANDOM_SPEARMAN, "control_above": SANITY_MIN_CONTROL_SPEARMAN}}
    out["passed"] = bool(out["random_spearman_ig"] < SANITY_MAX_RANDOM_SPEARMAN
                         and out["control_spearman_ig"] > SANITY_MIN_CONTROL_SPEARMAN)
    return out


# -- Sokoban levels -----------------------------------------------------------------------------------------
def explain_levels(player: nn.Module, D: nn.Module, levels: list, context: torch.Tensor | None,
                   n_steps: int = IG_STEPS) -> dict[str, np.ndarray]:
    """The player's chosen action and D's realism of each level, explained
    per tile: ``player_ig``, ``player_saliency``, ``d_ig``, ``d_saliency``
    (N, H, W), the deltas, the actions, Q-values and D's logits."""
    from clm.domains.levels import levels_to_onehot

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
    from clm.domains.heatmaps import Panel, attribution_sheet, colour_scale
    from clm.domains.levels.render import level_heatmap, level_to_rgb

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
    from clm.agents.dqn import q_network_args
    from clm.agents.networks import QNetwork
    from clm.domains.levels.sim import N_ACTIONS
    from clm.hybrid.search import build_gan

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
    from clm.core.rundir import atomic_write_bytes, atomic_write_text
    from clm.domains.levels import levels_to_onehot, read_levels
    from clm.domains.levels.sim import ACTION_NAMES
    from clm.hybrid.search import load_run

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
    record = _record("levels", source, items, "the all-zero grid (no tile anywhere)",
                     "the player's Q-value of its greedy action, Q(s, a*)", "D's realism logit"
                     + (f", each level scored among {CONTEXT_SIZE} corpus levels (D's minibatch-std feature)"
                        if context is not None else ""))
    if sanity:
        record["sanity"] = _levels_sanity(run, e["x"], e["actions"], context)
    atomic_write_text(out / MARKER, json.dumps(record, indent=2) + "\n")
    return record


def _record(domain: str, source: str, items: list[dict], baseline: str, agent_score: str, d_score: str) -> dict:
    return {"domain": domain, "source": source, "captum": captum_version(),
            "method": {"integrated_gradients": {"n_steps": IG_STEPS, "method": IG_METHOD, "baseline": baseline},
                       "saliency": "max over channels of |d score / d input|",
                       "agent_score": agent_score, "d_score": d_score,
                       "sanity_control": {"n_steps": CONTROL_STEPS, "method": CONTROL_METHOD}},
            "items": items}


# -- art: canvases ------------------------------------------------------------------------------------------
def _greedy_decisions(env, policy, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Each env's observation and greedy action at the last decision of its
    first episode (the one that finished the work): run ``steps`` vector steps."""
    n = env.num_envs
    obs, _ = env.reset()
    last_obs, last_act = obs.copy(), np.zeros(n, np.int64)
    running = np.ones(n, bool)
    for _ in range(steps):
        act = policy(obs)
        last_obs[running], last_act[running] = obs[running], act[running]
        obs, _, term, trunc, _ = env.step(act)
        running &= ~(term | trunc)
        if not running.any():
            break
    return last_obs, last_act


def explain_art_run(run_dir: str | Path, out: Path, n: int = 4, sanity: bool = True) -> dict[str, Any]:
    """The painter's last decision of ``n`` greedy episodes (over its canvas
    and G's proposals) and D's realism of the finished canvases, explained per
    pixel, into ``out``."""
    from clm.core.rundir import atomic_write_bytes, atomic_write_text
    from clm.domains.heatmaps import Panel, attribution_sheet, colour_scale
    from clm.domains.images.art_pictures import canvas_heatmap, canvas_picture
    from clm.domains.images.canvas import BLANK
    from clm.hybrid.art import load_art_run

    captum_attr()
    art, painter = load_art_run(run_dir)
    D, cfg = art.gan.D, art.cfg
    env = art.canvas_env(n, cfg.seed + 700)
    obs, actions = _greedy_decisions(env, painter.greedy_actions, cfg.episode_steps)
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
    record = _record("art", "the greedy painter's last decision of fresh episodes, and their finished canvases",
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
def explain_text_run(run_dir: str | Path, out: Path, n: int = 4, sanity: bool = True) -> dict[str, Any]:
    """The writer's last decision of ``n`` greedy episodes (over its word and
    G's proposals) and D's realism of the archive's words (else the written
    ones), explained per letter cell, into ``out``."""
    from clm.core.rundir import atomic_write_bytes, atomic_write_text
    from clm.domains.heatmaps import Panel, attribution_sheet, colour_scale
    from clm.domains.text.pictures import word_heatmap, word_picture
    from clm.hybrid.text import load_text_run

    captum_attr()
    text, writer = load_text_run(run_dir)
    D, cfg, L, C = text.gan.D, text.cfg, text.L, text.C
    env = text.word_env(n, cfg.seed + 700)
    obs, actions = _greedy_decisions(env, writer.greedy_actions, cfg.episode_steps)
    x = torch.from_numpy(obs).float()
    base = torch.zeros_like(x)
    base[:, -1] = x[:, -1]  # the time feature is kept (not explained)
    q_net = writer.q.eval()
    pa = attribute(q_net, x, base, torch.from_numpy(actions))
    k = cfg.n_proposals
    rows_of = lambda a: a[:, :-1].reshape(len(a), 1 + k, L, C)  # noqa: E731  (the word, then each proposal)
    p_ig, p_sal = rows_of(pa.integrated_gradients).sum(3), rows_of(pa.saliency).max(3)
    symbols = rows_of(obs).argmax(3)  # (N, 1 + K, L)
    archive = _archive_words(Path(run_dir))
    words, source = (archive[:n], "the run's creative archive (words/archive.jsonl)") if archive else (
        [text.words_of(s[None, 0])[0] for s in symbols], "the words the greedy writer was editing")
    grids = torch.from_numpy(text.onehot(words)).float()
    context = text.real_data()[:CONTEXT_SIZE].cpu() if needs_context(D) else None
    da = attribute(realism_logit(D, context), grids, torch.zeros_like(grids), None)
    d_ig, d_sal = da.integrated_gradients.sum(1)[:, 0], da.saliency.max(1)[:, 0]  # (N, L)
    letters = lambda idx: ["" if s == 0 else text.alphabet.letters[s - 1] for s in idx]  # noqa: E731
    items = []
    for i in range(len(x)):
        s_ig, s_sal = colour_scale(p_ig[i]), colour_scale(p_sal[i])
        rows = [[Panel("word at the decision" if r == 0 else f"proposal {r}", word_picture(letters(symbols[i, r]))),
                 Panel(f"writer IG: action {int(actions[i])}" if r == 0 else "writer IG",
                       word_heatmap(letters(symbols[i, r]), p_ig[i, r], True, s_ig), True, s_ig),
                 Panel("writer saliency", word_heatmap(letters(symbols[i, r]), p_sal[i, r], False, s_sal), False, s_sal)]
                for r in range(1 + k)]
        item = {"action": int(actions[i]), "q_chosen": float(pa.score[i]), "q_baseline": float(pa.baseline_score[i]),
                "player_ig_sum": float(pa.integrated_gradients[i].sum()),
                "player_ig_delta": float(pa.convergence_delta[i])}
        if i < len(words):
            cells = letters(text.alphabet.indices([words[i]], L)[0])
            realism = 1.0 / (1.0 + np.exp(-float(da.score[i])))
            rows.append([Panel(f"word {words[i]!r}", word_picture(cells)),
                         Panel(f"D IG: realism {realism:.2f}", word_heatmap(cells, d_ig[i], True, colour_scale(d_ig[i])),
                               True, colour_scale(d_ig[i])),
                         Panel("D saliency", word_heatmap(cells, d_sal[i], False, colour_scale(d_sal[i])), False,
                               colour_scale(d_sal[i]))])
            item.update(word=words[i], realism=realism, realism_logit=float(da.score[i]),
                        realism_logit_baseline=float(da.baseline_score[i]), d_ig_sum=float(d_ig[i].sum()),
                        d_ig_delta=float(da.convergence_delta[i]))
        name = f"word-{i}.png"
        atomic_write_bytes(out / name, attribution_sheet(rows, panel_inches=2.6, aspect=0.25))
        items.append({"picture": name, **item})
    record = _record("text", source, items, "the all-zero grid (no letter anywhere; the time feature kept)",
                     "the writer's Q-value of its greedy action", "D's realism logit")
    if sanity:
        from clm.agents.dqn import q_network_args
        from clm.agents.networks import QNetwork

        torch.manual_seed(cfg.seed + 4_242)
        fresh_q = QNetwork(**q_network_args(writer.cfg, tuple(x.shape[1:]), writer.n_actions)).eval()
        _, fresh_d = text.build_gan(tuple(grids.shape[1:]), torch.device("cpu"))

        def per_letter(a: Attribution) -> tuple[np.ndarray, np.ndarray]:
            return rows_of(a.integrated_gradients).sum(3), rows_of(a.saliency).max(3)

        record["sanity"] = {
            "player": randomisation_check(q_net, fresh_q, lambda net: net, x, base, torch.from_numpy(actions),
                                          per_letter),
            "discriminator": randomisation_check(D, fresh_d.eval(), lambda net: realism_logit(net, context), grids,
                                                 torch.zeros_like(grids), None)}
    atomic_write_text(out / MARKER, json.dumps(record, indent=2) + "\n")
    return record


def _archive_words(run_dir: Path) -> list[str]:
    path = run_dir / "words" / "archive.jsonl"
    if not path.is_file():
        return []
    words = []
    for line in path.read_text().splitlines():
        try:
            w = json.loads(line).get("word")
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(w, str) and w:
            words.append(w)
    return words


def sanity_headline(record: dict[str, Any]) -> dict[str, float]:
    """The sanity check's four headline figures of a record (empty without a check)."""
    out = {}
    for who, s in record.get("sanity", {}).items():
        out[f"{who}_random_spearman_ig"] = s["random_spearman_ig"]
        out[f"{who}_control_spearman_ig"] = s["control_spearman_ig"]
    return out


# -- any run ------------------------------------------------------------------------------------------------
def run_domain(run_dir: str | Path) -> str:
    """The domain of a ``clm run`` folder, from its checkpoint's meta (older runs: levels)."""
    from clm.core.checkpoint import read_meta
    from clm.core.rundir import require_run_dir

    folder = require_run_dir(run_dir, "run") / "checkpoints" / "clm"
    try:
        _, meta = read_meta(folder)
    except UserError as e:  # no networks to read: the user gave the wrong folder (exit 2, as for bad arguments)
        raise UserError(f"{run_dir} holds no networks to read: {e}", exit_code=2) from e
    if meta.get("kind") != "clm":
        raise UserError(f"{run_dir} is not a CLM run (its checkpoint is a '{meta.get('kind')}')", exit_code=2)
    return str(meta.get("domain", "levels"))


def explain_run(run_dir: str | Path, out: str | Path | None = None, levels_file: str | Path | None = None,
                n: int = 4, sanity: bool = True) -> tuple[Path, dict[str, Any]]:
    """Attributions of a ``clm run`` folder's agent and D, written whole into
    ``out`` (default ``RUN_DIR/attributions``, replaced): (the folder, its record)."""
    from clm.core.rundir import check_output_folder, folder_written_whole

    if n < 1:
        raise UserError(f"-n must be >= 1, got {n}", exit_code=2)
    out = Path(out) if out is not None else Path(run_dir) / "attributions"
    check_output_folder(out, MARKER)
    domain = run_domain(run_dir)
    if levels_file is not None and domain != "levels":
        raise UserError(f"--levels is for levels runs; {run_dir} is a {domain} run", exit_code=2)
    if levels_file is not None and not Path(levels_file).is_file():
        raise UserError(f"--levels {levels_file}: no such file", exit_code=2)
    with folder_written_whole(out, MARKER) as tmp:
        if domain == "art":
            record = explain_art_run(run_dir, tmp, n, sanity)
        elif domain == "text":
            record = explain_text_run(run_dir, tmp, n, sanity)
        else:
            record = explain_level_run(run_dir, tmp, levels_file, n, sanity)
    return out, record
