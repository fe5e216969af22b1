"""The design domain's judge: the FE solve against closed forms and scikit-fem's own assembly,
SIMP against the 88-line code's published MBB figures, the topology descriptors, bad input."""

import numpy as np
import pytest
from skfem import Basis, BilinearForm, ElementQuad0, ElementQuad1, ElementVector, MeshQuad, asm, condense, solve
from skfem.helpers import ddot, eye, sym_grad, trace

from clm.core.errors import UserError
from clm.domains.design.fe import FESolver, element_stiffness, plane_stress_lame
from clm.domains.design.loadcase import LoadCase, PointLoad, parse_load, sample_load_case
from clm.domains.design.simp import binarize, simp
from clm.domains.design.topology import count_members, describe


def _q4_stiffness_by_hand(E=1.0, nu=0.3):
    """The bilinear square's plane-stress stiffness by 2x2 Gauss quadrature written out (corners LL, LR, UR, UL)."""
    D = E / (1 - nu ** 2) * np.array([[1, nu, 0], [nu, 1, 0], [0, 0, (1 - nu) / 2]])
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
    K = np.zeros((8, 8))
    g = 1 / np.sqrt(3)
    for xi in (-g, g):
        for eta in (-g, g):
            dN = np.array([[c[0] * (1 + c[1] * eta) / 4, c[1] * (1 + c[0] * xi) / 4] for c in corners])  # d/dxi, d/deta
            dN = dN * 2.0  # the unit square: x = (xi + 1) / 2
            B = np.zeros((3, 8))
            B[0, 0::2], B[1, 1::2] = dN[:, 0], dN[:, 1]
            B[2, 0::2], B[2, 1::2] = dN[:, 1], dN[:, 0]
            K += B.T @ D @ B * 0.25  # det J of the unit square
    return K


def test_element_stiffness_from_scikit_fem_is_the_plane_stress_q4():
    assert np.allclose(element_stiffness(), _q4_stiffness_by_hand(), atol=1e-12)


def _end_loaded_cantilever(nelx, nely):
    """Unit shear force spread over the free end (consistent nodal loads); compliance = mean tip deflection."""
    w = np.full(nely + 1, 1.0 / nely)
    w[[0, -1]] = 0.5 / nely
    loads = tuple(PointLoad(nelx, iy, 0.0, -float(w[iy])) for iy in range(nely + 1))
    return LoadCase(nelx, nely, "cantilever", loads, 0.5)


def test_cantilever_tip_deflection_converges_to_the_timoshenko_beam():
    # Geometrically similar beams (L/h = 4) on finer meshes: in plane stress with unit thickness the tip
    # deflection under P depends on L/h only, so the three grids are one beam at element sizes h/8, h/16, h/32.
    d = [FESolver(nx, ny).compliance(np.ones((ny, nx)), _end_loaded_cantilever(nx, ny)) for nx, ny in
         [(32, 8), (64, 16), (128, 32)]]
    ratio = (d[1] - d[0]) / (d[2] - d[1])
    assert 3.0 < ratio < 5.0  # the bilinear element's error falls as (element size)^2
    extrapolated = d[2] + (d[2] - d[1]) / (ratio - 1)  # Richardson
    E, nu, L, h = 1.0, 0.3, 4.0, 1.0
    timoshenko = L ** 3 / (3 * E * h ** 3 / 12) + L / (5 / 6 * E / (2 * (1 + nu)) * h)
    # the beam formula's root is free to warp; the FE root is clamped (a little stiffer): < 1 % here
    assert abs(extrapolated - timoshenko) / timoshenko < 0.01
    # and the default grid's own discretisation error (the Richardson estimate) is below 1 %
    assert abs(d[1] - extrapolated) / extrapolated < 0.01


