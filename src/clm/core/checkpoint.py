"""Checkpoints: weights as safetensors, everything else (optimiser, replay
buffer, counters, RNG states) in a torch pickle beside them. Both are written
to temporary files and renamed, so a good checkpoint is never lost to a crash."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from clm.core.errors import UserError
from clm.core.rundir import atomic_write_bytes, atomic_write_text

FORMAT_VERSION = 1


def save_checkpoint(folder: Path, weights: dict[str, torch.Tensor], state: dict[str, Any],
                    meta: dict[str, Any] | None = None) -> None:
    """Write ``folder``/{weights.safetensors, state.pt, meta.json}, all or nothing.

    The files go to a fresh sibling folder first; then the old folder is moved
    aside, the new one renamed into place and the old one deleted. A crash at
    any point leaves either the old or the new checkpoint whole (``load``
    falls back to ``<folder>.old`` when ``folder`` is missing).
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # safetensors refuses tensors that share storage (views of a flat buffer): copy those.
    flat = {k: _own_storage(v.detach().cpu().contiguous()) for k, v in weights.items()}
    wbytes = st_save(flat)
    buf = io.BytesIO()
    torch.save(state, buf)
    sbytes = buf.getvalue()
    new = folder.with_name(folder.name + ".new")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    atomic_write_bytes(new / "weights.safetensors", wbytes)
    atomic_write_bytes(new / "state.pt", sbytes)
    info = {"format_version": FORMAT_VERSION, "weights_bytes": len(wbytes),
            "state_bytes": len(sbytes), **(meta or {})}
    atomic_write_text(new / "meta.json", json.dumps(info, indent=2) + "\n")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: Path, map_location: str | torch.device = "cpu",
                    with_state: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Read a checkpoint folder; a missing or corrupt one is a UserError."""
    folder = Path(folder)
    if not folder.exists() and folder.with_name(folder.name + ".old").exists():
        folder = folder.with_name(folder.name + ".old")  # a crash between the two renames
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise UserError(f"no checkpoint in {folder} (meta.json missing): the run may not have saved one yet")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        raise UserError(f"checkpoint {folder} is corrupt: meta.json is not valid JSON")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"checkpoint {folder} has format version {meta.get('format_version')}, this clm reads "
            f"version {FORMAT_VERSION}: it comes from an incompatible clm version")
    wpath = folder / "weights.safetensors"
    try:
        raw = wpath.read_bytes()
        if len(raw) != meta.get("weights_bytes", len(raw)):
            raise SafetensorError("size mismatch")
        weights = st_load(raw)
    except (OSError, SafetensorError, ValueError) as e:
        raise UserError(f"checkpoint {wpath} is missing or corrupt ({e}); delete it or resume from another run")
    weights = {k: v.to(map_location) for k, v in weights.items()}
    state: dict[str, Any] = {}
    if with_state:
        spath = folder / "state.pt"
        try:
            state = torch.load(spath, map_location=map_location, weights_only=False)
        except Exception as e:  # torch raises many kinds for a truncated pickle
            raise UserError(f"checkpoint {spath} is missing or corrupt ({type(e).__name__}); resume from another run")
    return weights, state, meta


def _own_storage(t: torch.Tensor) -> torch.Tensor:
    return t if t.untyped_storage().nbytes() == t.nbytes and t.storage_offset() == 0 else t.clone()
