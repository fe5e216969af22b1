"""``clm explain``: attributions of a CLM run's agent and D (the method: :mod:`clm.engine.attribution`),
through the domain's explainer in the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clm.core.checkpoint import read_meta
from clm.core.errors import UserError
from clm.core.rundir import check_output_folder, folder_written_whole, require_run_dir
from clm.engine import registry
from clm.engine.attribution import MARKER, sanity_headline  # noqa: F401 - the report and tests read them here


def run_domain(run_dir: str | Path) -> str:
    """The domain of a ``clm run`` folder, from its checkpoint's meta (older runs: levels)."""
    folder = require_run_dir(run_dir, "run") / "checkpoints" / "clm"
    try:
        _, meta = read_meta(folder)
    except UserError as e:  # no networks to read: the user gave the wrong folder (exit 2, as for bad arguments)
        raise UserError(f"{run_dir} holds no networks to read: {e}", exit_code=2) from e
    if meta.get("kind") != "clm":
        raise UserError(f"{run_dir} is not a CLM run (its checkpoint is a '{meta.get('kind')}')", exit_code=2)
    return str(meta.get("domain", registry.DEFAULT_DOMAIN))


def explain_run(run_dir: str | Path, out: str | Path | None = None, levels_file: str | Path | None = None,
                n: int = 4, sanity: bool = True) -> tuple[Path, dict[str, Any]]:
    """Attributions of a ``clm run`` folder's agent and D, written whole into
    ``out`` (default ``RUN_DIR/attributions``, replaced): (the folder, its record)."""
    if n < 1:
        raise UserError(f"-n must be >= 1, got {n}", exit_code=2)
    out = Path(out) if out is not None else Path(run_dir) / "attributions"
    check_output_folder(out, MARKER)
    spec = registry.get(run_domain(run_dir))
    if spec.explain is None:
        raise UserError(f"the {spec.name} domain has no explainer", exit_code=2)
    if levels_file is not None and not spec.explain_takes_levels:
        takers = [name for name in registry.names() if registry.get(name).explain_takes_levels]
        raise UserError(f"--levels is for {', '.join(takers)} runs; {run_dir} is a {spec.name} run", exit_code=2)
    if levels_file is not None and not Path(levels_file).is_file():
        raise UserError(f"--levels {levels_file}: no such file", exit_code=2)
    files = {"levels_file": levels_file} if spec.explain_takes_levels else {}
    with folder_written_whole(out, MARKER) as tmp:
        record = spec.explain(run_dir, tmp, n=n, sanity=sanity, **files)
    return out, record
