"""``clm serve``: the checks before it starts (exit 2), the web app's routes
and errors (FastAPI's TestClient), and (slow tier) a real server on a free
port, generating from a tiny finished run, driven by headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import clm
from clm.cli.main import main as clm_main
from clm.cli.serve import check_port
from clm.core.errors import UserError
from clm.domains.levels import levels_to_tiles, parse_levels, read_levels
from clm.domains.levels.generator import generate_levels
from clm.domains.levels.metrics import novelty
from clm.domains.levels.solver import solve_level
from clm.levels_clm.config import CLMConfig
from clm.levels_clm.corpus import load_corpus
from clm.serve.app import create_app
from clm.serve.sources import FAVOURITES, RunLevels, check_levels_run
from test_report import CHROMIUM, SCREENSHOT_DIR, headless_page

SRC = Path(clm.__file__).resolve().parents[1]
ACTION_KEYS = {"u": "ArrowUp", "d": "ArrowDown", "l": "ArrowLeft", "r": "ArrowRight"}


class ClassicLevels:
    """The app's source protocol over the project's classic generator (real
    levels, solved for their pushes), for the fast tests: a trained run's G
    takes a slow-tier fixture."""

    searches = ["random"]
    min_novelty = 0

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.seed = 0

    def generate(self, n, search, lo, hi, min_novelty, max_evaluations, avoid):
        levels, records = [], []
        for _ in range(40):
            self.seed += 1
            lv = generate_levels(1, size=7, n_boxes=1, seed=self.seed, min_pushes=1)[0]
            pushes = solve_level(lv).pushes
            if lo <= pushes <= hi and len(levels) < n:
                levels.append(lv)
                records.append({"pushes": pushes, "novelty": 0.0, "realism": 0.0, "score": 0.0})
        return levels, records, 40


def fake_finished_run(root: Path, domain: str = "levels", status: str = "ok") -> Path:
    """A folder that passes (or not) the checks made before loading: a checkpoint's meta and a summary."""
    run = root / f"run-{domain}-{status}"
    (run / "checkpoints" / "clm").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "checkpoints" / "clm" / "meta.json").write_text(json.dumps({"format_version": 2, "kind": "clm",
                                                                       "domain": domain}))
    (run / "summary.json").write_text(json.dumps({"status": status}))
    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_refuses_what_is_not_a_finished_levels_run(tmp_path, capsys):
    cases = [(tmp_path / "nope", "no such directory"),
             (tmp_path, "is not a finished levels run: no checkpoint"),
             (fake_finished_run(tmp_path, domain="art"), "is a run of the art domain"),
             (fake_finished_run(tmp_path, status="gan_diverged"), "GAN diverged")]
    unfinished = fake_finished_run(tmp_path / "u")
    (unfinished / "summary.json").unlink()
    cases.append((unfinished, "summary.json is missing"))
    for folder, reason in cases:
        assert clm_main(["serve", str(folder), "--port", str(free_port())]) == 2
        err = capsys.readouterr().err
        assert reason in err and "Traceback" not in err, err
    assert check_levels_run(fake_finished_run(tmp_path / "ok")).name == "run-levels-ok"


