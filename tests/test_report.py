"""The CLM's offline HTML report: content, escaping, tolerance of missing
pieces, the CLI, and a real headless Chromium that opens the file offline."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from clm.cli.main import main as clm_main
from clm.domains.levels import write_levels
from clm.domains.levels.generator import generate_levels
from clm.report import write_report

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Where the browser test leaves its screenshot for a person to look at.
SCREENSHOT_DIR = Path(os.environ.get("CLM_REPORT_SCREENSHOT_DIR", "")) if os.environ.get(
    "CLM_REPORT_SCREENSHOT_DIR") else None


@contextmanager
def headless_page(sync_api, width: int = 1280, height: int = 900, console_errors: bool = True):
    """A page of headless Chromium (Debian's) and the list its page errors (and console errors) go to."""
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            if console_errors:
                page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            yield page, problems
        finally:
            browser.close()


def make_run_dir(root: Path, status: str = "ok", message: str = "finished 40 rounds", n_rounds: int = 40) -> Path:
    """A run directory as `clm run` writes it, with real generated levels and
    plausible metrics (losses settle, the solve rate rises, the archive grows)."""
    run = root / "run"
    (run / "levels").mkdir(parents=True)
    real = generate_levels(12, size=7, n_boxes=2, seed=0)
    samples = generate_levels(8, size=7, n_boxes=2, seed=1)
    archive = generate_levels(6, size=7, n_boxes=2, seed=2)
    write_levels(run / "levels" / "real.txt", real)
    write_levels(run / "levels" / "samples.txt", samples)
    write_levels(run / "levels" / "archive.txt", archive)
    with open(run / "levels" / "archive.jsonl", "w") as f:
        for i in range(len(archive)):
            f.write(json.dumps({"novelty": 6 + i, "pushes": 4 + (i % 3), "realism": 0.4 + 0.05 * i,
                                "round": 5 * i}) + "\n")
    (run / "config.yaml").write_text("seed: 0\ndomain: levels\nlevels:\n  size: 7\n  boxes: 2\n"
                                     "loop:\n  rounds: 40\n  note: \"<b>not bold</b>\"\n")
    rows = []
    for step in range(n_rounds):
        t = step / max(1, n_rounds - 1)
        row = {"step": step, "d_loss": 1.3 - 0.4 * t + 0.05 * math.sin(step), "g_loss": 0.7 + 0.5 * t,
               "g_difficulty_loss": 0.3 * (1 - t), "player_loss": 0.5 * math.exp(-3 * t),
               "player_solve_rate": 0.9 * t, "player_train_solve_rate": min(1.0, 1.1 * t),
               "generated_playable_fraction": 0.2 + 0.5 * t, "creative_novelty_mean": 5 + 2 * t,
               "creative_difficulty_mean": 3 + 2 * t, "archive_size": step // 7,
               "d_real_accuracy": 0.8 - 0.2 * t,
               "time_share_gan": 0.4, "time_share_player": 0.3, "time_share_designer": 0.15,
               "time_share_solver": 0.1, "time_share_evaluation": 0.05}
        if step % 2 == 0:  # not every row has every key
            row["designer_return"] = -1 + 2 * t
            row["designer_loss"] = 0.2 * (1 - t)
        rows.append(row)
    with open(run / "metrics.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    summary = {"status": status, "message": message, "creative_levels": 6, "generated_playable_fraction": 0.71,
               "creative_novelty_mean": 8.5, "creative_difficulty_mean": 5.5, "tile_kl": 0.042,
               "player_solve_rate": 0.875, "wall_seconds": 412.3, "time_share_gan": 0.4,
               "time_share_player": 0.3, "time_share_designer": 0.15, "time_share_solver": 0.1,
               "time_share_evaluation": 0.05, "rounds": n_rounds}
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    evidence = {
        "problem1": {"rows": [{"pool": "real only", "solve_rate": 0.61, "ci95": [0.55, 0.67], "seeds": 3},
                              {"pool": "real + CLM", "solve_rate": 0.72, "ci95": [0.66, 0.78], "seeds": 3}],
                     "note": "equal env steps and updates"},
        "problem2": {"rows": [{"method": "random", "yield_per_1000": 12.0, "ci95": [10, 14]},
                              {"method": "cmaes", "yield_per_1000": 30.5, "ci95": [25, 36]},
                              {"method": "designer", "yield_per_1000": 33.1, "ci95": [28, 38]}]},
    }
    (run / "evidence.json").write_text(json.dumps(evidence))
    quality = [[None] * 4 for _ in range(3)]
    quality[0][1], quality[2][3] = 2.5, 3.25
    (run / "qd_grid.json").write_text(json.dumps({
        "descriptors": ["pushes", "wall_density"], "bins": [3, 4], "ranges": [[0.5, 3.5], [0.0, 0.8]],
        "quality": quality, "coverage": 2 / 12, "qd_score": 5.75, "levels_offered": 40, "filled": 2}))
    return run


def embedded_pngs(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


@pytest.mark.slow
def test_report_holds_every_section_with_embedded_images(tmp_path):
    run = make_run_dir(tmp_path)
    path = write_report(run)
    assert path == run / "report.html"
    text = path.read_text()
    for anchor in ("status", "headline", "levels", "curves", "time", "archive", "qd", "evidence", "config"):
        assert f'id="{anchor}"' in text
    assert 'class="banner ok"' in text
    assert "Coverage 0.167 (2 cells), QD-score 5.8, 40 levels offered" in text and 'alt="QD grid heat map"' in text
    # headline figures, formatted
    assert "87.5%" in text and "71.0%" in text and "6m 52s" in text
    # every numeric key appears in some plot's alt text (grouped small multiples)
    alts = " ".join(re.findall(r'alt="([^"]*)"', text))
    for key in ("d_loss", "g_loss", "g_difficulty_loss", "player_loss", "designer_loss", "player_solve_rate",
                "player_train_solve_rate", "designer_return", "generated_playable_fraction",
                "creative_novelty_mean", "creative_difficulty_mean", "archive_size", "d_real_accuracy"):
        assert key in alts, key
    pngs = embedded_pngs(text)
    assert len(pngs) >= 9  # 3 level grids, >= 4 curve groups, time share bar + per round
    assert all(p.startswith(PNG_MAGIC) for p in pngs)
    # self-contained: no external resources; the only scripts are the level player's, inline
    assert not re.search(r'(src|href)="(?!data:|#)', text)
    assert re.findall(r"<script[^>]*>", text.lower()) == ['<script type="application/json" id="clm-levels">',
                                                           "<script>"]
    # the evidence tables with their columns; problem 3 says it is missing
    assert "yield_per_1000" in text and "designer" in text and "[25, 36]" in text
    assert "problem3: not recorded" in text
    # escaping: the config's markup is shown as text
    assert "&lt;b&gt;not bold&lt;/b&gt;" in text and "<b>not bold</b>" not in text
    assert 'class="error"' not in text


@pytest.mark.slow
def test_new_metric_keys_are_plotted_without_code_changes(tmp_path):
    run = make_run_dir(tmp_path, n_rounds=6)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 6, "brand_new_gauge": 3.5, "tag": "text is not plotted",
                            "creative_novelty_mean": None}) + "\n")  # null: no archive yet, not a failure
        f.write('{"step": 7, "d_loss": 1.0, "half-writ')  # a running job's last line
    text = write_report(run).read_text()
    assert "brand_new_gauge" in " ".join(re.findall(r'alt="([^"]*)"', text))
    assert "1 line(s) that are not JSON objects were skipped" in text
    assert 'class="banner ok"' in text and "is non-finite" not in text


