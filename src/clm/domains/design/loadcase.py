"""Load cases of the design domain: a grid, its supports and its point loads.

Conventions (those of Andreassen et al. 2011, so that the classic MBB beam
reads the same here): a design is a ``(nely, nelx)`` array of element
densities, row 0 at the top; node ``(ix, iy)`` (``ix`` in ``0..nelx`` from
the left, ``iy`` in ``0..nely`` from the *top*) is node number
``(nely + 1) * ix + iy``, with degrees of freedom ``2 n`` (x, positive to
the right) and ``2 n + 1`` (y, positive *up*). A user's load point is given
as ``x, y`` with ``y`` measured from the bottom (``iy = nely - y``), the way
one draws a beam.

Supports of the family:

- ``cantilever``: the left edge clamped (both directions of every node);
- ``mbb``: the half MBB beam: the left edge held in x (the symmetry line),
  the bottom-right node held in y (the roller).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from clm.core.errors import UserError

#: the support kinds of the family
SUPPORTS = ("cantilever", "mbb")
#: the grid sizes the domain takes (elements)
MIN_GRID, MAX_GRID = (16, 8), (64, 32)


@dataclass(frozen=True)
class PointLoad:
    """A force ``(fx, fy)`` at node ``(ix, iy)`` (``iy`` from the top; ``fy`` positive up)."""

    ix: int
    iy: int
    fx: float
    fy: float


@dataclass(frozen=True)
class LoadCase:
    """A grid of ``nelx x nely`` elements, its supports, loads and volume fraction."""

    nelx: int
    nely: int
    support: str
    loads: tuple[PointLoad, ...]
    volfrac: float = 0.4
    extra_fixed: tuple[int, ...] = field(default=())  # further fixed dofs (a user's own supports; the tests)

    def validate(self, where: str = "load case") -> "LoadCase":
        """Raise a UserError (exit 2) naming what is wrong and where."""
        if not (MIN_GRID[0] <= self.nelx <= MAX_GRID[0] and MIN_GRID[1] <= self.nely <= MAX_GRID[1]):
            raise UserError(f"{where}: grid {self.nelx}x{self.nely} is outside the domain's sizes "
                            f"{MIN_GRID[0]}x{MIN_GRID[1]} .. {MAX_GRID[0]}x{MAX_GRID[1]} (nelx x nely)", exit_code=2)
        if self.support not in SUPPORTS and not (self.support == "custom" and self.extra_fixed):
            raise UserError(f"{where}: unknown support {self.support!r}: use one of {', '.join(SUPPORTS)}", exit_code=2)
        if not (0.0 < self.volfrac < 1.0) or not np.isfinite(self.volfrac):
            raise UserError(f"{where}: volume fraction {self.volfrac} must lie in (0, 1)", exit_code=2)
        if not self.loads:
            raise UserError(f"{where}: no load: give at least one point load", exit_code=2)
        fixed = set(self.fixed_dofs().tolist())
        for k, p in enumerate(self.loads):
            if not (0 <= p.ix <= self.nelx and 0 <= p.iy <= self.nely):
                raise UserError(f"{where}: load {k + 1} at node x={p.ix}, y={self.nely - p.iy} lies outside the "
                                f"{self.nelx}x{self.nely} grid (x in 0..{self.nelx}, y in 0..{self.nely})", exit_code=2)
            if not (np.isfinite(p.fx) and np.isfinite(p.fy)) or (p.fx == 0 and p.fy == 0):
                raise UserError(f"{where}: load {k + 1} has force ({p.fx}, {p.fy}): it must be finite and non-zero",
                                exit_code=2)
            n = self.node(p.ix, p.iy)
            if {2 * n, 2 * n + 1} <= fixed:
                raise UserError(f"{where}: load {k + 1} at node x={p.ix}, y={self.nely - p.iy} acts on a fully "
                                "fixed support node: move it onto a free edge", exit_code=2)
        if not self.supports_hold():
            raise UserError(f"{where}: the supports ({self.support}) leave the structure free to move (a rigid-body "
                            "motion is unrestrained: the stiffness matrix is singular); fix at least one x and two "
                            "y degrees of freedom, or two x and one y, not all at one point", exit_code=2)
        return self

    # -- degrees of freedom ------------------------------------------------------------------
    def node(self, ix: int, iy: int) -> int:
        return (self.nely + 1) * ix + iy

    @property
    def ndof(self) -> int:
        return 2 * (self.nelx + 1) * (self.nely + 1)

    def fixed_dofs(self) -> np.ndarray:
        left = np.array([self.node(0, iy) for iy in range(self.nely + 1)])
        if self.support == "cantilever":
            dofs = np.concatenate([2 * left, 2 * left + 1])
        elif self.support == "mbb":
            dofs = np.concatenate([2 * left, [2 * self.node(self.nelx, self.nely) + 1]])
        else:
            dofs = np.zeros(0, np.int64)
        return np.unique(np.concatenate([dofs, np.asarray(self.extra_fixed, np.int64)])).astype(np.int64)

    def force(self) -> np.ndarray:
        f = np.zeros(self.ndof)
        for p in self.loads:
            n = self.node(p.ix, p.iy)
            f[2 * n] += p.fx
            f[2 * n + 1] += p.fy
        return f

    def supports_hold(self) -> bool:
        """Whether the fixed dofs stop the three rigid-body motions (x, y, rotation) of the full grid."""
        fixed = self.fixed_dofs()
        n = np.arange(self.ndof // 2)
        x, y = n // (self.nely + 1), self.nely - n % (self.nely + 1)
        modes = np.zeros((self.ndof, 3))
        modes[0::2, 0] = 1.0
        modes[1::2, 1] = 1.0
        modes[0::2, 2], modes[1::2, 2] = -y, x  # a small rotation about the origin
        return bool(len(fixed) and np.linalg.matrix_rank(modes[fixed]) == 3)

    def support_nodes(self) -> list[tuple[int, int]]:
        """``(ix, iy)`` of every node with a fixed dof (the picture's supports, the load path's ends)."""
        nodes = sorted(set((self.fixed_dofs() // 2).tolist()))
        return [(n // (self.nely + 1), n % (self.nely + 1)) for n in nodes]

    # -- plain data ------------------------------------------------------------------------------
    def to_json(self) -> dict:
        d = asdict(self)
        d["loads"] = [asdict(p) for p in self.loads]
        d["extra_fixed"] = list(self.extra_fixed)
        return d

    @staticmethod
    def from_json(d: dict, where: str = "load case") -> "LoadCase":
        try:
            loads = tuple(PointLoad(int(p["ix"]), int(p["iy"]), float(p["fx"]), float(p["fy"])) for p in d["loads"])
            lc = LoadCase(int(d["nelx"]), int(d["nely"]), str(d["support"]), loads, float(d["volfrac"]),
                          tuple(int(v) for v in d.get("extra_fixed", ())))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where}: not a load case ({type(e).__name__}: {e}); expected keys nelx, nely, "
                            "support, loads [{ix, iy, fx, fy}], volfrac", exit_code=2) from None
        return lc.validate(where)

    def key(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)


def free_edge_nodes(nelx: int, nely: int, support: str) -> list[tuple[int, int]]:
    """Nodes on the edges a load of the family may sit on: top, bottom and right (not the supported left edge)."""
    nodes = {(ix, 0) for ix in range(1, nelx + 1)} | {(ix, nely) for ix in range(1, nelx + 1)}
    nodes |= {(nelx, iy) for iy in range(nely + 1)}
    if support == "mbb":
        nodes.discard((nelx, nely))  # the roller
    return sorted(nodes)


def sample_load_case(rng: np.random.Generator, nelx: int = 32, nely: int = 16, volfrac: float = 0.4,
                     supports: tuple[str, ...] = SUPPORTS, max_loads: int = 2) -> LoadCase:
    """A load case of the family: a support kind, one or ``max_loads`` unit
    point loads at distinct random free-edge nodes, each in a random
    direction (one of 16, so that load cases repeat exactly across runs)."""
    support = supports[int(rng.integers(len(supports)))]
    nodes = free_edge_nodes(nelx, nely, support)
    k = int(rng.integers(1, max_loads + 1))
    picks = rng.choice(len(nodes), size=k, replace=False)
    loads = []
    for i in sorted(picks.tolist()):
        angle = 2 * np.pi * int(rng.integers(16)) / 16
        loads.append(PointLoad(nodes[i][0], nodes[i][1], round(float(np.cos(angle)), 6), round(float(np.sin(angle)), 6)))
    return LoadCase(nelx, nely, support, tuple(loads), volfrac).validate()


def parse_load(text: str, nelx: int, nely: int, where: str = "--load") -> PointLoad:
    """``"x,y,fx,fy"`` (``y`` from the bottom, ``fy`` positive up) -> a PointLoad, checked against the grid."""
    parts = text.split(",")
    try:
        x, y, fx, fy = (float(v) for v in parts)
    except ValueError:
        raise UserError(f"{where} {text!r}: expected four numbers x,y,fx,fy (node x in 0..{nelx}, y in 0..{nely} "
                        "from the bottom, force components)", exit_code=2) from None
    if x != int(x) or y != int(y) or not (0 <= x <= nelx and 0 <= y <= nely):
        raise UserError(f"{where} {text!r}: the load point ({x:g}, {y:g}) is not a node of the {nelx}x{nely} grid "
                        f"(x an integer in 0..{nelx}, y an integer in 0..{nely})", exit_code=2)
    return PointLoad(int(x), nely - int(y), fx, fy)
