"""Playing a levels report's levels in the page: the embedded data and
solutions, and a real headless Chromium that plays a level by its solution's
key presses, undoes and restarts."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from clm.domains.levels import parse_levels, read_levels
from clm.domains.levels.sim import ReferenceSokoban
from clm.domains.levels.solver import solve_level
from clm.report import write_report
from clm.domains.levels.play import json_for_script, level_payload
from test_report import CHROMIUM, SCREENSHOT_DIR, headless_page, make_run_dir

KEYS = {"u": "ArrowUp", "d": "ArrowDown", "l": "ArrowLeft", "r": "ArrowRight"}
ACTION = {"u": 0, "d": 1, "l": 2, "r": 3}


def embedded_levels(text: str) -> dict:
    m = re.search(r'<script type="application/json" id="clm-levels">(.*?)</script>', text, re.S)
    assert m, "no embedded level data"
    return json.loads(m.group(1))


def test_report_embeds_every_shown_level_with_the_solvers_solution(tmp_path):
    run = make_run_dir(tmp_path)
    (run / "metrics.jsonl").unlink()  # no curves to draw: this test reads the levels' data
    text = write_report(run).read_text()
    assert 'id="play"' in text and 'id="clm-player"' in text
    # inline only: no script or style comes from elsewhere
    assert not re.search(r"<script[^>]*\bsrc=", text) and "<link" not in text
    data = embedded_levels(text)
    for gid, name in (("real", "real.txt"), ("samples", "samples.txt"), ("archive", "archive.txt")):
        levels = list(read_levels(run / "levels" / name))
        assert [d["rows"] for d in data[gid]] == [lv.to_text().split("\n") for lv in levels]
        for d, lv in zip(data[gid], levels):
            r = solve_level(lv)
            assert d["status"] == "solved" and d["pushes"] == r.pushes and d["solution"] == r.moves
            ref = ReferenceSokoban(lv)  # the solution solves the level by the simulator's rules
            assert any(ref.step(ACTION[c.lower()])[1] for c in d["solution"])
    assert len(re.findall(r'class="pick"', text)) == 12 + 8 + 6


def test_level_names_cannot_close_the_script_element():
    lv = read_levels_from_text("#####\n#@$.#\n#####\n")
    lv_payload = level_payload([lv], labels=["</script><b>x</b>"])
    safe = json_for_script({"g": lv_payload})
    assert "</script>" not in safe and json.loads(safe)["g"][0]["label"] == "</script><b>x</b>"


def read_levels_from_text(text: str):
    return parse_levels(text)[0]


def board_state(page) -> tuple[str, set[int], int]:
    """(classes joined, box cells, player cell) of the page's board."""
    classes = page.eval_on_selector_all("#clm-board .c", "els => els.map(e => e.className)")
    boxes = {i for i, c in enumerate(classes) if " b" in c}
    player = next(i for i, c in enumerate(classes) if c.endswith(" p") or " p " in c)
    return " ".join(classes), boxes, player


def expected_state(level, moves: str) -> tuple[set[int], int]:
    ref = ReferenceSokoban(level)
    for c in moves:
        ref.step(ACTION[c.lower()])
    w = level.shape[1]
    return {r * w + c for r, c in ref.boxes}, ref.player[0] * w + ref.player[1]


@pytest.mark.slow  # starts Chromium: about 5 s
def test_a_level_is_played_by_its_solutions_keys_undone_and_restarted(tmp_path):
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"Chromium is not installed ({CHROMIUM} missing; Debian: apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements.lock)")
    run = make_run_dir(tmp_path)
    report = write_report(run)
    archive = list(read_levels(run / "levels" / "archive.txt"))
    level = archive[1]
    solution = solve_level(level).moves
    assert len(solution) >= 3
    shots = SCREENSHOT_DIR or tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    with headless_page(sync_api) as (page, problems):
        page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith(("file:", "data:")) else None)
        page.goto(report.resolve().as_uri(), wait_until="load")
        assert page.locator("#clm-player").is_hidden()
        page.click('button.pick[data-group="archive"][data-index="1"]')
        assert page.locator("#clm-player").is_visible()
        assert page.inner_text("#clm-play-title").startswith("#1")
        start_boxes, start_player = expected_state(level, "")
        assert board_state(page)[1:] == (start_boxes, start_player)
        for c in solution:
            page.keyboard.press(KEYS[c.lower()])
        status = page.inner_text("#clm-play-status")
        assert f"Solved in {len(solution)} moves" in status, status
        assert page.get_attribute("#clm-board", "data-solved") == "yes"
        page.locator("#play").screenshot(path=str(shots / "report-play-solved.png"))
        # undo with u, then with Backspace: the board is the state after the shorter move lists
        page.keyboard.press("u")
        assert page.get_attribute("#clm-board", "data-solved") == "no"
        assert board_state(page)[1:] == expected_state(level, solution[:-1])
        page.keyboard.press("Backspace")
        assert page.get_attribute("#clm-board", "data-moves") == str(len(solution) - 2)
        assert board_state(page)[1:] == expected_state(level, solution[:-2])
        # a few moves, then restart: the level as it began
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("r")
        assert page.get_attribute("#clm-board", "data-moves") == "0"
        assert board_state(page)[1:] == (start_boxes, start_player)
        # the solver's solution replayed step by step
        for i in range(len(solution)):
            page.click("#clm-step")
            assert board_state(page)[1:] == expected_state(level, solution[:i + 1])
        assert page.get_attribute("#clm-board", "data-solved") == "yes"
        page.screenshot(path=str(shots / "report-play.png"), full_page=False)
        assert problems == [], problems

