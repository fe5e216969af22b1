"""Checkpoints that hold data only: loading one never runs code.

A checkpoint is a folder of four files:

- ``weights.safetensors``: the networks' tensors;
- ``state.json``: everything else as a JSON tree (counters, RNG states,
  optimiser settings, archive records, ...), where each array is a
  reference into
- ``state.safetensors``: the arrays of that tree (replay buffers, optimiser
  moments, env states), as tensors;
- ``meta.json``: the format version, the kind of checkpoint, and the size
  and SHA-256 of each other file, checked on load (a truncated or edited
  file is an error that names it).

There is no pickle anywhere (no ``torch.load`` either): a state may hold
only ``None``, bools, ints, floats, strings, bytes, lists, tuples, dicts,
NumPy arrays and scalars and torch tensors; anything else is refused when
saving. Writing is all or nothing: the files go to a fresh sibling folder,
which then replaces the old one by renames, so a crash leaves either the old
or the new checkpoint whole.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from clm.core.errors import UserError
from clm.core.rundir import atomic_write_bytes, atomic_write_text, checkpoint_exists  # noqa: F401 - part of this module's API

FORMAT_VERSION = 2
FILES = ("weights.safetensors", "state.json", "state.safetensors")


# -- the state codec: a tree of plain data <-> (JSON, arrays) ------------------------------------
def encode_state(state: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Split ``state`` into a JSON-safe tree and its arrays (name -> tensor)."""
    arrays: dict[str, torch.Tensor] = {}

    def enc(v: Any, path: str) -> Any:
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int):
            return v
        if isinstance(v, float):
            return v if math.isfinite(v) else {"__float__": repr(v)}
        if isinstance(v, np.generic):
            return enc(v.item(), path)
        if isinstance(v, bytes):
            return {"__bytes__": v.hex()}
        if isinstance(v, torch.Tensor):
            name = f"t{len(arrays)}"
            arrays[name] = v.detach().cpu().clone()  # its own storage: safetensors refuses shared ones
            return {"__tensor__": name}
        if isinstance(v, np.ndarray):
            if v.dtype == object:
                raise TypeError(f"checkpoint state {path}: object arrays cannot be saved without pickle")
            name = f"a{len(arrays)}"
            arrays[name] = torch.from_numpy(np.ascontiguousarray(v).copy())
            return {"__ndarray__": name, "dtype": v.dtype.str}
        if isinstance(v, tuple):
            return {"__tuple__": [enc(x, f"{path}[{i}]") for i, x in enumerate(v)]}
        if isinstance(v, list):
            return [enc(x, f"{path}[{i}]") for i, x in enumerate(v)]
        if isinstance(v, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in v):
                return {k: enc(x, f"{path}.{k}") for k, x in v.items()}
            return {"__dict__": [[enc(k, path), enc(x, f"{path}[{k!r}]")] for k, x in v.items()]}
        raise TypeError(f"checkpoint state {path} is a {type(v).__name__}: only plain data (numbers, strings, "
                        f"lists, dicts, arrays, tensors) can be saved")

    return enc(state, "state"), arrays


