"""``clm gan train | sample | eval`` end to end, and their error messages."""

import json

import numpy as np
import pytest

from clm.cli.main import main

QUICK = ["steps=40", "threads=1", "batch_size=32", "g_width=16", "d_width=16", "classifier_epochs=1",
         "eval_samples=200", "checkpoint_every=20"]


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_train_sample_eval_and_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["gan", "train", "--data", "digits", *QUICK, "--out", str(run), "--json"]) == 0
    summary = _last_json(capsys.readouterr().out)
    for key in ("fd_clf", "fd_clf_floor", "fd_clf_ratio", "precision", "recall", "density", "coverage",
                "novelty_mean", "memorised_fraction", "wall_seconds"):
        assert isinstance(summary[key], float), key
    assert json.loads((run / "summary.json").read_text())["fd_clf"] == summary["fd_clf"]

    assert main(["gan", "sample", str(run), "-n", "10", "--out", str(tmp_path / "s.npy")]) == 0
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (10, 1, 8, 8) and np.abs(x).max() <= 1
    assert main(["gan", "sample", str(run), "-n", "10", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0

    assert main(["gan", "eval", str(run), "--json"]) == 0
    ev = _last_json(capsys.readouterr().out)
    assert ev["fd_clf"] == pytest.approx(summary["fd_clf"])  # same checkpoint, seed and cached classifier
    assert (run / "eval.json").is_file()

    # a finished run is not overwritten; --resume continues it to more steps
    assert main(["gan", "train", *QUICK, "--out", str(run)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert main(["gan", "train", "--resume", str(run), "steps=60", "--json"]) == 0
    assert _last_json(capsys.readouterr().out)["steps"] == 60


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["gan", "train", "--data", "cifar", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "cifar" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
    assert main(["gan", "eval", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["gan", "train", "--data", "levels:/nonexistent/levels.txt", *QUICK, "--out", str(tmp_path / "y")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["gan", "train", "stepz=3", "--out", str(tmp_path / "z")]) == 2
    assert "Did you mean 'steps'" in capsys.readouterr().err
