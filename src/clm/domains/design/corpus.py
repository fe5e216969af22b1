"""The design corpus: SIMP's designs for random load cases of the family, made by the project.

File format (version 1): one safetensors file whose tensors are

- ``grey`` (N, nely, nelx) float32: SIMP's final physical densities;
- ``design`` (N, nely, nelx) uint8: the grey design made black and white at its volume;
- ``compliance_grey``, ``compliance`` (N,) float64: of the grey (penalised) and the black-and-white design;
- ``solves`` (N,) int32: FE solves SIMP used; ``heldout`` (N,) uint8: 1 for the held-out split;

and whose metadata holds one JSON header under ``"clm_design"``: format name,
version, grid, volume fraction, the SIMP settings, the seed, the load cases
(one JSON object each, in order) and the seconds it took. No pickle, no npz.

Deterministic: the load cases come from ``numpy.random.default_rng(seed)``
(duplicates dropped), SIMP is deterministic; the held-out split is the last
``heldout`` load cases drawn. Cached by its settings (the file name carries
them), so a second call reads the file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from clm.core.errors import UserError
from clm.core.rundir import atomic_write_bytes
from clm.domains.design.fe import FESolver
from clm.domains.design.loadcase import MAX_GRID, MIN_GRID, LoadCase, sample_load_case
from clm.domains.design.simp import binarize, simp

FORMAT, VERSION = "clm-design-corpus", 1


@dataclass
class DesignCorpus:
    load_cases: list[LoadCase]
    grey: np.ndarray
    design: np.ndarray
    compliance_grey: np.ndarray
    compliance: np.ndarray
    solves: np.ndarray
    heldout: np.ndarray  # bool
    header: dict

    def split(self, heldout: bool) -> np.ndarray:
        return np.flatnonzero(self.heldout == heldout)

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.header["nelx"]), int(self.header["nely"])


def corpus_name(n_train: int, n_heldout: int, nelx: int, nely: int, volfrac: float, seed: int, max_iter: int) -> str:
    return f"design-v{VERSION}-{nelx}x{nely}-vf{volfrac:g}-n{n_train}+{n_heldout}-seed{seed}-it{max_iter}.safetensors"


def build_corpus(n_train: int, n_heldout: int, nelx: int = 32, nely: int = 16, volfrac: float = 0.4, seed: int = 0,
                 max_iter: int = 100, progress=None) -> DesignCorpus:
    """SIMP (density filter rmin 1.5, penalty 3, OC) on ``n_train + n_heldout`` distinct random load cases."""
    rng = np.random.default_rng(seed)
    cases: list[LoadCase] = []
    seen: set[str] = set()
    while len(cases) < n_train + n_heldout:
        lc = sample_load_case(rng, nelx, nely, volfrac)
        if lc.key() not in seen:
            seen.add(lc.key())
            cases.append(lc)
    solver = FESolver(nelx, nely)
    t0 = time.perf_counter()
    grey, design, cg, cb, solves = [], [], [], [], []
    for k, lc in enumerate(cases):
        r = simp(lc, solver, max_iter=max_iter)
        b = binarize(r.density, volfrac)
        grey.append(np.ascontiguousarray(r.density, np.float32))
        design.append(b.astype(np.uint8))
        cg.append(r.compliance)
        cb.append(solver.compliance(b, lc))
        solves.append(r.iterations + 1)
        if progress is not None:
            progress(k + 1, len(cases))
    header = {"format": FORMAT, "version": VERSION, "nelx": nelx, "nely": nely, "volfrac": volfrac, "seed": seed,
              "simp": {"penal": 3.0, "rmin": 1.5, "filter": "density", "update": "OC", "move": 0.2, "tol": 0.01,
                       "max_iter": max_iter},
              "n_train": n_train, "n_heldout": n_heldout, "seconds": round(time.perf_counter() - t0, 3),
              "load_cases": [lc.to_json() for lc in cases]}
    heldout = np.zeros(len(cases), bool)
    heldout[n_train:] = True
    return DesignCorpus(cases, np.stack(grey), np.stack(design), np.asarray(cg), np.asarray(cb),
                        np.asarray(solves, np.int32), heldout, header)


def write_corpus(path: Path, c: DesignCorpus) -> None:
    tensors = {"grey": torch.from_numpy(np.ascontiguousarray(c.grey)), "design": torch.from_numpy(np.ascontiguousarray(c.design)),
               "compliance_grey": torch.from_numpy(c.compliance_grey), "compliance": torch.from_numpy(c.compliance),
               "solves": torch.from_numpy(c.solves), "heldout": torch.from_numpy(c.heldout.astype(np.uint8))}
    atomic_write_bytes(Path(path), save(tensors, metadata={"clm_design": json.dumps(c.header)}))


def read_corpus(path: Path, nelx: int | None = None, nely: int | None = None) -> DesignCorpus:
    """Read a corpus file; a wrong format, version or grid is a UserError (exit 2) naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"design corpus {path} does not exist: make one with `clm design corpus --out {path}`",
                        exit_code=2)
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a safetensors design corpus ({e})", exit_code=2) from None
    try:
        header = json.loads(meta["clm_design"])
    except (KeyError, json.JSONDecodeError):
        raise UserError(f"{path}: no clm_design header in its metadata: not a design corpus", exit_code=2) from None
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise UserError(f"{path}: header format/version {header.get('format')}/{header.get('version')}, expected "
                        f"{FORMAT}/{VERSION}: remake it with `clm design corpus`", exit_code=2)
    if nelx is not None and (header["nelx"], header["nely"]) != (nelx, nely):
        raise UserError(f"{path}: header nelx x nely is {header['nelx']}x{header['nely']}, but this run's grid is "
                        f"{nelx}x{nely}: make a corpus of that grid (`clm design corpus --grid {nelx}x{nely}`) or "
                        f"set grid={header['nelx']}x{header['nely']}", exit_code=2)
    cases = [LoadCase.from_json(d, f"{path}: load case {i}") for i, d in enumerate(header["load_cases"])]
    need = ("grey", "design", "compliance_grey", "compliance", "solves", "heldout")
    if missing := [k for k in need if k not in tensors]:
        raise UserError(f"{path}: tensors {', '.join(missing)} missing", exit_code=2)
    arr = {k: tensors[k].numpy() for k in need}
    if any(len(a) != len(cases) for a in arr.values()) or arr["design"].shape[1:] != (header["nely"], header["nelx"]):
        raise UserError(f"{path}: tensor shapes do not match the header's {len(cases)} load cases of "
                        f"{header['nelx']}x{header['nely']}", exit_code=2)
    return DesignCorpus(cases, arr["grey"], arr["design"], arr["compliance_grey"], arr["compliance"], arr["solves"],
                        arr["heldout"].astype(bool), header)


