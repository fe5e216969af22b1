"""The art domain: its judge's parts against direct computations, D's other
fakes, bad input, and a short run in which the painter learns to make canvases
D finds more real than a random painter's."""

import json

import numpy as np
import pytest
import torch

from clm.cli.main import main
from clm.core.config import load_config
from clm.core.errors import UserError
from clm.gan.metrics import RealManifold
from clm.gan.steps import AdversarialPair
from clm.gan.train import GanConfig


def test_real_manifold_matches_a_direct_knn_ball_check():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(40, 3)), rng.normal(size=(25, 3)) * 2
    m = RealManifold(real, k=3)
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=2)
    radius = np.sort(d_rr, axis=1)[:, 3]  # the 3rd neighbour, the point itself (0) excluded
    want = [(np.linalg.norm(real - f, axis=1) <= radius).any() for f in fake]
    assert m.contains(fake).tolist() == want
    assert m.contains(real).all()  # every real point lies in its own ball


def test_other_fakes_take_the_place_of_the_first_g_samples():
    seen = []

    class RecordingD(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, cond=None):
            seen.append(x.detach().clone())
            return x.flatten(1).mean(1) * self.w, x.flatten(1)

    class ConstG(torch.nn.Module):
        z_dim, cond_dim = 2, 0

        def __init__(self):
            super().__init__()
            self.b = torch.nn.Parameter(torch.zeros(1))

        def forward(self, z, cond=None):
            return torch.full((len(z), 1, 2, 2), 0.5) + 0 * self.b

    pair = AdversarialPair(ConstG(), RecordingD(), GanConfig(ema=False, diffaug=""))
    pair.d_step(torch.ones(4, 1, 2, 2), other_fakes=-torch.ones(3, 1, 2, 2))
    fake_batch = seen[1]
    assert torch.equal(fake_batch[:3], -torch.ones(3, 1, 2, 2)) and torch.equal(fake_batch[3:], torch.full((1, 1, 2, 2), 0.5))


def test_art_config_rejects_other_domains_keys_and_bad_values(capsys):
    from clm.art_clm.domain import ArtConfig

    assert main(["run", "--domain", "art", "level_size=7", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'level_size'" in err and "canvas_size" in err and "episode_steps" in err
    with pytest.raises(UserError, match="designer_steps.* was removed: the art domain has no designer"):
        load_config(ArtConfig, None, ["designer_steps=5"])
    with pytest.raises(UserError, match="unknown config key .level_decode. in .*gan"):
        load_config(ArtConfig, None, ["gan.level_decode=top"])
    with pytest.raises(UserError, match="unknown art data"):
        load_config(ArtConfig, None, ["data=levels:foo"])
    assert main(["run", "--domain", "art", "--preset", "small", "--out", "x"]) == 2
    with pytest.raises(SystemExit) as e:
        main(["run", "--domain", "poetry"])
    assert e.value.code == 2


SHORT_ART = ["rounds=5", "player_steps=1024", "gan_steps=60", "gan_warmup_steps=600", "eval_canvases=32",
             "samples_per_round=32", "eval_every=5"]


@pytest.mark.slow
def test_a_short_art_run_paints_canvases_d_finds_more_real_than_random_ones(tmp_path, capsys):
    run = tmp_path / "art"
    assert main(["run", "--domain", "art", "--out", str(run), "--json", *SHORT_ART]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["domain"] == "art" and summary["status"] == "ok" and summary["rounds"] == 5
    for name in ("episodes.png", "gallery.png", "plain_gan.png", "real.png"):
        assert (run / "pictures" / name).stat().st_size > 100 or name == "gallery.png"
    html = (run / "report.html").read_text()
    assert "The painter at work" in html and "creative gallery" in html.lower()
    # the report's attributions: the painter's last decisions and D's realism, per pixel, with the sanity check
    why = json.loads((run / "attributions" / "attributions.json").read_text())
    assert why["domain"] == "art" and len(why["items"]) == 4 and set(why["sanity"]) == {"player", "discriminator"}
    assert all(abs(i["d_ig_delta"]) <= 0.02 * abs(i["realism_logit"] - i["realism_logit_baseline"]) + 1e-3
               for i in why["items"])  # IG's completeness, within the stated tolerance
    assert 'id="attributions"' in html and html.count('alt="attributions of ') == 4

    from clm.art_clm.domain import load_art_run

    art, painter = load_art_run(run)
    greedy, _ = art.paint(painter.greedy_actions, 64, seed=7)
    rng = np.random.default_rng(7)
    random, _ = art.paint(lambda obs: rng.integers(painter.n_actions, size=len(obs)), 64, seed=7)
    assert art.realism(greedy).mean() > art.realism(random).mean() + 0.05

    out = tmp_path / "made.png"
    assert main(["generate", str(run), "-n", "12", "--out", str(out)]) == 0
    lines = (tmp_path / "made.png.jsonl").read_text().splitlines()
    assert out.stat().st_size > 100 and len(lines) == 12 and {"realism", "creative", "novelty"} <= set(json.loads(lines[0]))
    assert main(["generate", str(run), "-n", "4", "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["generate", str(run), "-n", "4", "--out", str(out), "--search", "cmaes"]) == 2


TINY_ART = ["player_steps=256", "gan_steps=10", "gan_warmup_steps=20", "eval_canvases=16", "samples_per_round=16",
            "report=false", "eval_every=1"]


@pytest.mark.slow
def test_an_art_run_resumed_gives_the_same_figures_as_one_run(tmp_path, capsys):
    assert main(["run", "--domain", "art", "--out", str(tmp_path / "whole"), "--json", "rounds=3", *TINY_ART]) == 0
    whole = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the first session stops at its time budget after round 1 (rounds stays 3: it sets the exploration schedule)
    main(["run", "--domain", "art", "--out", str(tmp_path / "parts"), "--json", "rounds=3", "max_seconds=0.001",
          *TINY_ART])
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["rounds"] == 1
    assert main(["run", "--resume", str(tmp_path / "parts"), "--json", "max_seconds=0"]) == 0
    parts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert parts["exact_resume"] is True and parts["domain"] == "art"
    for k in ("creative_canvases", "g_evaluations", "canvas_realism", "canvas_creative_fraction", "plain_gan_realism"):
        assert parts[k] == whole[k], k
    assert main(["run", "--resume", str(tmp_path / "parts"), "--domain", "levels", "rounds=4"]) == 2
