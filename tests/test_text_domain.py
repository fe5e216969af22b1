"""The text domain's parts (clm.domains.text): the corpus and its bad input,
the character model, the metrics and constraints against direct
computations, and the word-edit environment (Gymnasium's checker, its edits
against a plain-Python version)."""

import math
from collections import Counter

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from clm.core.errors import UserError
from clm.domains.text.constraints import parse_constraint
from clm.domains.text.corpus import Alphabet, load_word_split, read_word_file, split_words
from clm.domains.text.edit_env import WordEditEnv, WordEditVecEnv, edit_action_names
from clm.domains.text.metrics import (TextReference, char_ngram_kl, char_ngrams, distinct_n, levenshtein,
                                      nearest_words, text_metrics)
from clm.domains.text.ngram import CharNgram

AB = Alphabet("abc")


# -- corpus ------------------------------------------------------------------------------------
def test_words_round_trip_through_one_hot_grids():
    words = ["abc", "a", "", "cab"]
    grids = AB.onehot(words, 4)
    assert grids.shape == (4, 4, 1, 4) and (grids.sum(1) == 1).all()
    assert grids[0, :, 0, 3].argmax() == 0  # the end symbol fills the rest
    assert AB.decode(grids) == words
    assert AB.decode_indices(np.array([[1, 0, 2, 3]])) == ["a"]  # everything after the first end is end


def test_split_is_disjoint_fixed_and_complete():
    words = [f"w{i}" for i in range(100)]
    tr, ho = split_words(words, 0.2, 3)
    assert len(ho) == 20 and not set(tr) & set(ho) and set(tr) | set(ho) == set(words)
    assert (tr, ho) == split_words(list(reversed(words)), 0.2, 3)


def test_cmudict_corpus_loads_and_splits():
    split = load_word_split("cmudict", max_len=8)
    assert len(split.train) > 50_000 and all(3 <= len(w) <= 8 and w.isalpha() for w in split.train[:1000])
    assert "night" in split.all_words


@pytest.mark.parametrize("content, message", [
    (b"", "has no word"),
    (b"ab\x00cd\n", "looks binary"),
    ("caf\u00e9\n".encode("latin-1"), "line 1: not UTF-8"),
    (b"abc\nabd\n", "line 2: the word 'abd' has characters outside the alphabet \\('d'\\)"),
    (b"abc\naaaaaaaaaaaaa\n", "line 2: the word 'aaaaaaaaaaaaa' has 13 characters"),
])
def test_bad_word_files_get_a_clear_error_naming_file_and_line(tmp_path, content, message):
    f = tmp_path / "words.txt"
    f.write_bytes(content)
    with pytest.raises(UserError, match=message) as e:
        load_word_split(str(f), "abc", min_len=1, max_len=10, min_words=1)
    assert "words.txt" in str(e.value) or "has no word" in str(e.value)


def test_a_user_word_file_skips_comments_and_lowercases(tmp_path):
    f = tmp_path / "w.txt"
    f.write_text("# my words\nABC\n\ncab\nabc\n", encoding="utf-8")
    assert read_word_file(f, AB, 1, 5) == ["abc", "cab"]


# -- the character model ------------------------------------------------------------------------
def test_ngram_distributions_are_normalised_and_match_counts_on_a_tiny_corpus():
    m = CharNgram(AB, order=2, discount=0.5).fit(["ab", "ab", "ac"])
    p = np.exp(m.log_probs)
    assert np.allclose(p.sum(1), 1.0)
    # after 'a' (index 1): counts b=2, c=1 (total 3, 2 types); unigram add-one over {end, a, b, c}
    uni = (np.array([3, 3, 2, 1]) + 1) / (9 + 4)  # end, a, b, c
    want = (np.maximum(np.array([0, 0, 2, 1]) - 0.5, 0) + 0.5 * 2 * uni) / 3
    assert np.allclose(p[1], want)
    nll = m.nll_per_char(["ab"])[0]
    start = m.S - 1  # the start symbol's context row
    assert math.isclose(nll, -(m.log_probs[start, 1] + m.log_probs[1, 2] + m.log_probs[2, 0]) / 3)