def decode_state(tree: Any, arrays: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`encode_state`."""

    def dec(v: Any) -> Any:
        if isinstance(v, list):
            return [dec(x) for x in v]
        if not isinstance(v, dict):
            return v
        if "__tensor__" in v:
            return arrays[v["__tensor__"]]
        if "__ndarray__" in v:
            return arrays[v["__ndarray__"]].numpy().astype(np.dtype(v["dtype"]), copy=False)
        if "__tuple__" in v:
            return tuple(dec(x) for x in v["__tuple__"])
        if "__dict__" in v:
            return {_hashable(dec(k)): dec(x) for k, x in v["__dict__"]}
        if "__float__" in v:
            return float(v["__float__"])
        if "__bytes__" in v:
            return bytes.fromhex(v["__bytes__"])
        return {k: dec(x) for k, x in v.items()}

    return dec(tree)


def _hashable(k: Any) -> Any:
    return tuple(_hashable(x) for x in k) if isinstance(k, list) else k


# -- folders ---------------------------------------------------------------------------------------
def save_checkpoint(folder: Path, weights: dict[str, torch.Tensor], state: dict[str, Any],
                    meta: dict[str, Any] | None = None) -> None:
    """Write ``folder`` (weights, state, meta), all or nothing.

    The files go to a fresh sibling folder first; then the old folder is moved
    aside, the new one renamed into place and the old one deleted. A crash at
    any point leaves either the old or the new checkpoint whole (``load``
    falls back to ``<folder>.old`` when ``folder`` is missing).
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # safetensors refuses tensors that share storage (views of a flat buffer): copy those.
    flat = {k: _own_storage(v.detach().cpu().contiguous()) for k, v in weights.items()}
    tree, arrays = encode_state(state)
    blobs = {"weights.safetensors": st_save(flat),
             "state.json": json.dumps(tree, separators=(",", ":")).encode(),
             "state.safetensors": st_save({k: _own_storage(v) for k, v in arrays.items()})}
    new = folder.with_name(folder.name + ".new")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir()
    for name, data in blobs.items():
        atomic_write_bytes(new / name, data)
    info = {"format_version": FORMAT_VERSION, **(meta or {}),
            "files": {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                      for name, data in blobs.items()}}
    atomic_write_text(new / "meta.json", json.dumps(info, indent=2) + "\n")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)


def strip_prefix(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``weights`` whose name starts with ``prefix``, without it
    (one network's state dict out of a checkpoint holding several)."""
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}


def read_meta(folder: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint folder actually present (``folder`` or its ``.old``) and its meta.json."""
    folder = Path(folder)
    if not folder.exists() and folder.with_name(folder.name + ".old").exists():
        folder = folder.with_name(folder.name + ".old")  # a crash between the two renames
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise UserError(f"no checkpoint in {folder} (meta.json missing): the run may not have saved one yet")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"checkpoint {meta_path} is corrupt: not valid JSON")
    if not isinstance(meta, dict):
        raise UserError(f"checkpoint {meta_path} is corrupt: not a JSON object")
    version = meta.get("format_version")
    if version == 1:
        raise UserError(f"checkpoint {folder} was written by an older clm that stored Python pickles; it is not "
                        f"loaded, since a pickle can run code. Start a new run (or load it with the clm that wrote it)")
    if version != FORMAT_VERSION:
        raise UserError(f"checkpoint {folder} has format version {version}, this clm reads version "
                        f"{FORMAT_VERSION}: it comes from an incompatible clm version")
    return folder, meta


def _read_checked(folder: Path, name: str, meta: dict[str, Any]) -> bytes:
    path = folder / name
    expected = (meta.get("files") or {}).get(name)
    if not isinstance(expected, dict):
        raise UserError(f"checkpoint {folder}/meta.json lists no checksum for {name}: the checkpoint is corrupt")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"checkpoint file {path} cannot be read ({e.strerror}); resume from another run")
    if len(raw) != expected.get("bytes") or hashlib.sha256(raw).hexdigest() != expected.get("sha256"):
        raise UserError(f"checkpoint file {path} does not match the checksum in meta.json (truncated or "
                        f"changed since it was written); resume from another run")
    return raw


def load_checkpoint(folder: Path, map_location: str | torch.device = "cpu",
                    with_state: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Read a checkpoint folder: (weights, state, meta). Every file is
    checked against its checksum; a missing or corrupt one is a UserError."""
    folder, meta = read_meta(folder)
    try:
        weights = st_load(_read_checked(folder, "weights.safetensors", meta))
    except (SafetensorError, ValueError) as e:
        raise UserError(f"checkpoint {folder / 'weights.safetensors'} is corrupt ({e}); resume from another run")
    weights = {k: v.to(map_location) for k, v in weights.items()}
    state: dict[str, Any] = {}
    if with_state:
        try:
            tree = json.loads(_read_checked(folder, "state.json", meta))
            arrays = st_load(_read_checked(folder, "state.safetensors", meta))
            state = decode_state(tree, arrays)
        except (SafetensorError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"checkpoint {folder} holds a corrupt state ({type(e).__name__}: {e}); "
                            f"resume from another run")
    return weights, state, meta


def _own_storage(t: torch.Tensor) -> torch.Tensor:
    return t if t.untyped_storage().nbytes() == t.nbytes and t.storage_offset() == 0 else t.clone()
