"""The edit coupling's episodes (issue 25): the logged edits replay to the edited
levels, the record is written and read back equal, a tampered record is refused
with a note (and the report's section says so), and the section is left out of a
run without edits."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from clm.core.errors import UserError
from clm.domains.levels import levels_to_tiles, tiles_to_levels
from clm.domains.levels.edit_env import EDIT_KINDS, apply_edits, random_edits
from clm.domains.levels.generator import generate_levels
from clm.gan.models import ImageDiscriminator
from clm.levels_clm.couplings import LevelJudge
from clm.levels_clm.edit_episodes import EditEpisodes, parse_edit_episodes, read_edit_episodes
from clm.levels_clm.report import section_edits


@pytest.fixture(scope="module")
def judged():
    """30 corpus levels edited 1-4 times each (logged), judged by a real judge with an untrained D."""
    torch.manual_seed(0)
    corpus = generate_levels(40, size=7, n_boxes=1, seed=1, min_pushes=2)
    D = ImageDiscriminator((7, 7, 7), 8, 0, "mlp", True, True).eval()
    judge = LevelJudge(levels_to_tiles(corpus[:10]), min_novelty=1, solve_time_limit=0.5, realism_bar=0.0)
    before = corpus[10:]
    rng = np.random.default_rng(3)
    log: list = []
    after = tiles_to_levels(random_edits(levels_to_tiles(before), rng.integers(1, 5, len(before)), rng, 2, log=log))
    pushes_before = [int(p) for p in judge.judge(D, before).pushes]
    return before, pushes_before, after, log, judge.judge(D, after)


def test_the_log_replays_to_the_edited_levels_and_leaves_the_draws_unchanged(judged):
    before, _, after, log, _ = judged
    for lv, edits, edited in zip(before, log, after):
        tiles = levels_to_tiles([lv])
        for kind, r, c in edits:  # each logged edit, applied by hand, was made (changed the level)
            a = EDIT_KINDS.index(kind) * 49 + r * 7 + c
            tiles, changed = apply_edits(tiles, np.array([a]), 2)
            assert changed[0]
        assert np.array_equal(tiles[0], levels_to_tiles([edited])[0])
    rng = np.random.default_rng(3)
    plain = random_edits(levels_to_tiles(before), rng.integers(1, 5, len(before)), rng, 2)
    assert np.array_equal(plain, levels_to_tiles(after))  # the log draws nothing of its own


def test_the_record_keeps_the_best_and_is_read_back_equal(judged, tmp_path):
    before, pushes_before, after, log, j = judged
    rec = EditEpisodes(keep=5)
    half = len(after) // 2
    for rnd, sl in enumerate((slice(0, half), slice(half, None))):
        sub = SimpleNamespace(**{k: getattr(j, k)[sl] for k in ("pushes", "playable", "creative", "realism", "novelty")})
        rec.offer(rnd, before[sl], pushes_before[sl], ["generator"] * len(before[sl]), after[sl], log[sl], sub)
    assert (rec.judged, rec.playable, rec.creative) == (len(after), int(j.playable.sum()), int(j.creative.sum()))
    # the kept five are the best five of all the edited levels that changed, by the documented rank
    best: dict = {}  # one per edited layout: its best rank
    for i in range(len(after)):
        if log[i]:
            rank = (bool(j.creative[i]), bool(j.playable[i]), int(j.pushes[i]) - pushes_before[i])
            best[after[i].key()] = max(best.get(after[i].key(), rank), rank)
    ranks = sorted(best.values(), reverse=True)
    assert [(e["creative"], e["playable"], e["pushes_after"] - e["pushes_before"]) for e in rec.episodes] \
        == ranks[:5]
    for e in rec.episodes:
        i = next(k for k, lv in enumerate(after) if lv.to_text().split("\n") == e["after"])
        assert e["before"] == before[i].to_text().split("\n") and e["pushes_after"] == int(j.pushes[i])
        assert [(d["kind"], d["row"], d["col"]) for d in e["edits"]] == list(log[i])
    path = tmp_path / "edit_episodes.json"
    rec.write(path)
    back = read_edit_episodes(path)
    assert back.note is None and back.value.state() == rec.state()
    b, a = back.value.levels(0)
    assert b.to_text().split("\n") == rec.episodes[0]["before"] and a.to_text().split("\n") == rec.episodes[0]["after"]


def _tamper(state: dict, how: str) -> dict:
    s = json.loads(json.dumps(state))
    ep = s["episodes"][0]
    if how == "format":
        s["format"] = "something-else"
    elif how == "counts":
        s["playable"] = s["judged"] + 1
    elif how == "extra_key":
        s["extra"] = 1
    elif how == "two_players":
        ep["after"][1] = "#@@   #"
    elif how == "ragged_level":
        ep["before"][2] = "#"
    elif how == "edit_kind":
        ep["edits"][0]["kind"] = "teleport"
    elif how == "edit_cell":
        ep["edits"][0]["row"] = 7
    elif how == "verdict":
        ep["playable"], ep["pushes_after"] = True, -1
    elif how == "creative_unplayable":
        ep["creative"], ep["playable"], ep["pushes_after"] = True, False, -1
    elif how == "realism":
        ep["realism"] = 2.0
    elif how == "bool_round":
        ep["round"] = True
    elif how == "too_many":
        s["episodes"] = s["episodes"] * (s["keep"] + 1)
    return s


TAMPERINGS = ["format", "counts", "extra_key", "two_players", "ragged_level", "edit_kind", "edit_cell", "verdict",
              "creative_unplayable", "realism", "bool_round", "too_many"]


@pytest.mark.parametrize("how", TAMPERINGS)
def test_a_tampered_record_is_refused_with_a_note_and_the_section_says_so(judged, tmp_path, how):
    before, pushes_before, after, log, j = judged
    rec = EditEpisodes(keep=3)
    rec.offer(0, before, pushes_before, ["archive"] * len(before), after, log, j)
    bad = _tamper(rec.state(), how)
    with pytest.raises(UserError) as e:
        parse_edit_episodes(bad, "levels/edit_episodes.json")
    assert e.value.exit_code == 2 and "levels/edit_episodes.json" in str(e.value)
    (tmp_path / "levels").mkdir()
    path = tmp_path / "levels" / "edit_episodes.json"
    path.write_text(json.dumps(bad))
    got = read_edit_episodes(path)
    assert got.value is None and got.note.startswith("refused: levels/edit_episodes.json")
    html = section_edits(SimpleNamespace(run_dir=tmp_path, metric_rows=[{"edit_playable_fraction": 0.5}]))
    assert 'class="missing"' in html and "refused" in html and "<img" not in html


def test_the_section_is_left_out_without_edits_and_notes_a_missing_or_broken_file(tmp_path):
    (tmp_path / "levels").mkdir()
    assert section_edits(SimpleNamespace(run_dir=tmp_path, metric_rows=[{"step": 1}])) == ""
    html = section_edits(SimpleNamespace(run_dir=tmp_path, metric_rows=[{"edit_playable_fraction": 0.5}]))
    assert "edit_episodes.json: not recorded" in html
    (tmp_path / "levels" / "edit_episodes.json").write_text('{"format": "clm-edit-episo')  # cut short
    html = section_edits(SimpleNamespace(run_dir=tmp_path, metric_rows=[]))
    assert "not valid JSON" in html


def test_the_section_draws_each_episode_before_and_after(judged, tmp_path):
    before, pushes_before, after, log, j = judged
    rec = EditEpisodes(keep=4)
    rec.offer(2, before, pushes_before, ["generator"] * len(before), after, log, j)
    (tmp_path / "levels").mkdir()
    rec.write(tmp_path / "levels" / "edit_episodes.json")
    html = section_edits(SimpleNamespace(run_dir=tmp_path, metric_rows=[]))
    assert html.count("<figure") == 4 and html.count("<img") == 4
    assert f"It judged {len(after)} edited levels: {int(j.playable.sum())} playable" in html
    e = rec.episodes[0]
    assert f"{e['pushes_before']} &rarr; {e['pushes_after']} optimal pushes" in html or not e["playable"]
