"""Pictures of designs: material in black, supports as triangles, loads as red arrows; strain-energy heat maps."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from clm.domains.design.loadcase import LoadCase  # noqa: E402


def draw_design(ax, design: np.ndarray, lc: LoadCase, title: str = "", energy: np.ndarray | None = None) -> None:
    """One design on ``ax`` (y down, as the grid's rows): black material, or with ``energy`` the log strain
    energy of each element (material elements' energy, scaled by their stiffness) as a heat map."""
    nely, nelx = design.shape
    if energy is None:
        ax.imshow(1 - np.asarray(design, float), cmap="gray", vmin=0, vmax=1, extent=(0, nelx, nely, 0),
                  interpolation="nearest")
    else:
        e = np.where(np.asarray(design) > 0.5, np.maximum(energy, 1e-12), np.nan)
        ax.imshow(np.log10(e), cmap="inferno", extent=(0, nelx, nely, 0), interpolation="nearest")
    fixed = lc.fixed_dofs()
    for ix, iy in lc.support_nodes():
        n = lc.node(ix, iy)
        both = 2 * n in fixed and 2 * n + 1 in fixed
        ax.plot(ix, iy, marker=">" if 2 * n in fixed and not both else ("^" if not both else "s"),
                color="tab:blue", markersize=3.5 if both else 5, clip_on=False)
    scale = 0.18 * max(nelx, nely)
    for p in lc.loads:
        norm = float(np.hypot(p.fx, p.fy)) or 1.0
        dx, dy = p.fx / norm * scale, -p.fy / norm * scale  # y down on the picture: a force up points to -y
        ax.annotate("", xy=(p.ix, p.iy), xytext=(p.ix - dx, p.iy - dy),
                    arrowprops=dict(arrowstyle="-|>", color="red", lw=1.6), annotation_clip=False)
    ax.set_xlim(-1.5, nelx + 1.5)
    ax.set_ylim(nely + 1.5, -1.5)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(title, fontsize=7)


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def grid_figure(panels: list[list[dict]], col_titles: list[str] | None = None):
    """A figure of rows of panels; each panel a dict of :func:`draw_design`'s arguments (``None``: empty)."""
    rows, cols = len(panels), max(len(r) for r in panels)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 1.5 * rows + 0.3), squeeze=False)
    for r, row in enumerate(panels):
        for c in range(cols):
            ax = axes[r][c]
            if c < len(row) and row[c] is not None:
                draw_design(ax, **row[c])
            else:
                ax.axis("off")
    if col_titles:
        for c, t in enumerate(col_titles):
            axes[0][c].text(0.5, 1.35, t, transform=axes[0][c].transAxes, ha="center", fontsize=9, weight="bold")
    return fig
