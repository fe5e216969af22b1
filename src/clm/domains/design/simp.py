"""SIMP: the peer every topology-design method is measured against.

Minimum compliance at a volume fraction, densities ``x`` in [0, 1] with the
modified SIMP interpolation (penalty 3), a filter of radius ``rmin``
(``density``: the physical densities are the filtered design variables,
Bruns and Tortorelli; ``sensitivity``: Sigmund's filtered sensitivities) and
the optimality-criteria update with a bisection on the volume's Lagrange
multiplier (move 0.2, damping 1/2), stopping when no density moves more
than ``tol`` (0.01, as the 88-line code of Andreassen et al. 2011). One
iteration is one finite-element solve: the ``history`` is SIMP's compliance
against FE solves, the curve the CLM is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from clm.core.errors import UserError
from clm.domains.design.fe import E0, EMIN, FESolver
from clm.domains.design.loadcase import LoadCase


@lru_cache(maxsize=8)
def filter_matrix(nelx: int, nely: int, rmin: float) -> tuple[sp.csr_matrix, np.ndarray]:
    """The filter's weights ``H[e, f] = max(0, rmin - dist(e, f))`` and their row sums (flat index ``ey + ex nely``)."""
    r = int(np.ceil(rmin)) - 1
    ex, ey = np.meshgrid(np.arange(nelx), np.arange(nely))
    ex, ey = ex.ravel(order="F"), ey.ravel(order="F")
    rows, cols, vals = [], [], []
    for dx in range(-r, r + 1):
        for dy in range(-r, r + 1):
            w = rmin - np.hypot(dx, dy)
            if w <= 0:
                continue
            fx, fy = ex + dx, ey + dy
            ok = (fx >= 0) & (fx < nelx) & (fy >= 0) & (fy < nely)
            rows.append(np.flatnonzero(ok))
            cols.append(fy[ok] + fx[ok] * nely)
            vals.append(np.full(ok.sum(), w))
    H = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nelx * nely,) * 2)
    return H, np.asarray(H.sum(1)).ravel()


@dataclass
class SimpResult:
    density: np.ndarray  # (nely, nelx) physical densities at the end
    compliance: float  # of the final physical densities (penalised, as SIMP reports it)
    history: list[float]  # compliance at each iteration = each FE solve
    iterations: int


def simp(lc: LoadCase, solver: FESolver | None = None, penal: float = 3.0, rmin: float = 1.5,
         filter: str = "density", max_iter: int = 200, tol: float = 0.01, move: float = 0.2,
         x0: np.ndarray | None = None) -> SimpResult:
    """Optimise ``lc``'s design from a uniform start at its volume fraction (or from ``x0``)."""
    if filter not in ("density", "sensitivity"):
        raise UserError(f"unknown SIMP filter {filter!r}: use density or sensitivity", exit_code=2)
    lc.validate()
    nelx, nely, vf = lc.nelx, lc.nely, lc.volfrac
    solver = solver or FESolver(nelx, nely, penal)
    H, Hs = filter_matrix(nelx, nely, float(rmin))
    nel = nelx * nely
    x = np.full(nel, vf) if x0 is None else np.asarray(x0, np.float64).ravel(order="F").copy()
    phys = x.copy() if filter == "sensitivity" else H @ x / Hs
    history: list[float] = []
    change, it = 1.0, 0
    while change > tol and it < max_iter:
        it += 1
        sol = solver.solve(phys.reshape(nely, nelx, order="F"), lc)
        ce = sol.element_energy.ravel(order="F")
        history.append(sol.compliance)
        dc = -penal * (E0 - EMIN) * phys ** (penal - 1) * ce
        dv = np.ones(nel)
        if filter == "sensitivity":
            dc = H @ (x * dc) / Hs / np.maximum(1e-3, x)
        else:
            dc, dv = H @ (dc / Hs), H @ (dv / Hs)
        lo, hi = 0.0, 1e9
        while (hi - lo) / (hi + lo) > 1e-3:
            mid = 0.5 * (lo + hi)
            new = np.clip(x * np.sqrt(np.maximum(-dc, 0.0) / dv / mid), np.maximum(0.0, x - move), np.minimum(1.0, x + move))
            new_phys = new if filter == "sensitivity" else H @ new / Hs
            if new_phys.sum() > vf * nel:
                lo = mid
            else:
                hi = mid
        change = float(np.abs(new - x).max())
        x, phys = new, new_phys
    final = solver.solve(phys.reshape(nely, nelx, order="F"), lc).compliance
    return SimpResult(phys.reshape(nely, nelx, order="F"), final, history, it)


def binarize(density: np.ndarray, volfrac: float) -> np.ndarray:
    """The ``round(volfrac * n)`` densest elements as material (1), the rest void (0): a grey design made black and white at its volume."""
    flat = np.asarray(density, np.float64).ravel()
    k = int(round(volfrac * flat.size))
    out = np.zeros(flat.size, np.float32)
    out[np.argsort(-flat, kind="stable")[:k]] = 1.0
    return out.reshape(density.shape)