def test_diverged_gan_shows_a_red_banner_with_the_message(tmp_path):
    run = make_run_dir(tmp_path, status="gan_diverged",
                       message="D loss became NaN at round 17 <lr too high> & G collapsed")
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 40, "d_loss": None, "g_loss": None}) + "\n")
    # the loop keeps no generated levels after a divergence
    (run / "levels" / "samples.txt").unlink()
    (run / "levels" / "archive.txt").unlink()
    text = write_report(run).read_text()
    assert "levels/samples.txt: not recorded (the GAN diverged, so the run kept no generated levels)" in text
    banner = text[text.index('id="status"') - 40:text.index("</nav>")]
    assert 'class="banner bad"' in banner
    assert "The GAN diverged" in banner
    assert "D loss became NaN at round 17 &lt;lr too high&gt; &amp; G collapsed" in banner
    assert "<lr too high>" not in text
    assert "d_loss is non-finite" in banner


@pytest.mark.slow
def test_stuck_player_is_reported_even_when_the_summary_is_missing(tmp_path):
    run = make_run_dir(tmp_path, status="player_stuck", message="solve rate 0 for 20 rounds")
    text = write_report(run).read_text()
    assert 'class="banner bad"' in text and "The player is stuck" in text
    # no summary, metrics with a solve rate at zero: the banner still warns
    (run / "summary.json").unlink()
    rows = [{"step": i, "player_solve_rate": 0.0, "d_loss": 1.0} for i in range(12)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = write_report(run).read_text()
    assert 'class="banner warn"' in text
    assert "player_solve_rate is 0 in each of the last 6 logged rounds" in text


def test_run_dir_missing_most_files_still_gives_a_report(tmp_path):
    run = tmp_path / "sparse"
    (run / "levels").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 1\n")
    (run / "levels" / "samples.txt").write_text("not a level at all\n")
    (run / "summary.json").write_text("{broken json")
    text = write_report(run).read_text()
    for anchor in ("headline", "levels", "curves", "time", "archive", "evidence", "config"):
        assert f'id="{anchor}"' in text
    assert "summary.json: not valid JSON" in text
    assert "qd_grid.json: not recorded" in text
    assert "metrics.jsonl: not recorded" in text
    assert "levels/real.txt: not recorded" in text
    assert "levels/samples.txt" in text  # says why it could not be read
    assert "run benchmarks/clm_evidence.py" in text.replace("Run benchmarks", "run benchmarks")
    assert "seed: 1" in text
    assert 'class="error"' not in text
    # an empty directory too
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "Nothing recorded" in write_report(empty).read_text()


@pytest.mark.slow
def test_cli_report_writes_to_out_and_rejects_non_run_dirs(tmp_path, capsys):
    run = make_run_dir(tmp_path, n_rounds=4)
    out = tmp_path / "elsewhere" / "r.html"
    assert clm_main(["report", str(run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert clm_main(["report", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    assert clm_main(["report", str(tmp_path / "plain")]) == 2
    assert "not a run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_report_opens_in_headless_chromium(tmp_path):
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"Chromium is not installed ({CHROMIUM} missing; Debian: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements.lock)")
    run = make_run_dir(tmp_path, status="gan_diverged", message="D loss became NaN at round 17")
    ok_run = make_run_dir(tmp_path / "ok")
    reports = {"diverged": write_report(run), "ok": write_report(ok_run)}
    shots = SCREENSHOT_DIR or tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    with headless_page(sync_api) as (page, problems):
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        for name, report in reports.items():
            page.goto(report.resolve().as_uri(), wait_until="load")
            images = page.evaluate(
                "() => Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
            assert len(images) >= 9
            assert all(done and w > 0 and h > 0 for done, w, h in images), images
            banner = page.locator("#status")
            color = banner.evaluate("e => getComputedStyle(e).backgroundColor")
            if name == "diverged":
                assert color == "rgb(176, 0, 32)"
                assert "The GAN diverged" in banner.inner_text()
            else:
                assert color == "rgb(27, 127, 59)"
            page.screenshot(path=str(shots / f"report-{name}.png"), full_page=(name == "ok"))
            assert (shots / f"report-{name}.png").read_bytes().startswith(PNG_MAGIC)
        assert problems == []

