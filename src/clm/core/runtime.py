"""Seeding, devices, thread counts and bfloat16 support."""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
from functools import cache
from pathlib import Path

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


#: CPU flags (Linux's /proc/cpuinfo) of native bfloat16 arithmetic: without one, bf16 autocast is emulated
#: and slower than float32
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16(cpuinfo: str) -> bool:
    """Whether a CPU whose /proc/cpuinfo reads ``cpuinfo`` computes bfloat16 natively."""
    flags = {f for line in cpuinfo.splitlines() if line.startswith(("flags", "Features")) for f in line.split()}
    return any(f in flags for f in BF16_CPU_FLAGS)


@cache
def bf16_support(device_type: str) -> tuple[bool, str]:
    """(whether bfloat16 autocast pays on this device, why not)."""
    if device_type == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ok, "" if ok else "this GPU has no bfloat16 support"
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return False, "cannot tell whether this CPU computes bfloat16 natively (no /proc/cpuinfo)"
    if cpu_has_bf16(info.read_text(errors="replace")):
        return True, ""
    return False, f"this CPU has none of the bfloat16 flags {', '.join(BF16_CPU_FLAGS)} (bf16 would be emulated, slower)"


_noted: set[str] = set()


def use_amp(amp: bool, device: torch.device | str) -> bool:
    """``amp`` where bfloat16 autocast pays on ``device``; otherwise False, with a note on stderr
    (once per reason) that the run computes in float32."""
    if not amp:
        return False
    ok, why = bf16_support(torch.device(device).type)
    if not ok and why not in _noted:
        _noted.add(why)
        print(f"note: amp=true asked for bfloat16 autocast, but {why}; computing in float32", file=sys.stderr)
    return ok


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
    cores = os.cpu_count() or 1
    if n > cores:
        print(f"warning: threads={n} is more than this machine's {cores} cores; the extra threads only "
              f"contend for them", file=sys.stderr)
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

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