def cached_corpus(cache_dir: Path, n_train: int, n_heldout: int, nelx: int, nely: int, volfrac: float, seed: int = 0,
                  max_iter: int = 100, progress=None) -> tuple[DesignCorpus, Path, bool]:
    """(the corpus, its file, whether it was read from the cache)."""
    path = Path(cache_dir) / corpus_name(n_train, n_heldout, nelx, nely, volfrac, seed, max_iter)
    if path.is_file():
        return read_corpus(path, nelx, nely), path, True
    c = build_corpus(n_train, n_heldout, nelx, nely, volfrac, seed, max_iter, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_corpus(path, c)
    return c, path, False


def default_cache_dir() -> Path:
    """``$CLM_CACHE/design`` (default ``~/.cache/clm/design``): where generated corpora are kept."""
    return Path(os.environ.get("CLM_CACHE", "~/.cache/clm")).expanduser() / "design"


def parse_grid(text: str, where: str = "--grid") -> tuple[int, int]:
    """``"32x16"`` -> (nelx, nely), within the domain's sizes."""
    try:
        nelx, nely = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise UserError(f"{where} {text!r}: give NELXxNELY, e.g. 32x16", exit_code=2) from None
    if not (MIN_GRID[0] <= nelx <= MAX_GRID[0] and MIN_GRID[1] <= nely <= MAX_GRID[1]):
        raise UserError(f"{where} {text!r}: the grid must lie within {MIN_GRID[0]}x{MIN_GRID[1]} .. "
                        f"{MAX_GRID[0]}x{MAX_GRID[1]}", exit_code=2)
    return nelx, nely
