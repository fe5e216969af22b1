"""Q-networks: an MLP for vector observations, a small conv net for (C, H, W)
grids, each with an optional dueling head."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class DuelingHead(nn.Module):
    """Q(s, a) = V(s) + A(s, a) - mean_a A(s, a) (Wang et al. 2016)."""

    def __init__(self, in_features: int, n_actions: int, hidden: int):
        super().__init__()
        self.value = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.advantage = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                                       nn.Linear(hidden, n_actions))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = self.advantage(h)
        return self.value(h) + a - a.mean(dim=1, keepdim=True)


def _mlp(in_features: int, hidden: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_features, h), nn.ReLU()]
        in_features = h
    return nn.Sequential(*layers), in_features


class QNetwork(nn.Module):
    """Observation -> one Q-value per action.

    ``kind="mlp"`` flattens the observation; ``kind="conv"`` expects (C, H, W)
    (``channels_last`` inputs are permuted first) and applies 3x3 convolutions
    with padding, which keep small grids (Sokoban, MinAtar: 10x10) whole.
    With ``dueling``, the last hidden layer feeds a value and an advantage stream.
    """

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, kind: str = "mlp",
                 hidden: tuple[int, ...] = (256, 256), conv_channels: tuple[int, ...] = (32, 64),
                 dueling: bool = False, channels_last: bool = False):
        super().__init__()
        self.channels_last = channels_last
        if kind == "mlp":
            in_features = 1
            for d in obs_shape:
                in_features *= d
            self.features: nn.Module = nn.Flatten()
        elif kind == "conv":
            if len(obs_shape) != 3:
                raise ValueError(f"a conv Q-network needs (C, H, W) observations, got shape {obs_shape}")
            c, h, w = (obs_shape[2], obs_shape[0], obs_shape[1]) if channels_last else obs_shape
            layers: list[nn.Module] = []
            for out_c in conv_channels:
                layers += [nn.Conv2d(c, out_c, 3, padding=1), nn.ReLU()]
                c = out_c
            self.features = nn.Sequential(*layers, nn.Flatten())
            in_features = c * h * w
        else:
            raise ValueError(f"unknown Q-network kind '{kind}': use mlp or conv")
        if dueling:
            body_hidden, last = hidden[:-1], hidden[-1] if hidden else 256
            self.body, width = _mlp(in_features, body_hidden)
            self.head: nn.Module = DuelingHead(width, n_actions, last)
        else:
            self.body, width = _mlp(in_features, hidden)
            self.head = nn.Linear(width, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            obs = obs.permute(0, 3, 1, 2)
        return self.head(self.body(self.features(obs)))


# -- a hand-written CPU fast path for plain MLP Q-networks -----------------------------------
# Profiling CartPole at rl-zoo3's settings (64-row batches, 256-256 net, one
# CPU thread) showed autograd's graph building, nn.Module dispatch and torch's
# per-operation overhead costing more than the three 64x256x256 matmuls of an
# update. A plain MLP (Linear, ReLU, ..., Linear) has a backward pass short
# enough to write out, and NumPy's per-call overhead is a fraction of torch's,
# so on a CPU the DQN acts and computes TD gradients for such networks here,
# on NumPy views that share memory with the torch parameters (the optimiser
# stays torch's fused Adam). Every other network, and every GPU run, uses
# autograd. Tests check these functions against autograd.


def plain_mlp_layers(net: QNetwork) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """Detached (weight, bias) views of ``net``'s layers if it is a plain MLP
    (Flatten, then Linear and ReLU pairs, then a Linear head), else None."""
    if not isinstance(net.features, nn.Flatten) or not isinstance(net.head, nn.Linear) or net.channels_last:
        return None
    modules = list(net.body)
    linears = modules[0::2]
    if not all(isinstance(m, nn.Linear) for m in linears) or not all(isinstance(m, nn.ReLU) for m in modules[1::2]):
        return None
    return [(m.weight.detach(), m.bias.detach()) for m in [*linears, net.head]]


class NumpyMLP:
    """Forward and TD-loss backward passes of a plain MLP on a CPU, on NumPy
    views of its (weight, bias) tensors: in-place updates of the tensors show
    through. Work buffers are kept between calls (one set per batch size)."""

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]]):
        self.layers = [(w.numpy(), b.numpy()) for w, b in layers]
        self._buffers: dict[int, tuple[list[np.ndarray], list[np.ndarray], np.ndarray]] = {}

    def _activations(self, obs: np.ndarray, outs: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """The input and every hidden layer's output (into ``outs`` when given)."""
        acts = [np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)]
        for i, (w, b) in enumerate(self.layers[:-1]):
            h = np.matmul(acts[-1], w.T, out=None if outs is None else outs[i])
            h += b
            np.maximum(h, 0.0, out=h)
            acts.append(h)
        return acts

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        w, b = self.layers[-1]
        q = self._activations(obs)[-1] @ w.T
        q += b
        return q

    def _work(self, n: int):
        if n not in self._buffers:
            hidden = [np.empty((n, w.shape[0]), np.float32) for w, _ in self.layers[:-1]]
            back = [np.empty((n, w.shape[0]), np.float32) for w, _ in self.layers[:-1]]
            self._buffers[n] = (hidden, back, np.empty((n, self.layers[-1][0].shape[0]), np.float32))
        return self._buffers[n]

    def td_gradients(self, obs: np.ndarray, actions: np.ndarray, target: np.ndarray, weights: np.ndarray,
                     out: list[np.ndarray], huber: bool = True) -> np.ndarray:
        """Write into ``out`` (arrays shaped like weight 0, bias 0, weight 1,
        ...) the gradients of ``mean(weights * loss(Q(obs, actions) - target))``
        and return the TD errors; ``loss`` is Huber (smooth L1, beta 1) or the
        squared error."""
        n = len(obs)
        hidden, back, q = self._work(n)
        acts = self._activations(obs, hidden)
        w, b = self.layers[-1]
        np.matmul(acts[-1], w.T, out=q)
        rows = np.arange(n)
        td = q[rows, actions] + b[actions] - target
        # d loss / d Q(s, a): only the taken action's output gets a gradient.
        g = np.clip(td, -1.0, 1.0) if huber else 2.0 * td
        g *= weights
        g /= n
        dz = q
        dz.fill(0.0)
        dz[rows, actions] = g
        for i in range(len(self.layers) - 1, -1, -1):
            np.matmul(dz.T, acts[i], out=out[2 * i])
            np.sum(dz, axis=0, out=out[2 * i + 1])
            if i > 0:  # back through layer i's weights and layer i-1's ReLU
                d = np.matmul(dz, self.layers[i][0], out=back[i - 1])
                d *= acts[i] > 0  # ReLU's backward
                dz = d
        return td


def flatten_parameters(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """Move ``params`` into one contiguous buffer, each becoming a view of it,
    and return the buffer: gradient clipping and Adam then run as one
    operation on one tensor instead of one per parameter."""
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    for p, view in zip(params, split_like(flat, params)):
        p.data = view
    return flat


def split_like(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    """Views of ``flat`` shaped like each tensor of ``like``, in order."""
    views, offset = [], 0
    for t in like:
        views.append(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return views
