"""Attributions (clm explain): IG and saliency against direct computation, the
randomisation sanity check, the command, and the report's section in a real
headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("captum", reason="captum is pinned in requirements.lock (extra [explain])")

from clm.agents.networks import QNetwork  # noqa: E402
from clm.cli.main import main  # noqa: E402
from clm.domains.levels import levels_to_onehot, write_levels  # noqa: E402
from clm.domains.levels.generator import generate_levels  # noqa: E402
from clm.engine.attribution import (SANITY_MAX_RANDOM_SPEARMAN, SANITY_MIN_CONTROL_SPEARMAN, attribute, layers,  # noqa: E402
                                realism_logit, spearman_of_magnitudes)
from clm.levels_clm.search import load_run  # noqa: E402

from test_report import CHROMIUM, headless_page  # noqa: E402
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_integrated_gradients_of_a_linear_score_are_weight_times_input_difference():
    """For f(x) = w.x + b, IG is exactly w * (x - baseline) and sums to f(x) - f(baseline)."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(12, 3)
    x, base = torch.randn(5, 12), torch.randn(5, 12)
    target = torch.tensor([0, 2, 1, 1, 0])
    a = attribute(lin, x, base, target)
    w = lin.weight.detach()[target]
    assert np.allclose(a.integrated_gradients, (w * (x - base)).numpy(), atol=1e-5)
    assert np.allclose(a.saliency, w.abs().numpy(), atol=1e-6)
    assert np.abs(a.convergence_delta).max() < 1e-4


def test_attributions_of_the_run_networks_match_direct_computation(tiny_clm_run):
    """On the trained player and D: IG's sum is f(x) - f(baseline) up to
    Captum's convergence delta (which we recompute by hand), the delta is small,
    and saliency is |df/dx| from autograd."""
    run = load_run(tiny_clm_run)
    levels = run.heldout[:4]
    x = torch.from_numpy(levels_to_onehot(levels)).float()
    zeros = torch.zeros_like(x)
    actions = run.player(x).argmax(1)
    context = torch.from_numpy(levels_to_onehot(run.corpus[:63])).float()
    for forward, target in ((run.player, actions), (realism_logit(run.D, context), None)):
        a = attribute(forward, x, zeros, target)
        with torch.no_grad():
            fx, fb = forward(x), forward(zeros)
        if target is not None:
            fx, fb = fx.gather(1, target[:, None])[:, 0], fb.gather(1, target[:, None])[:, 0]
        gap = (fx - fb).numpy()
        delta = a.integrated_gradients.reshape(len(x), -1).sum(1) - gap
        assert np.allclose(delta, a.convergence_delta, atol=1e-5)
        # stated tolerance: the 64-step Gauss-Legendre integral misses completeness by < 2% of the gap (+ 1e-3)
        assert (np.abs(delta) <= 0.02 * np.abs(gap) + 1e-3).all(), (delta, gap)
        xg = x.clone().requires_grad_(True)
        out = forward(xg)
        out = out if target is None else out.gather(1, target[:, None])[:, 0]
        (grad,) = torch.autograd.grad(out.sum(), xg)
        assert np.allclose(a.saliency, grad.abs().numpy(), atol=1e-6)


def test_realism_logit_scores_each_level_among_the_context(tiny_clm_run):
    run = load_run(tiny_clm_run)
    assert run.D.minibatch_std  # the CLM's D: its score of a level depends on its batch
    x = torch.from_numpy(levels_to_onehot(run.heldout[:3])).float()
    context = torch.from_numpy(levels_to_onehot(run.corpus[:63])).float()
    with torch.no_grad():
        got = realism_logit(run.D, context)(x)
        want = torch.stack([run.D(torch.cat([x[i:i + 1], context]))[0][0] for i in range(len(x))])
        assert torch.allclose(got, want, atol=1e-6)
        assert torch.allclose(realism_logit(run.D)(x), run.D(x)[0])


def test_spearman_and_layers_helpers():
    a = np.array([[1.0, -2.0, 3.0, 4.0]])
    assert spearman_of_magnitudes(a, np.array([[4, 3, 2, 1.0]])) == pytest.approx(-1.0)
    assert spearman_of_magnitudes(a, -a) == pytest.approx(1.0)  # magnitudes: signs do not count
    assert spearman_of_magnitudes(a, np.zeros_like(a)) == 0.0  # a constant map ranks nothing
    q = QNetwork((7, 5, 5), 4, kind="conv", hidden=(16,), conv_channels=(4, 8), dueling=True)
    assert layers(q) == ["features.0", "features.2", "head.value.0", "head.value.2", "head.advantage.0",
                         "head.advantage.2"]


