"""A design run's pictures and tables: G vs editor vs SIMP, strain-energy maps, the creative archive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clm.core.rundir import atomic_write_bytes, atomic_write_text
from clm.domains.design.pictures import grid_figure, png_bytes
from clm.domains.design.topology import describe


def _label(name: str, ratio: float, key) -> str:
    return f"{name} {ratio:.3g}x SIMP, h{key[0]} m{key[1]}"


def comparison_panels(domain, episodes: list[dict], energy: bool = False) -> list[list[dict]]:
    """Rows of (G's proposal, the editor's design, SIMP's design) for evaluated held-out episodes."""
    solver = domain.env.solver
    rows = []
    for e in episodes:
        case = e["corpus_case"]
        lc, simp = domain.cases[case], domain.corpus.design[case].astype(np.float32)
        row = []
        for name, design in (("G", e["first"]), ("editor", e["design"]), ("SIMP", simp)):
            sol = solver.solve(design, lc)
            ratio = sol.compliance / domain.corpus.compliance[case]
            key = describe(design, lc).key
            stiff = np.where(design > 0.5, sol.element_energy, 0.0)
            row.append({"design": design, "lc": lc, "title": _label(name, ratio, key),
                        "energy": stiff if energy else None})
        rows.append(row)
    return rows


def write_outputs(domain, run_dir: Path) -> None:
    pictures = Path(run_dir) / "pictures"
    pictures.mkdir(parents=True, exist_ok=True)
    episodes = domain.eval_episodes[:6]
    if episodes:
        titles = ["G's proposal", "after the editor", "SIMP"]
        atomic_write_bytes(pictures / "side_by_side.png", png_bytes(grid_figure(comparison_panels(domain, episodes), titles)))
        atomic_write_bytes(pictures / "energy.png",
                           png_bytes(grid_figure(comparison_panels(domain, episodes, energy=True), titles)))
        atomic_write_text(pictures / "evaluation.jsonl", "".join(
            json.dumps({k: e[k] for k in ("corpus_case", "first_ratio", "ratio", "connected", "creative", "key",
                                          "solves")}) + "\n" for e in domain.eval_episodes))
    records = domain.archive.records
    if records:
        order = np.argsort([r["ratio"] for r in records], kind="stable")[:12]
        panels = [{"design": domain.archive.designs[i].astype(np.float32), "lc": domain.cases[records[i]["case"]],
                   "title": _label(records[i]["source"], records[i]["ratio"], records[i]["key"])} for i in order]
        rows = [panels[i:i + 4] for i in range(0, len(panels), 4)]
        atomic_write_bytes(pictures / "archive.png", png_bytes(grid_figure(rows)))
    atomic_write_text(pictures / "archive.jsonl", "".join(json.dumps(r) + "\n" for r in records))
