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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
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

def attribution_record(domain: str, source: str, items: list[dict], baseline: str, agent_score: str, d_score: str) -> dict:
    return {"domain": domain, "source": source, "captum": captum_version(),
            "method": {"integrated_gradients": {"n_steps": IG_STEPS, "method": IG_METHOD, "baseline": baseline},
                       "saliency": "max over channels of |d score / d input|",
                       "agent_score": agent_score, "d_score": d_score,
                       "sanity_control": {"n_steps": CONTROL_STEPS, "method": CONTROL_METHOD}},
            "items": items}


# -- art: canvases ------------------------------------------------------------------------------------------
def greedy_decisions(env, policy, steps: int) -> tuple[np.ndarray, np.ndarray]:
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



def sanity_headline(record: dict[str, Any]) -> dict[str, float]:
    """The sanity check's four headline figures of a record (empty without a check)."""
    out = {}
    for who, s in record.get("sanity", {}).items():
        out[f"{who}_random_spearman_ig"] = s["random_spearman_ig"]
        out[f"{who}_control_spearman_ig"] = s["control_spearman_ig"]
    return out


# -- any run ------------------------------------------------------------------------------------------------
