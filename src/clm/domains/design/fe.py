"""The judge's finite-element solve: 2D plane stress on a grid of bilinear quads.

The element stiffness matrix comes from scikit-fem (``ElementQuad1`` as a
vector element, ``linear_elasticity`` with the plane-stress Lamé
parameters, 2x2 Gauss points) once per material; each design then scales
it per element (SIMP's modified interpolation ``E = Emin + x^p (E0 - Emin)``),
scatters it into the banded upper triangle of the free dofs' stiffness
(the node numbering runs down the columns, so the half-bandwidth is
``2 (nely + 1) + 3``) and solves it by LAPACK's banded Cholesky
(``scipy.linalg.solveh_banded``). At 32x16 on one loaded core that is about
1 ms a solve, against about 8 ms for scipy.sparse assembly plus SuperLU and
more again for scikit-fem's ``asm`` per design
(``benchmarks/design_fe_solvers.py`` measures them, and torch-fem), so only
the element matrix comes from scikit-fem. SuperLU stays as the fallback
should the Cholesky factorisation ever find the matrix not positive definite.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from scipy.linalg import LinAlgError, solveh_banded
from scipy.sparse.linalg import splu
from skfem import Basis, ElementQuad1, ElementVector, MeshQuad, asm
from skfem.models.elasticity import linear_elasticity

from clm.core.errors import UserError
from clm.domains.design.loadcase import LoadCase

E0, EMIN, NU = 1.0, 1e-9, 0.3  # Young's modulus of material and of void (as the 88-line code), Poisson's ratio


def plane_stress_lame(E: float, nu: float) -> tuple[float, float]:
    """Lamé parameters whose 2D elasticity is plane stress (lambda* = E nu / (1 - nu^2))."""
    return E * nu / (1 - nu ** 2), E / (2 * (1 + nu))


@lru_cache(maxsize=4)
def element_stiffness(E: float = E0, nu: float = NU) -> np.ndarray:
    """The 8x8 stiffness of a unit square element, dofs ordered (x, y) at its
    lower-left, lower-right, upper-right and upper-left corners (y up)."""
    mesh = MeshQuad()  # the unit square, one element
    basis = Basis(mesh, ElementVector(ElementQuad1()), intorder=2)
    K = asm(linear_elasticity(*plane_stress_lame(E, nu)), basis).toarray()
    corners = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
    order = []
    for cx, cy in corners:
        node = int(np.flatnonzero((np.abs(mesh.p[0] - cx) < 1e-12) & (np.abs(mesh.p[1] - cy) < 1e-12))[0])
        order += [int(basis.nodal_dofs[0, node]), int(basis.nodal_dofs[1, node])]
    K = K[np.ix_(order, order)]
    K.setflags(write=False)
    return K


@dataclass
class Solution:
    compliance: float
    u: np.ndarray  # nodal displacements (ndof,)
    element_energy: np.ndarray  # (nely, nelx): u_e^T KE u_e of each element at unit stiffness


class FESolver:
    """Compliance of densities on one grid (``nelx x nely``), any load case of that grid."""

    def __init__(self, nelx: int, nely: int, penal: float = 3.0):
        self.nelx, self.nely, self.penal = nelx, nely, penal
        self.KE = element_stiffness()
        ex, ey = np.meshgrid(np.arange(nelx), np.arange(nely))  # element (ey, ex); flat index ey + ex * nely
        ex, ey = ex.ravel(order="F"), ey.ravel(order="F")
        ul = (nely + 1) * ex + ey  # upper-left node
        ll, lr, ur = ul + 1, ul + 1 + (nely + 1), ul + (nely + 1)
        nodes = np.stack([ll, lr, ur, ul], 1)
        self.edof = np.stack([2 * nodes, 2 * nodes + 1], 2).reshape(-1, 8)  # (nel, 8)
        self.iK = np.repeat(self.edof, 8, axis=1).ravel()
        self.jK = np.tile(self.edof, (1, 8)).ravel()
        self.ndof = 2 * (nelx + 1) * (nely + 1)
        self.solves = 0  # FE solves made (the budget unit of the benchmarks)
        self._bands: dict[bytes, tuple] = {}

    def _band_pattern(self, fixed: np.ndarray) -> tuple:
        """For one set of fixed dofs: the free dofs, which stiffness entries land in the banded upper
        triangle of the free block, and where (flat index into the (bandwidth + 1, n_free) array)."""
        key = fixed.tobytes()
        if key not in self._bands:
            free_mask = np.ones(self.ndof, bool)
            free_mask[fixed] = False
            reduced = np.cumsum(free_mask) - 1
            take = free_mask[self.iK] & free_mask[self.jK]
            take[take] = reduced[self.iK[take]] <= reduced[self.jK[take]]
            i, j = reduced[self.iK[take]], reduced[self.jK[take]]
            width = int((j - i).max())
            n_free = int(free_mask.sum())
            self._bands[key] = (np.flatnonzero(free_mask), take, (width + i - j) * n_free + j, width, n_free)
        return self._bands[key]

    def stiffness_scale(self, density: np.ndarray) -> np.ndarray:
        x = np.asarray(density, np.float64).ravel(order="F")
        return EMIN + np.clip(x, 0.0, 1.0) ** self.penal * (E0 - EMIN)

    def solve(self, density: np.ndarray, lc: LoadCase) -> Solution:
        """Displacements, compliance ``f . u`` and element energies of ``density`` (nely, nelx) under ``lc``."""
        density = np.asarray(density, np.float64)
        if density.shape != (self.nely, self.nelx) or (lc.nelx, lc.nely) != (self.nelx, self.nely):
            raise UserError(f"design of shape {density.shape} / load case grid {lc.nelx}x{lc.nely} does not match the "
                            f"solver's {self.nelx}x{self.nely} grid (density shape ({self.nely}, {self.nelx}))",
                            exit_code=2)
        if not np.all(np.isfinite(density)):
            raise UserError("design has NaN or infinite densities", exit_code=2)
        if not lc.supports_hold():
            raise UserError(f"load case: the supports ({lc.support}) leave the structure free to move: the stiffness "
                            "matrix is singular", exit_code=2)
        scale = self.stiffness_scale(density)
        sK = (self.KE.ravel()[None, :] * scale[:, None]).ravel()
        free, take, slot, width, n_free = self._band_pattern(lc.fixed_dofs())
        f = lc.force()
        u = np.zeros(self.ndof)
        band = np.bincount(slot, weights=sK[take], minlength=(width + 1) * n_free).reshape(width + 1, n_free)
        try:
            u[free] = solveh_banded(band, f[free], check_finite=False)
        except LinAlgError:  # not positive definite to LAPACK: the general sparse LU instead
            K = sp.coo_matrix((sK, (self.iK, self.jK)), shape=(self.ndof, self.ndof)).tocsc()
            u[free] = splu(K[free][:, free].tocsc()).solve(f[free])
        self.solves += 1
        if not np.all(np.isfinite(u)):  # cannot happen with Emin > 0 and holding supports; never report a NaN
            raise UserError("the finite-element solve gave a non-finite displacement (singular stiffness)", exit_code=2)
        ue = u[self.edof]
        energy = np.einsum("ei,ij,ej->e", ue, self.KE, ue)
        compliance = float(f @ u)
        return Solution(compliance, u, energy.reshape(self.nely, self.nelx, order="F"))

    def compliance(self, density: np.ndarray, lc: LoadCase) -> float:
        return self.solve(density, lc).compliance
