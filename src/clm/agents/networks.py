"""Q-networks: an MLP for vector observations, a small conv net for (C, H, W)
grids, each with an optional dueling head."""

from __future__ import annotations

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