def test_solver_agrees_with_scikit_fem_assembling_the_whole_grid():
    """scikit-fem's own route (its linear-elasticity example: asm, condense, solve) on a density-scaled grid."""
    rng = np.random.default_rng(3)
    nelx, nely = 16, 8
    dens = rng.uniform(0.2, 1.0, (nely, nelx))
    lc = LoadCase(nelx, nely, "cantilever", (PointLoad(16, 8, 0.3, -1.0),), 0.5).validate()
    ours = FESolver(nelx, nely).compliance(dens, lc)
    mesh = MeshQuad.init_tensor(np.arange(nelx + 1.0), np.arange(nely + 1.0))
    basis = Basis(mesh, ElementVector(ElementQuad1()), intorder=2)
    centre = mesh.p[:, mesh.t].mean(1)  # element centres: x, y (y up)
    scale = 1e-9 + dens[(nely - 1 - np.floor(centre[1])).astype(int), np.floor(centre[0]).astype(int)] ** 3 * (1 - 1e-9)
    lam, mu = plane_stress_lame(1.0, 0.3)

    @BilinearForm
    def scaled_elasticity(u, v, w):  # linear_elasticity's form with each element's stiffness scale
        eps = sym_grad(u)
        return w["s"] * ddot(2 * mu * eps + lam * eye(trace(eps), 2), sym_grad(v))

    K = asm(scaled_elasticity, basis, s=basis.with_element(ElementQuad0()).interpolate(scale))
    left = basis.get_dofs(lambda x: np.isclose(x[0], 0.0)).all()
    tip = int(np.flatnonzero(np.isclose(mesh.p[0], nelx) & np.isclose(mesh.p[1], 0.0))[0])  # y = 0: the bottom
    f = np.zeros(basis.N)
    f[basis.nodal_dofs[0, tip]], f[basis.nodal_dofs[1, tip]] = 0.3, -1.0
    u = solve(*condense(K, f, D=left))
    assert ours == pytest.approx(float(f @ u), rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("filter,published", [("sensitivity", 216.81), ("density", 233.71)])
def test_simp_reproduces_the_88_line_mbb_beam(filter, published):
    """Andreassen et al. 2011, the half MBB beam: nelx=60, nely=20, volfrac=0.5, penal=3, rmin=2.4
    (0.04 nelx, the paper's setting), ft=1 sensitivity / ft=2 density filter; their reported compliance
    is that of the last iteration."""
    lc = LoadCase(60, 20, "mbb", (PointLoad(0, 0, 0.0, -1.0),), 0.5).validate()
    r = simp(lc, rmin=2.4, filter=filter, max_iter=500)
    assert r.history[-1] == pytest.approx(published, rel=0.01)
    assert r.density.mean() == pytest.approx(0.5, abs=1e-3)


def test_simp_lowers_compliance_and_keeps_volume():
    lc = sample_load_case(np.random.default_rng(1), 16, 8)
    r = simp(lc, max_iter=40)
    assert r.history[-1] < r.history[0] and np.all(np.isfinite(r.history))
    assert r.density.mean() == pytest.approx(lc.volfrac, abs=2e-3)
    b = binarize(r.density, lc.volfrac)
    assert b.sum() == round(lc.volfrac * b.size)


def test_topology_counts_holes_members_and_islands():
    lc = LoadCase(16, 8, "cantilever", (PointLoad(16, 4, 0.0, -1.0),), 0.5).validate()
    frame = np.zeros((8, 16))
    frame[[0, 7], :] = 1
    frame[:, [0, 15]] = 1  # a closed rectangle: one hole
    t = describe(frame, lc)
    assert (t.holes, t.pieces, t.islands, t.connected) == (1, 1, 0, True)
    frame[3:5, 5:8] = 1  # a floating block inside
    t = describe(frame, lc)
    assert (t.pieces, t.islands, t.connected) == (2, 1, False)
    bar = np.zeros((8, 16))
    bar[4, :] = 1
    assert count_members(bar > 0) == 1
    cross = bar.copy()
    cross[:, 8] = 1
    assert count_members(cross > 0) == 4  # four arms from one junction
    assert describe(bar, lc).connected  # row 4 touches node (16, 4) of the load and the clamped left edge
    short = bar.copy()
    short[4, 12:] = 0  # stops short of the load
    assert describe(short, lc).connected is False
    assert describe(np.zeros((8, 16)), lc).connected is False


def test_bad_input_names_what_and_where():
    with pytest.raises(UserError, match="outside the 16x8 grid") as e:
        LoadCase(16, 8, "cantilever", (PointLoad(17, 4, 0.0, -1.0),), 0.5).validate()
    assert e.value.exit_code == 2
    with pytest.raises(UserError, match=r"must lie in \(0, 1\)"):
        LoadCase(16, 8, "cantilever", (PointLoad(16, 4, 0.0, -1.0),), 1.0).validate()
    with pytest.raises(UserError, match="singular"):  # one fixed dof: free to move
        LoadCase(16, 8, "custom", (PointLoad(16, 4, 0.0, -1.0),), 0.5, extra_fixed=(0,)).validate()
    with pytest.raises(UserError, match="singular"):
        FESolver(16, 8).solve(np.ones((8, 16)), LoadCase(16, 8, "custom", (PointLoad(16, 4, 0, -1),), 0.5, (0, 1)))
    with pytest.raises(UserError, match="not a node"):
        parse_load("40,3,0,-1", 32, 16)
    with pytest.raises(UserError, match="four numbers"):
        parse_load("1,2,3", 32, 16)
    with pytest.raises(UserError, match="does not match"):
        FESolver(16, 8).solve(np.ones((16, 32)), LoadCase(32, 16, "mbb", (PointLoad(0, 0, 0, -1),), 0.5))


def test_no_nan_compliance_even_for_an_empty_design():
    lc = sample_load_case(np.random.default_rng(0), 16, 8)
    s = FESolver(16, 8)
    c = s.compliance(np.zeros((8, 16)), lc)
    assert np.isfinite(c) and c > 1e6  # void everywhere: huge but finite (Emin > 0)
