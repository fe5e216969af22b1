"""Metric logging: TensorBoard, metrics.jsonl and a console progress bar."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from clm.core.rundir import atomic_write_text, dumps_line


class MetricLogger:
    """Writes each logged step to ``metrics.jsonl`` and TensorBoard (``tb/``),
    and drives a tqdm progress bar (steps, steps/s, ETA, latest figures).

    ``quiet=True`` disables the bar (e.g. for ``--json`` output or tests).
    """

    def __init__(self, run_dir: Path, total_steps: int | None = None, quiet: bool = False,
                 tensorboard: bool = True, initial_step: int = 0, unit: str = "step",
                 wandb: str = "", config: dict | None = None, resume: bool = False,
                 listener: Callable[[int, dict[str, Any]], None] | None = None):
        """``resume=True``: the run continues from a checkpoint at ``initial_step``;
        rows logged after it (by the session that was stopped) are dropped, in
        metrics.jsonl and in TensorBoard, so that no step is recorded twice.

        ``listener(step, metrics)`` is called after each row is written (a
        tuning study's pruner reads the run's figures this way); it may raise
        to stop the run."""
        self.run_dir = Path(run_dir)
        self._listener = listener
        if resume:
            _drop_rows_after(self.run_dir / "metrics.jsonl", initial_step)
        self._wandb = None
        if wandb:  # "offline" (no account needed) or "online"
            try:
                import wandb as wandb_lib
            except ImportError:
                from clm.core.errors import UserError

                raise UserError("wandb logging asked for, but the 'wandb' package is not installed: "
                                ".venv/bin/pip install wandb (or set wandb= to turn it off)")
            self._wandb = wandb_lib.init(project="clm", dir=str(self.run_dir), mode=wandb, config=config or {},
                                         name=self.run_dir.name, reinit="finish_previous")
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", buffering=1)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=initial_step + 1 if resume else None)
        self._bar = None
        if not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=initial_step, unit=unit,
                             dynamic_ncols=True, file=sys.stderr, smoothing=0.1)
        self._last_step = initial_step
        self._t0 = time.perf_counter()

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record ``metrics`` (name -> number) at ``step``."""
        row = {"step": int(step), "time": round(time.perf_counter() - self._t0, 3), **metrics}
        self._jsonl.write(dumps_line(row) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in metrics.items() if v is not None}, step=int(step))
        if self._listener is not None:
            self._listener(int(step), metrics)

    def image(self, tag: str, image_hwc, step: int) -> None:
        """An image (H, W, 3 uint8 array) in TensorBoard."""
        if self._tb is not None:
            self._tb.add_image(tag, image_hwc, step, dataformats="HWC")

    def progress(self, step: int, **postfix: Any) -> None:
        """Advance the bar to ``step`` and show ``postfix`` figures."""
        if self._bar is not None:
            self._bar.update(step - self._last_step)
            if postfix:
                self._bar.set_postfix({k: (f"{v:.3g}" if isinstance(v, float) else v)
                                       for k, v in postfix.items()}, refresh=False)
        self._last_step = step

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
        self._jsonl.close()
        if self._wandb is not None:
            self._wandb.finish()


def _drop_rows_after(path: Path, step: int) -> None:
    """Keep the rows of ``path`` (JSON lines) logged at or before ``step``."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a kill
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))


class NullLogger:
    """The logger of a data-parallel rank other than 0: the same calls as
    :class:`MetricLogger`, and nothing written (rank 0 writes the run folder)."""

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        pass

    def image(self, tag: str, image_hwc, step: int) -> None:
        pass

    def progress(self, step: int, **postfix: Any) -> None:
        pass

    def close(self) -> None:
        pass