def test_serve_refuses_a_port_in_use(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert clm_main(["serve", str(fake_finished_run(tmp_path)), "--port", str(port)]) == 2
        assert f"port {port} on 127.0.0.1 is in use; choose another with --port" in capsys.readouterr().err
    check_port("127.0.0.1", port)  # free again: no error
    with pytest.raises(UserError, match="--port must lie in 1..65535"):
        check_port("127.0.0.1", 70000)


def test_app_generates_keeps_favourites_and_answers_bad_requests_with_4xx_json(tmp_path):
    run = fake_finished_run(tmp_path)
    client = TestClient(create_app(ClassicLevels(run)))
    page = client.get("/")
    assert page.status_code == 200 and 'id="clm-player"' in page.text
    assert not re.search(r'(src|href)="(?!data:|#)', page.text) and "<link" not in page.text
    got = client.post("/api/generate", json={"n": 3, "difficulty": "2:4"})
    assert got.status_code == 200
    levels = got.json()["levels"]
    assert len(levels) == 3 and got.json()["message"] == ""
    for lv in levels:  # each in the asked range by the solver, with its solution for the replay
        r = solve_level(read_levels_from_rows(lv["rows"]))
        assert 2 <= r.pushes <= 4 and lv["pushes"] == r.pushes and lv["solution"] == r.moves
    bad = {"n": "three"}, {"n": 0}, {"n": 99}, {"n": 2, "colour": "red"}, {"n": 1, "min_novelty": -1}
    for body in bad:
        r = client.post("/api/generate", json=body)
        assert r.status_code == 422 and r.json()["detail"].startswith("malformed request:"), (body, r.text)
    r = client.post("/api/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON decode error" in r.json()["detail"]
    r = client.post("/api/generate", json={"difficulty": "9:3"})
    assert r.status_code == 400 and r.json() == {"detail": "difficulty 9:3: need 1 <= LO <= HI"}
    r = client.post("/api/generate", json={"difficulty": "hard"})
    assert r.status_code == 400 and "LO:HI" in r.json()["detail"]
    assert client.post("/api/favourites", json={"id": "g999"}).status_code == 404
    assert client.get("/api/nothing").json() == {"detail": "Not Found"}  # FastAPI's own 4xx are JSON too
    assert client.get("/api/generate").status_code == 405
    assert client.post("/api/favourites", json={}).status_code == 422
    # two favourites, one of them twice: the file holds each once, in order, as a Boxoban file
    for level_id in (levels[0]["id"], levels[2]["id"], levels[0]["id"]):
        r = client.post("/api/favourites", json={"id": level_id, "note": "<b>good</b>"})
        assert r.status_code == 200
    assert r.json()["favourites"] == 2
    kept = list(read_levels(run / FAVOURITES))
    assert [lv.to_text().split("\n") for lv in kept] == [levels[0]["rows"], levels[2]["rows"]]
    records = [json.loads(x) for x in (run / "favourites.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [levels[0]["id"], levels[2]["id"]] and records[0]["judge"] == "person"
    assert client.get("/api/favourites").json()["levels"] == [levels[0]["rows"], levels[2]["rows"]]
    # `clm run --data RUN_DIR/favourites.txt` reads them back as its levels
    train, held = load_corpus(CLMConfig(data=str(run / FAVOURITES)))
    assert sorted(lv.to_text() for lv in train + held) == sorted(lv.to_text() for lv in kept)


def read_levels_from_rows(rows):
    return parse_levels("\n".join(rows))[0]


TINY_RUN = ["rounds=1", "corpus_size=60", "heldout_size=20", "player_steps=64", "gan_steps=4", "designer_steps=16",
            "samples_per_round=16", "eval_every=1", "eval_levels=10", "player.learning_starts=32",
            "player.conv_channels=[8]", "player.hidden=[32]", "designer.learning_starts=8", "gan.g_width=8",
            "gan.d_width=8", "player.pretrain_steps=20", "report=false"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("serve") / "run"
    assert clm_main(["run", "--out", str(out), *TINY_RUN]) == 0
    return out


@pytest.mark.slow  # a tiny clm run (about 15 s) and its G
def test_app_generates_from_a_finished_run_as_clm_generate_does(tiny_run):
    source = RunLevels(tiny_run)
    client = TestClient(create_app(source))
    r = client.post("/api/generate", json={"n": 2, "search": "random", "difficulty": "1:6", "min_novelty": 2})
    assert r.status_code == 200, r.text
    levels = r.json()["levels"]
    assert len(levels) == 2
    parsed = [read_levels_from_rows(lv["rows"]) for lv in levels]
    corpus = levels_to_tiles(source.run.corpus)
    for lv, item in zip(parsed, levels):
        assert 1 <= item["pushes"] <= 6 and item["pushes"] == solve_level(lv).pushes
        assert novelty(levels_to_tiles([lv]), corpus)[0] >= 2
    assert novelty(levels_to_tiles(parsed[:1]), levels_to_tiles(parsed[1:]))[0] >= 2


@pytest.mark.slow  # a tiny clm run, a server process and Chromium: about 40 s
def test_a_person_generates_plays_and_keeps_a_level_in_the_browser(tiny_run, tmp_path):
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"Chromium is not installed ({CHROMIUM} missing; Debian: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements.lock)")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "clm", "serve", str(tiny_run), "--port", str(port)],
                              env={**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "api/info", timeout=2) as resp:
                    assert json.load(resp)["favourites"] == 0
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "the server did not start within 120 s"
                time.sleep(0.5)
        shots = SCREENSHOT_DIR or tmp_path
        shots.mkdir(parents=True, exist_ok=True)
        with headless_page(sync_api, 1200, 900, console_errors=False) as (page, problems):
            page.goto(url, wait_until="load")
            page.fill("#clm-n", "2")
            page.fill("#clm-novelty", "1")
            page.select_option("#clm-search", "random")
            page.click("#clm-go")
            page.wait_for_selector("#clm-player:not([hidden])", timeout=60_000)
            assert page.locator("#clm-picks button.pick").count() == 2
            solution = page.evaluate("window.clmPlayer.current().solution")
            assert solution, page.inner_text("#clm-solution")
            for c in solution:
                page.keyboard.press(ACTION_KEYS[c.lower()])
            assert f"Solved in {len(solution)} moves" in page.inner_text("#clm-play-status")
            page.fill("#clm-note", "a neat corner push")
            page.click("#clm-fav")
            page.wait_for_function("document.getElementById('clm-fav-status').textContent.includes('kept')")
            page.screenshot(path=str(shots / "serve.png"), full_page=True)
            assert problems == []
        kept = list(read_levels(tiny_run / FAVOURITES))
        assert len(kept) == 1
        record = json.loads((tiny_run / "favourites.jsonl").read_text().splitlines()[0])
        assert record["note"] == "a neat corner push" and record["search"] == "random"
        assert solve_level(kept[0]).moves == solution
    finally:
        server.terminate()
        server.wait(timeout=30)
