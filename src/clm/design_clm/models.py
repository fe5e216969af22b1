"""G and D of the design CLM, after TopologyGAN (Nie et al. 2021): the load case enters as image planes.

G: a small U-Net from the load case's four condition planes (forces and
fixities, :func:`clm.domains.design.env.condition_planes`) and the noise ``z``
(broadcast over the grid at the bottleneck) to a density plane in [-1, 1]. Its
output is the design *with* its condition planes, ``(B, 1 + 4, H, W)``, so
that D, a conv net over all five planes, judges how real a design is for its
load case (the CLM loop hands D no separate condition for the real batch:
the condition travels inside the data). The condition G receives is the
flattened ``(B, 4 H W)`` planes (the loop's condition tensor).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import spectral_norm as _sn

COND = 4


class DesignGenerator(nn.Module):
    def __init__(self, nely: int, nelx: int, z_dim: int = 16, width: int = 16):
        super().__init__()
        self.nely, self.nelx, self.z_dim = nely, nelx, z_dim
        w = width
        act = lambda: nn.LeakyReLU(0.2, True)  # noqa: E731
        self.e1 = nn.Sequential(nn.Conv2d(COND, w, 3, padding=1), act(), nn.Conv2d(w, w, 3, padding=1), act())
        self.e2 = nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), act())
        self.e3 = nn.Sequential(nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), act())
        h3, w3 = (nely + 3) // 4, (nelx + 3) // 4  # two stride-2 convs (padding 1) round up
        # the bottleneck mixes the whole grid (where the loads sit relative to the supports) with z
        self.mid = nn.Sequential(nn.Linear(4 * w * h3 * w3 + z_dim, 128), act(), nn.Linear(128, 4 * w * h3 * w3), act())
        self.h3, self.w3, self.w = h3, w3, w
        self.d2 = nn.Sequential(nn.Conv2d(8 * w, 2 * w, 3, padding=1), act())
        self.d1 = nn.Sequential(nn.Conv2d(5 * w, w, 3, padding=1), act(), nn.Conv2d(w, 1, 3, padding=1))

    def forward(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        planes = cond.reshape(len(cond), COND, self.nely, self.nelx).to(z.dtype)
        x1 = self.e1(planes)
        x2 = self.e2(x1)
        x3 = self.e3(x2)
        m = self.mid(torch.cat([x3.flatten(1), z], 1)).view(-1, 4 * self.w, self.h3, self.w3)
        up2 = nn.functional.interpolate(torch.cat([m, x3], 1), size=x2.shape[-2:], mode="nearest")
        y2 = self.d2(up2)
        up1 = nn.functional.interpolate(torch.cat([y2, x2], 1), size=x1.shape[-2:], mode="nearest")
        density = torch.tanh(self.d1(torch.cat([up1, x1], 1)))
        return torch.cat([density, planes], 1)


class DesignDiscriminator(nn.Module):
    """(B, 5, H, W) design and load planes -> (logit (B,), features (B, F))."""

    def __init__(self, nely: int, nelx: int, width: int = 16, spectral_norm: bool = True):
        super().__init__()
        sn = _sn if spectral_norm else (lambda m: m)
        w = width
        self.conv = nn.Sequential(sn(nn.Conv2d(1 + COND, w, 3, padding=1)), nn.LeakyReLU(0.2, True),
                                  sn(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1)), nn.LeakyReLU(0.2, True),
                                  sn(nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1)), nn.LeakyReLU(0.2, True),
                                  nn.Flatten())
        with torch.no_grad():
            self.feature_dim = self.conv(torch.zeros(1, 1 + COND, nely, nelx)).shape[1]
        self.head = sn(nn.Linear(self.feature_dim, 1))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.conv(x)  # the condition is inside x (its planes 1..4); ``cond`` is not needed
        return self.head(feats).squeeze(1), feats