def test_ngram_sampling_follows_the_model_and_sharpens_with_low_temperature():
    m = CharNgram(AB, order=3).fit(["abc"] * 50 + ["cab"] * 5)
    rng = np.random.default_rng(0)
    cold = m.sample(200, rng, temperature=0.2)
    assert Counter(cold).most_common(1)[0][0] == "abc" and Counter(cold)["abc"] > 190
    warm = m.sample(2000, rng, temperature=1.0)
    assert 0.8 < Counter(warm)["abc"] / 2000 < 0.95  # mostly the common word, some others


# -- metrics --------------------------------------------------------------------------------------
def test_char_ngram_kl_matches_a_direct_computation():
    a, b = ["ab"], ["ab", "ba"]
    ga, gb = Counter(char_ngrams(a, 2)), Counter(char_ngrams(b, 2))
    assert sorted(ga) == ["^a", "ab", "b$"]
    union = sorted(set(ga) | set(gb))
    eps = 1e-3
    p = np.array([(ga[g] + eps) / (3 + eps * len(union)) for g in union])
    q = np.array([(gb[g] + eps) / (6 + eps * len(union)) for g in union])
    assert math.isclose(char_ngram_kl(a, b, 2), float((p * np.log(p / q)).sum()))
    assert char_ngram_kl(b, b, 2) == 0.0


def test_distinct_n_counts_distinct_ngrams_over_all():
    # "aa" -> ^^a ^aa aa$ ; "ab" -> ^^a ^ab ab$ : 6 trigrams, 5 distinct
    assert distinct_n(["aa", "ab"], 3) == 5 / 6


def _plain_levenshtein(a, b):
    d = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, d[0] = d[0], i
        for j, cb in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ca != cb))
    return d[-1]


@settings(max_examples=60, deadline=None)
@given(st.text("abcd", max_size=7), st.lists(st.text("abcd", min_size=1, max_size=7), min_size=1, max_size=12))
def test_edit_distances_match_a_plain_dynamic_programme(word, corpus):
    assert levenshtein(word, corpus[0]) == _plain_levenshtein(word, corpus[0])
    dist, near = nearest_words([word], corpus)
    want = min(_plain_levenshtein(word, c) for c in corpus)
    assert dist[0] == want and _plain_levenshtein(word, near[0]) == want


def test_text_metrics_on_a_tiny_split():
    split = load_word_split_from(["abc", "abca", "cab", "bca", "acb", "bac"], held=["cba"])
    ref = TextReference(split, min_len=2)
    m = text_metrics(["abc", "cba", "aaab", "a"], ref, parse_constraint("start=a", "abc", 2, 6))
    assert m["word_memorised_fraction"] == 0.25 and m["word_real_fraction"] == 0.25
    assert m["word_novel_fraction"] == 0.5 and m["word_valid_fraction"] == 0.75
    assert m["word_constraint_fraction"] == 0.75  # abc, aaab, a
    assert m["word_unique_fraction"] == 1.0
    # nearest training words: abc 0, cba -> abc/cab/bca/acb/bac at 2, aaab -> abca? 2 ; a -> 2
    assert math.isclose(m["word_edit_distance_mean"], (0 + 2 + 2 + 2) / 4)
    assert math.isclose(m["word_nll"], float(ref.train_model.nll_per_char(["abc", "cba", "aaab", "a"]).mean()))


def load_word_split_from(train, held):
    from clm.domains.text.corpus import WordSplit

    return WordSplit("tiny", sorted(train), sorted(held), AB, 6)


# -- constraints ------------------------------------------------------------------------------------
def test_constraints_parse_check_and_judge():
    c = parse_constraint("length=4-5,start=s,contains=ar", "abcdefghijklmnopqrstuvwxyz", 3, 10)
    assert c.satisfied(["star", "stark", "sta", "scarab", "tars"]).tolist() == [True, True, False, False, False]
    r = parse_constraint("rhymes=night", "abcdefghijklmnopqrstuvwxyz", 3, 10)
    assert "ight" in r.endings or "ght" in r.endings
    assert r.satisfied(["zlight", "night", "nighs"]).tolist() == [True, False, False]


