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


class DeferredInterrupt:
    """Hold Ctrl-C (SIGINT) and SIGTERM until the caller reaches a safe point.

    Inside ``with DeferredInterrupt() as stop:`` the first signal only sets
    ``stop.requested``; the loop checks it between units of work (a vector
    step with its training burst, a CLM round), saves a whole checkpoint and
    stops, so that resuming continues exactly. A second signal raises
    ``KeyboardInterrupt`` at once (the last checkpoint stays whole: saves are
    atomic). Outside the main thread signals cannot be caught and nothing is
    deferred."""

    def __init__(self):
        self.requested = False
        self._old: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> DeferredInterrupt:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
