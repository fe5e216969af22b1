"""Issue 27, item 5: ``clm generate -n N`` writes N distinct artefacts that pass
the run's judge, or stops at its budget and says how many it found (exit 0;
``--strict``: exit 1). The text case of the issue: 12 empty words and duplicates."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from clm.cli.main import main
from clm.engine.collect import collect_distinct

TINY_TEXT = ["max_len=8", "rounds=2", "gan_warmup_steps=40", "gan_steps=10", "player_steps=64", "eval_every=2",
             "eval_words=16", "samples_per_round=16", "player.learning_starts=32", "report=false"]


def test_collect_distinct_keeps_distinct_passing_ones_and_stops_at_the_budget():
    def draw(k, rnd):  # keys repeat across draws; odd ones fail the judge
        return ((i % 7, f"x{i % 7}", {"i": i}, i % 2 == 0) for i in range(rnd * k, rnd * k + k))

    items, records, spent = collect_distinct(draw, n=3, budget=100, batch=4)
    assert items == ["x0", "x2", "x4"] and spent == 8  # 0, 2 in the first draw; 4 in the second
    items, _, spent = collect_distinct(draw, n=10, budget=30, batch=4)
    assert sorted(items) == ["x0", "x1", "x2", "x3", "x4", "x5", "x6"] or len(set(items)) == len(items)
    assert spent == 30 and len(items) <= 7  # only 7 distinct keys exist


@pytest.fixture(scope="module")
def text_run():
    root = Path(tempfile.mkdtemp(prefix="clm-gen-"))
    assert main(["run", "--domain", "text", "--out", str(root / "run"), "--json", *TINY_TEXT]) == 0
    yield root / "run"
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_text_generate_writes_n_distinct_judged_words_or_says_how_many(text_run, tmp_path, capsys):
    out = tmp_path / "words.txt"
    capsys.readouterr()
    assert main(["generate", str(text_run), "-n", "20", "--out", str(out), "--max-evaluations", "512"]) == 0
    captured = capsys.readouterr()
    lines = out.read_text().splitlines()
    words = [line.split("\t")[0] for line in lines]
    records = [json.loads(line.split("\t")[1]) for line in lines]
    assert len(set(words)) == len(words) and all(words) and all(r["creative"] for r in records)
    assert len(words) == 20 or f"found {len(words)} of 20" in captured.err, captured
    assert f"wrote {len(words)} distinct creative words" in captured.out
    # a budget too small for the request: the words found, the count said; --strict makes it exit 1
    assert main(["generate", str(text_run), "-n", "50", "--out", str(out), "--max-evaluations", "8",
                 "--strict"]) == 1
    err = capsys.readouterr().err
    found = len(out.read_text().splitlines())
    assert f"found {found} of 50" in err and "within 8 candidates" in err and found <= 8


@pytest.mark.parametrize("option, value", [("--max-evaluations", "-5"), ("--min-novelty", "-3")])
def test_generate_refuses_a_negative_count_naming_the_option(tmp_path, capsys, option, value):
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    assert main(["generate", str(tmp_path), "-n", "2", "--out", str(tmp_path / "x.txt"), option, value]) == 2
    err = capsys.readouterr().err
    assert option in err and value in err and "Traceback" not in err
