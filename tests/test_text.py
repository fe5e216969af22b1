"""The CLM on text (clm.text_clm.domain): its config and command-line bad input,
G's terms against direct computations, a short run in which the writer's
words become more fluent and more real to D, resume, and clm generate."""

import json

import numpy as np
import pytest
import torch

from clm.cli.main import main
from clm.core.config import load_config
from clm.core.errors import UserError

SHORT_TEXT = ["rounds=6", "gan_warmup_steps=400", "gan_steps=30", "player_steps=512", "eval_every=6",
              "eval_words=64", "samples_per_round=32", "player.learning_starts=256", "max_len=8"]


def test_text_config_rejects_other_domains_keys_and_bad_values():
    from clm.text_clm.domain import TextConfig

    with pytest.raises(UserError, match="unknown config key .live_boxes. in .*gan"):
        load_config(TextConfig, None, ["gan.live_boxes=true"])
    with pytest.raises(UserError, match="designer_steps.* was removed: the text domain has no designer"):
        load_config(TextConfig, None, ["designer_steps=5"])
    with pytest.raises(UserError, match="cannot be met"):
        load_config(TextConfig, None, ["constraint=length=14"])


@pytest.mark.slow
def test_bad_text_input_on_the_command_line_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n", encoding="utf-8")
    assert main(["run", "--domain", "text", "--data", str(empty), "--out", str(tmp_path / "a")]) == 2
    assert "has no word" in capsys.readouterr().err
    binary = tmp_path / "words.bin"
    binary.write_bytes(b"\x00\x01\x02abc")
    assert main(["run", "--domain", "text", "--data", str(binary), "--out", str(tmp_path / "b")]) == 2
    assert "looks binary" in capsys.readouterr().err
    assert main(["run", "--domain", "text", "--constraint", "rhymes=qqzzx", "--out", str(tmp_path / "c")]) == 2
    assert "not in the CMU" in capsys.readouterr().err
    assert main(["run", "--constraint", "start=s", "--out", str(tmp_path / "d")]) == 2
    assert "--constraint is for the text domain" in capsys.readouterr().err
    assert not any((tmp_path / x).exists() for x in "abcd")  # nothing half-written


@pytest.mark.slow
def test_g_terms_match_a_direct_computation():
    from clm.text_clm.domain import TextCLM, TextConfig

    cfg = load_config(TextConfig, None, ["max_len=6", "consistency_weight=0.5", "kept_weight=0.25"])
    text = TextCLM(cfg, torch.device("cpu"))
    text.kept = [("ca", "cat")]
    torch.manual_seed(0)
    cond = text.g_condition(9, torch.device("cpu"))
    assert cond.shape == (9, text.C * text.L)
    fake = torch.softmax(torch.randn(9, text.C, 1, text.L), 1)
    got = text._g_term(fake)
    c, tgt, has = text._cond, text._target, text._has_target
    letters = 1 - c[:, 0]
    want = 0.5 * ((1 - (fake * c).sum(1)) * letters).sum() / letters.sum()
    want = want + 0.25 * (1 - (fake[has] * tgt[has]).sum(1)).mean()
    assert torch.allclose(got, want)
    assert has.sum() == 1 and text.alphabet.decode(tgt[has].numpy()) == ["cat"]  # n_agent // 2 = 1 kept row
    words = text.alphabet.decode(c.numpy())
    assert words[:3] == ["", "", ""] and all(len(w) >= 1 for w in words[3:6])  # empty, then real prefixes


@pytest.mark.slow
def test_a_short_text_run_learns_resumes_and_generates(tmp_path):
    from clm.text_clm.domain import load_text_run

    run = tmp_path / "run"
    assert main(["run", "--domain", "text", "--out", str(run), "--json", *SHORT_TEXT]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["domain"] == "text" and summary["status"] == "ok"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    fluency = [r["writer_fluency_mean"] for r in rows if "writer_fluency_mean" in r]
    # the writer's words become more fluent over the run (round 1: a nearly random writer)
    assert np.mean(fluency[-2:]) > fluency[0] + 0.1, fluency
    # and more real to D: judged by the final D (each round's own D moves), the trained writer's words
    # against those of a random writer, which is what it started as
    text, writer = load_text_run(run)
    rng = np.random.default_rng(0)
    greedy, _ = text.write(writer.greedy_actions, 64, seed=5)
    random_, _ = text.write(lambda obs: rng.integers(0, text.env.n_actions, len(obs)), 64, seed=5)
    jg, jr = text.judge(greedy), text.judge(random_)
    assert jg["fluency"].mean() > jr["fluency"].mean() and jg["realism"].mean() > jr["realism"].mean()
    for name in ("archive.jsonl", "edits.json", "plain_gan.txt"):
        assert (run / "words" / name).is_file()
    html = (run / "report.html").read_text()
    assert "Creative words" in html and "The writer at work" in html
    # the report's attributions: the writer's decisions and D's realism, per letter cell, with the sanity check
    why = json.loads((run / "attributions" / "attributions.json").read_text())
    assert why["domain"] == "text" and len(why["items"]) == 4 and set(why["sanity"]) == {"player", "discriminator"}
    assert 'id="attributions"' in html and html.count('alt="attributions of ') == 4
    # clm generate: one word per line with its metrics
    out = tmp_path / "words.txt"
    assert main(["generate", str(run), "-n", "10", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 10
    word, record = lines[0].split("\t")
    meta = json.loads(record)
    assert {"realism", "fluency", "novel", "nearest", "edit_distance"} <= set(meta)
    assert main(["generate", str(run), "-n", "3", "--out", str(out), "--search", "cmaes"]) == 2
    # resume: two more rounds continue from the checkpoint
    assert main(["run", "--resume", str(run), "rounds=8", "--json"]) == 0
    assert json.loads((run / "summary.json").read_text())["rounds"] == 8


@pytest.mark.slow
def test_under_a_constraint_a_share_of_ds_real_words_meet_it():
    from clm.text_clm.domain import TextCLM, TextConfig

    cfg = load_config(TextConfig, None, ["constraint=end=ing", "constraint_real_fraction=0.25",
                                         "archive_real_fraction=0.1"])
    text = TextCLM(cfg, torch.device("cpu"))
    text.feedback_x = None
    torch.manual_seed(0)
    words = text.alphabet.decode(text.d_real_batch(text.train_x, 40).numpy())
    assert all(w.endswith("ing") for w in words[30:])  # the last quarter: training words that meet it
    assert all(w in set(text.split.train) for w in words)
    assert sum(w.endswith("ing") for w in words[:30]) < 15  # the rest: the corpus as it is


@pytest.mark.slow
def test_a_users_own_word_file_runs_end_to_end(tmp_path):
    from clm.domains.text.corpus import cmudict_words

    words = cmudict_words(4, 6)[::300][:300]  # 300 words spread over the alphabet
    corpus = tmp_path / "my words.txt"
    corpus.write_text("# my corpus\n" + "\n".join(w.upper() for w in words) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    assert main(["run", "--domain", "text", "--data", str(corpus), "--out", str(run), "--json", "max_len=8",
                 "rounds=2", "gan_warmup_steps=40", "gan_steps=10", "player_steps=64", "eval_every=2",
                 "eval_words=16", "samples_per_round=16", "player.learning_starts=32", "report=false"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["domain"] == "text" and summary["rounds"] == 2
    assert 0.0 <= summary["text_novel_fraction"] <= 1.0
