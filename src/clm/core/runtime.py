"""Seeding, devices and thread counts."""

from __future__ import annotations

import random

import numpy as np
import threadpoolctl
import torch

from clm.core.errors import UserError


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a NumPy generator for the caller's own draws."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (error when absent) or ``auto`` (cuda when present)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("device 'cuda' asked for, but torch sees no CUDA GPU; use device=cpu or device=auto", 2)
        return torch.device(name)
    raise UserError(f"unknown device '{name}': use cpu, cuda or auto", 2)


def set_threads(n: int = 0) -> int:
    """Set torch's intra-op threads. ``0`` picks 1: the networks here are small,
    and on a busy 2-core machine a second OpenMP thread spinning for a core
    made a DQN run 37x slower (measured: 33 vs 1,240 steps/s)."""
    if n <= 0:
        n = 1
    torch.set_num_threads(n)
    # NumPy's BLAS (the DQN acts through it) gets the same limit.
    threadpoolctl.threadpool_limits(limits=n, user_api="blas")
    return n


def rng_state() -> dict:
    """The global RNG states (Python, NumPy, torch) for a checkpoint."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
