"""What a black-and-white design is, beyond its compliance: volume, whether
its material joins every load to the supports, and its topology (holes and
members), the descriptors that tell one design idea from another.

Material is an element of density > 0.5. Material pieces are 4-connected
(elements sharing an edge: two squares touching at a corner only make a
hinge, not a member); void regions 8-connected, the complementary rule, so
that every hole has one closed ring of material around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from clm.domains.design.loadcase import LoadCase

FOUR = ndimage.generate_binary_structure(2, 1)
EIGHT = ndimage.generate_binary_structure(2, 2)


def node_elements(ix: int, iy: int, nelx: int, nely: int) -> list[tuple[int, int]]:
    """The (row, column) of the up to four elements around node ``(ix, iy)``."""
    return [(ey, ex) for ey in (iy - 1, iy) for ex in (ix - 1, ix) if 0 <= ey < nely and 0 <= ex < nelx]


@dataclass(frozen=True)
class Topology:
    volume: float  # material fraction
    pieces: int  # 4-connected material pieces
    islands: int  # pieces that touch neither a load nor a support (floating)
    connected: bool  # one piece carries every load to the supports, and there is no other piece
    holes: int  # void regions enclosed by material (not touching the grid's border)
    members: int  # bars of the skeleton between junctions and ends

    @property
    def key(self) -> tuple[int, int]:
        """The topology class a design belongs to (for novelty and the creativity count)."""
        return (self.holes, self.members)


def describe(design: np.ndarray, lc: LoadCase) -> Topology:
    solid = np.asarray(design) > 0.5
    nely, nelx = solid.shape
    labels, pieces = ndimage.label(solid, FOUR)

    def touching(nodes) -> set[int]:
        return {int(labels[e]) for ix, iy in nodes for e in node_elements(ix, iy, nelx, nely) if labels[e]}

    load_sets = [touching([(p.ix, p.iy)]) for p in lc.loads]
    support_pieces = touching(lc.support_nodes())
    anchored = set().union(*load_sets) | support_pieces if load_sets else support_pieces
    islands = sum(1 for k in range(1, pieces + 1) if k not in anchored)
    carrying = support_pieces.intersection(*load_sets) if load_sets else set()
    connected = pieces == 1 and bool(carrying) and _reaches_every_support_kind(labels, lc)
    void_labels, n_void = ndimage.label(~solid, EIGHT)
    border = set(np.unique(np.concatenate([void_labels[0], void_labels[-1], void_labels[:, 0], void_labels[:, -1]])).tolist())
    holes = sum(1 for k in range(1, n_void + 1) if k not in border)
    return Topology(float(solid.mean()), int(pieces), int(islands), bool(connected), int(holes), count_members(solid))


def _reaches_every_support_kind(labels: np.ndarray, lc: LoadCase) -> bool:
    """The piece must meet the supports that hold it: for the MBB beam both the
    symmetry edge and the roller (a piece on the symmetry edge alone can still slide down)."""
    nely, nelx = labels.shape
    if lc.support != "mbb":
        return True
    roller = [labels[e] for e in node_elements(lc.nelx, lc.nely, nelx, nely)]
    left = labels[:, 0]
    return bool(any(roller) and left.any())


def count_members(solid: np.ndarray) -> int:
    """Bars of the material's skeleton: its pixels less the junctions (3 or
    more skeleton neighbours), counted as 8-connected runs; a piece with no
    junction is one member."""
    if not solid.any():
        return 0
    # a one-element frame of void, so that material on the border gets a skeleton along it too
    skel = skeletonize(np.pad(solid, 1))
    neighbours = ndimage.convolve(skel.astype(np.int32), np.ones((3, 3), np.int32), mode="constant") - skel
    junctions = skel & (neighbours >= 3)
    # grow junctions by one pixel so that a thick junction (several adjacent pixels) cuts cleanly
    cut = skel & ~ndimage.binary_dilation(junctions, EIGHT)
    _, n = ndimage.label(cut, EIGHT)
    return int(n)
