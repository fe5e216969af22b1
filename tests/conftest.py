import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def boxoban_dir():
    """The Boxoban corpus (../shared/data/boxoban or $CLM_BOXOBAN_DIR); tests skip without it."""
    from pathlib import Path

    env = os.environ.get("CLM_BOXOBAN_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data" / "boxoban"
    if not (path / "unfiltered").is_dir():
        pytest.skip(f"Boxoban data not found at {path}: set CLM_BOXOBAN_DIR or place it at ../shared/data/boxoban")
    return path


@pytest.fixture(autouse=True)
def _work_in_a_temporary_folder(tmp_path_factory, monkeypatch):
    """Every test runs in a fresh temporary folder, so that a command run
    without --out (runs/<command>-<time>) never writes into the repository."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def ray_instance():
    """One local Ray instance of 2 CPUs for the session's tests (Ray takes seconds to start);
    tests skip where Ray is not installed."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e .[tune])")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    if started:
        ray.shutdown()
