"""One finite-element solve of a 32x16 design (plane stress, SIMP stiffness scaling), four ways, one thread:

- ``banded``: the judge (clm.domains.design.fe.FESolver): scikit-fem's element matrix once, scattered per
  design into the banded upper triangle, LAPACK's banded Cholesky;
- ``sparse_superlu``: the same element matrix scattered into scipy.sparse (COO -> CSC), SuperLU;
- ``skfem_assemble``: scikit-fem assembling the whole grid per design (``asm`` with a per-element
  stiffness field), ``condense`` and ``solve``;
- ``torchfem``: torch-fem 0.14 (``Planar``, Quad1 elements, its own solver), when importable
  (``--torchfem-path`` adds its folder; it imports pyvista and pyamg at import time).

Every way's compliance is checked against the judge's. Prints one JSON line (median ms per solve).

    OMP_NUM_THREADS=1 python benchmarks/design_fe_solvers.py --repeats 50
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu
from skfem import Basis, BilinearForm, ElementQuad0, ElementQuad1, ElementVector, MeshQuad, asm, condense, solve
from skfem.helpers import ddot, eye, sym_grad, trace

from clm.domains.design.fe import FESolver, plane_stress_lame
from clm.domains.design.loadcase import LoadCase, PointLoad


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3, out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--torchfem-path", action="append", default=[], help="folder(s) to import torch-fem from")
    args = ap.parse_args()
    nelx, nely = 32, 16
    rng = np.random.default_rng(0)
    dens = rng.uniform(0.05, 1.0, (nely, nelx))
    lc = LoadCase(nelx, nely, "cantilever", (PointLoad(nelx, nely // 2, 0.0, -1.0),), 0.4).validate()
    solver = FESolver(nelx, nely)
    out = {"grid": f"{nelx}x{nely}", "dofs": solver.ndof}
    out["banded_ms"], ref = timed(lambda: solver.compliance(dens, lc), args.repeats)

    free = np.setdiff1d(np.arange(solver.ndof), lc.fixed_dofs())
    f = lc.force()

    def superlu():
        sK = (solver.KE.ravel()[None, :] * solver.stiffness_scale(dens)[:, None]).ravel()
        K = sp.coo_matrix((sK, (solver.iK, solver.jK)), shape=(solver.ndof,) * 2).tocsc()
        u = splu(K[free][:, free].tocsc()).solve(f[free])
        return float(f[free] @ u)
    out["sparse_superlu_ms"], c = timed(superlu, args.repeats)
    out["sparse_superlu_rel_diff"] = abs(c - ref) / ref

    mesh = MeshQuad.init_tensor(np.arange(nelx + 1.0), np.arange(nely + 1.0))
    basis = Basis(mesh, ElementVector(ElementQuad1()), intorder=2)
    centre = mesh.p[:, mesh.t].mean(1)
    rows, cols = (nely - 1 - np.floor(centre[1])).astype(int), np.floor(centre[0]).astype(int)
    lam, mu = plane_stress_lame(1.0, 0.3)
    field_basis = basis.with_element(ElementQuad0())
    left = basis.get_dofs(lambda x: np.isclose(x[0], 0.0)).all()
    tip = int(np.flatnonzero(np.isclose(mesh.p[0], nelx) & np.isclose(mesh.p[1], nely / 2))[0])

    @BilinearForm
    def scaled(u, v, w):
        eps = sym_grad(u)
        return w["s"] * ddot(2 * mu * eps + lam * eye(trace(eps), 2), sym_grad(v))

    def skfem_whole():
        scale = 1e-9 + dens[rows, cols] ** 3 * (1 - 1e-9)
        K = asm(scaled, basis, s=field_basis.interpolate(scale))
        fk = np.zeros(basis.N)
        fk[basis.nodal_dofs[1, tip]] = -1.0
        u = solve(*condense(K, fk, D=left))
        return float(fk @ u)
    out["skfem_assemble_ms"], c = timed(skfem_whole, max(5, args.repeats // 5))
    out["skfem_assemble_rel_diff"] = abs(c - ref) / ref

    sys.path.extend(args.torchfem_path)  # after the venv: its numpy and torch stay the ones in use
    try:
        import torch
        import torchfem
        from torchfem.materials import IsotropicElasticityPlaneStress

        torch.set_num_threads(1)
        torch.set_default_dtype(torch.float64)
        nodes = torch.tensor(mesh.p.T, dtype=torch.float64)
        elements = torch.tensor(mesh.t.T, dtype=torch.int64)
        x0, y0 = nodes[elements[:, :3], 0], nodes[elements[:, :3], 1]
        clockwise = (x0[:, 1] - x0[:, 0]) * (y0[:, 2] - y0[:, 0]) - (y0[:, 1] - y0[:, 0]) * (x0[:, 2] - x0[:, 0]) < 0
        elements[clockwise] = elements[clockwise].flip(1)  # torch-fem wants counter-clockwise corners
        model = torchfem.Planar(nodes, elements, IsotropicElasticityPlaneStress(E=1.0, nu=0.3))
        model.constraints[nodes[:, 0] == 0.0, :] = True
        model.forces[tip, 1] = -1.0

        def tfem():
            model.thickness[:] = torch.tensor(1e-9 + dens[rows, cols] ** 3 * (1 - 1e-9))
            u, fr, *_ = model.solve()
            return float((model.forces * u).sum())
        out["torchfem_ms"], c = timed(tfem, max(5, args.repeats // 5))
        out["torchfem_rel_diff"] = abs(c - ref) / ref
        out["torchfem_version"] = getattr(torchfem, "__version__", "0.14.0")
    except Exception as e:  # noqa: BLE001 - a missing optional peer is reported, not fatal
        out["torchfem"] = f"not measured: {type(e).__name__}: {e}"
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