def test_sanity_check_randomised_weights_change_the_attributions(tiny_clm_run):
    """Adebayo et al.'s test on the run's player and D (computed by clm run for
    its report): with every layer re-initialised the mean Spearman correlation
    of |IG| with the trained network's falls below 0.5, while recomputing the
    trained network's IG by another rule keeps it above 0.9."""
    record = json.loads((tiny_clm_run / "attributions" / "attributions.json").read_text())
    assert record["domain"] == "levels" and len(record["items"]) == 4
    for who in ("player", "discriminator"):
        s = record["sanity"][who]
        assert s["random_spearman_ig"] < SANITY_MAX_RANDOM_SPEARMAN < SANITY_MIN_CONTROL_SPEARMAN < s["control_spearman_ig"]
        assert s["passed"] and s["inputs"] == 4
    run = load_run(tiny_clm_run)
    cascade = record["sanity"]["player"]["cascade"]
    assert [c["randomised_down_to"] for c in cascade] == layers(run.player)[::-1]


@pytest.mark.slow
def test_clm_explain_on_a_level_file_and_bad_input(tiny_clm_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_clm_run, run)
    mine = tmp_path / "mine.txt"
    write_levels(mine, generate_levels(3, size=7, n_boxes=1, seed=5, min_pushes=2))
    out = tmp_path / "why"
    assert main(["explain", str(run), "--levels", str(mine), "--out", str(out), "-n", "2", "--no-sanity"]) == 0
    record = json.loads((out / "attributions.json").read_text())
    assert record["source"] == f"file {mine}" and "sanity" not in record
    assert sorted(p.name for p in out.iterdir()) == ["attributions.json", "level-0.png", "level-1.png"]
    assert all((out / i["picture"]).read_bytes().startswith(PNG_MAGIC) for i in record["items"])
    assert record["items"][0]["action"] in ("up", "down", "left", "right")
    # written again into its own folder: replaced whole
    assert main(["explain", str(run), "--levels", str(mine), "--out", str(out), "-n", "1", "--no-sanity"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["attributions.json", "level-0.png"]
    capsys.readouterr()

    big = tmp_path / "big.txt"
    write_levels(big, generate_levels(1, size=9, n_boxes=1, seed=5, min_pushes=2))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    no_checkpoint = tmp_path / "bare"
    no_checkpoint.mkdir()
    (no_checkpoint / "config.yaml").write_text("seed: 0\n")
    for argv, words in [
        (["explain", str(run), "--levels", str(big), "--out", str(tmp_path / "x1")], ["9x9", "7x7"]),
        (["explain", str(run), "--levels", str(tmp_path / "none.txt"), "--out", str(tmp_path / "x2")], ["no such"]),
        (["explain", str(run), "--out", str(foreign)], ["holds other things"]),
        (["explain", str(no_checkpoint), "--out", str(tmp_path / "x3")], ["holds no networks"]),
        (["explain", str(tmp_path / "nowhere")], ["does not exist"]),
        (["explain", str(run), "-n", "0", "--out", str(tmp_path / "x4")], ["-n"]),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and all(w in err for w in words), (argv, err)
    assert not any((tmp_path / f"x{i}").exists() for i in range(1, 5))  # nothing half-written
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


@pytest.mark.slow
def test_report_attribution_section_renders_in_headless_chromium(tiny_clm_run, tmp_path):
    """The report of a CLM run holds the attribution section (pictures and the
    sanity table), and Chromium draws it offline with every image decoded."""
    html = (tiny_clm_run / "report.html").read_text()
    assert 'id="attributions"' in html and "Sanity check" in html and "passed" in html
    assert html.count('alt="attributions of ') == 4
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"Chromium is not installed ({CHROMIUM} missing; Debian: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements.lock)")
    shots = Path(os.environ["CLM_REPORT_SCREENSHOT_DIR"]) if os.environ.get("CLM_REPORT_SCREENSHOT_DIR") else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    with headless_page(sync_api) as (page, problems):
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.goto((tiny_clm_run / "report.html").resolve().as_uri(), wait_until="load")
        section = page.locator("#attributions")
        images = section.evaluate(
            "s => Array.from(s.querySelectorAll('img')).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(images) == 4 and all(done and w > 400 and h > 100 for done, w, h in images), images
        assert "passed" in section.locator("table").inner_text()
        assert page.locator('nav a[href="#attributions"]').count() == 1
        section.screenshot(path=str(shots / "report-attributions.png"))
        assert (shots / "report-attributions.png").read_bytes().startswith(PNG_MAGIC)
        assert problems == []
