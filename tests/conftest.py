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


#: a CLM run of seconds (test_hybrid.py's TINY settings): tiny networks, two rounds
TINY_CLM = ["rounds=2", "corpus_size=60", "heldout_size=20", "player_steps=320", "gan_steps=4",
            "designer_steps=16", "samples_per_round=16", "eval_every=1", "eval_levels=10",
            "player.learning_starts=64", "player.conv_channels=[8]", "player.hidden=[32]",
            "designer.learning_starts=8", "gan.g_width=8", "gan.d_width=8", "player.pretrain_steps=200"]


@pytest.fixture(scope="session")
def tiny_clm_run(tmp_path_factory):
    """A finished tiny CLM run with its report (and so its attributions), made
    once for the tests that read a trained run (explain, compress). Read it,
    never write into it: copy it first."""
    from clm.cli.main import main

    out = tmp_path_factory.mktemp("tiny-clm") / "run"
    assert main(["run", "--out", str(out), "report=true", *TINY_CLM]) == 0
    return out