@pytest.mark.parametrize("spec, message", [
    ("colour=red", "use key=value"),
    ("length=12", "cannot be met"),
    ("start=\u00e9", "outside the alphabet"),
    ("length=x", "give N or A-B"),
    ("rhymes=qqzzxx", "not in the CMU"),
    ("rhymes=night,end=ox", "cannot rhyme"),
])
@pytest.mark.slow
def test_bad_constraints_get_a_clear_error(spec, message):
    with pytest.raises(UserError, match=message):
        parse_constraint(spec, "abcdefghijklmnopqrstuvwxyz", 3, 10)


# -- the word-edit environment -------------------------------------------------------------------------
def _plain_apply(word, props, a, K, L):
    """The edit of one action, written plainly on strings."""
    n = len(word)
    if a < K:
        return props[a]
    a -= K
    if a < K * (L - 1):
        k, i = divmod(a, L - 1)
        i += 1
        return word[:i] + props[k][i:] if i <= n else word
    a -= K * (L - 1)
    if a < K * L:
        k, i = divmod(a, L)
        if i > n:
            return word
        c = props[k][i] if i < len(props[k]) else ""
        return (word[:i] + c + word[i + 1:]) if c else word[:i]
    a -= K * L
    if a < K * L:
        k, i = divmod(a, L)
        c = props[k][i] if i < len(props[k]) else ""
        return (word[:i] + c + word[i:])[:L] if c and i <= n else word
    a -= K * L
    if a < L:
        return word[:a] + word[a + 1:] if a < n else word
    return word


@settings(max_examples=80, deadline=None)
@given(st.text("abc", max_size=5), st.lists(st.text("abc", max_size=5), min_size=2, max_size=2),
       st.integers(0, 2 + 2 * 4 + 2 * 5 + 2 * 5 + 5))
def test_edits_match_a_plain_string_version(word, props, action):
    K, L = 2, 5
    env = WordEditVecEnv(1, L, AB.size, steps=3, n_proposals=K)
    w = AB.indices([word], L)
    p = AB.indices(props, L)[None]
    got = AB.decode_indices(env.apply(w, p, np.array([action])))[0]
    assert got == _plain_apply(word, props, action, K, L)


def test_edit_env_passes_gymnasiums_checker_and_names_every_action():
    env = WordEditEnv(max_len=5, n_symbols=AB.size, steps=3, n_proposals=2, seed=1)
    check_env(env, skip_render_check=True)
    assert len(edit_action_names(env)) == env.action_space.n


def test_rewards_are_potential_differences_plus_the_final_bonus():
    def propose(words, rng):  # always "abc" and "ca"
        return np.tile(AB.indices(["abc", "ca"], 5)[None], (len(words), 1, 1))

    def score(words):  # potential: the word's length
        return (words != 0).sum(1).astype(float)

    env = WordEditVecEnv(2, 5, AB.size, steps=3, n_proposals=2, propose=propose, score=score,
                         final_bonus=lambda w: np.full(len(w), 10.0))
    env.reset(seed=0)
    stop = env.n_actions - 1
    _, r, term, trunc, _ = env.step(np.array([0, 1]))  # take "abc", take "ca"
    assert r.tolist() == [3.0, 2.0] and not term.any() and not trunc.any()
    _, r, term, trunc, info = env.step(np.array([stop, env.n_actions - 2]))  # stop; delete letter 4 (no-op)
    assert r.tolist() == [10.0, 0.0] and term.tolist() == [True, False]
    ep = env.pop_finished()[0]
    assert AB.decode_indices(ep["words"]) == ["", "abc", "abc"] and ep["return"] == 13.0 and ep["env"] == 0
    st_ = env.state_dict()
    other = WordEditVecEnv(2, 5, AB.size, steps=3, n_proposals=2, propose=propose, score=score)
    other.load_state_dict(st_)
    assert np.array_equal(other._obs(), env._obs())
