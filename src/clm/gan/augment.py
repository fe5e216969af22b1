"""Differentiable augmentation (DiffAugment, Zhao et al. 2020).

The same random transform family is applied to real and generated batches
before D sees them, in D's and in G's step, so D cannot memorise a small
training set and gradients still flow to G. Policies (comma-separated):
``color`` (brightness, contrast; images only), ``translation`` (shift by up to
1/8 of the size, zero padded), ``cutout`` (a zeroed square of 1/4 the size),
``flip`` (left-right mirror; right for levels, wrong for digits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout", "flip")


def parse_policy(policy: str) -> list[str]:
    names = [p.strip() for p in policy.split(",") if p.strip()]
    for n in names:
        if n not in POLICIES:
            raise ValueError(f"unknown DiffAugment policy '{n}': use a comma list of {POLICIES}")
    return names


def _color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5) * 0.5
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, c, h, w = x.shape
    sh, sw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    dy = torch.randint(-sh, sh + 1, (b,), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b,), device=x.device)
    # gather from a zero-padded copy: out[i, :, r, c] = pad[i, :, r + sh - dy, c + sw - dx]
    pad = F.pad(x, (sw, sw, sh, sh))
    rows = (torch.arange(h, device=x.device)[None, :] + sh - dy[:, None])  # (b, h)
    cols = (torch.arange(w, device=x.device)[None, :] + sw - dx[:, None])  # (b, w)
    idx_r = rows[:, None, :, None].expand(b, c, h, w + 2 * sw)
    out = pad.gather(2, idx_r)
    idx_c = cols[:, None, None, :].expand(b, c, h, w)
    return out.gather(3, idx_c)


def _cutout(x: torch.Tensor, ratio: float = 0.25) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    cy = torch.randint(0, h - ch + 1, (b, 1, 1), device=x.device)
    cx = torch.randint(0, w - cw + 1, (b, 1, 1), device=x.device)
    r = torch.arange(h, device=x.device)[None, :, None]
    c = torch.arange(w, device=x.device)[None, None, :]
    keep = ~((r >= cy) & (r < cy + ch) & (c >= cx) & (c < cx + cw))
    return x * keep[:, None].to(x.dtype)


def _flip(x: torch.Tensor) -> torch.Tensor:
    m = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
    return torch.where(m, x.flip(3), x)


def diff_augment(x: torch.Tensor, policy: list[str]) -> torch.Tensor:
    """Apply each policy in order (an empty list returns ``x`` unchanged)."""
    for p in policy:
        x = {"color": _color, "translation": _translation, "cutout": _cutout, "flip": _flip}[p](x)
    return x
