"""The text domain's metrics, named once (like the level and image ones).

- ``word_novel_fraction``: share of words in no split of the corpus (new words);
- ``word_memorised_fraction``: share that are training words;
- ``word_real_fraction``: share that are held-out words (real words G never saw);
- ``word_edit_distance_mean``: mean Levenshtein distance to the nearest training word;
- ``char_kl``: KL(P_words || P_train) of character trigrams (word boundaries
  included), with its floor ``char_kl_floor`` (as many held-out words against
  train: the KL of real words drawn at this sample size);
- ``word_nll``: negative log-likelihood per symbol under the character model
  fitted on the training split (nats; lower reads more like the corpus);
- ``word_nll_heldout_model``: the same under a model fitted on the held-out
  split (a judge G's training never saw);
- ``word_distinct_3``: distinct character trigrams / all trigrams (Li et
  al.'s distinct-n), and ``word_unique_fraction``: distinct words / words;
- ``word_constraint_fraction``: share meeting the user's constraint;
- ``word_valid_fraction``: share of ``min_len`` to ``max_len`` letters.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numba
import numpy as np

from clm.domains.text.corpus import WordSplit
from clm.domains.text.ngram import CharNgram

__all__ = ["char_ngrams", "char_ngram_kl", "distinct_n", "levenshtein", "nearest_words", "TextReference",
           "text_metrics"]


def char_ngrams(words: list[str], n: int = 3) -> list[str]:
    """Every character n-gram of ``words``, with '^' and '$' marking each word's start and end."""
    out = []
    for w in words:
        s = "^" * (n - 1) + w + "$"
        out += [s[i: i + n] for i in range(len(s) - n + 1)]
    return out


def char_ngram_kl(words: list[str], reference: list[str], n: int = 3, eps: float = 1e-3) -> float:
    """KL(P_words || P_reference) of the character n-gram distributions, in
    nats; both over the union of n-grams seen in either list, each count
    smoothed by ``eps`` (as :func:`clm.domains.levels.metrics.tile_pattern_kl`)."""
    if not words or not reference:
        raise ValueError("char_ngram_kl needs two non-empty word lists")
    ca, cb = Counter(char_ngrams(words, n)), Counter(char_ngrams(reference, n))
    union = sorted(set(ca) | set(cb))
    a = np.array([ca[g] for g in union], np.float64)
    b = np.array([cb[g] for g in union], np.float64)
    p = (a + eps) / (a.sum() + eps * len(union))
    q = (b + eps) / (b.sum() + eps * len(union))
    return float(np.sum(p * np.log(p / q)))


def distinct_n(words: list[str], n: int = 3) -> float:
    """Distinct character n-grams over all n-grams of ``words`` (boundaries marked)."""
    grams = char_ngrams(words, n)
    return len(set(grams)) / max(len(grams), 1)


@numba.njit(cache=True)
def _levenshtein(a, la, b, lb, bound):
    """Edit distance of a[:la] and b[:lb]; returns ``bound`` as soon as it is sure to reach it."""
    prev = np.arange(lb + 1)
    cur = np.zeros(lb + 1, np.int64)
    for i in range(1, la + 1):
        cur[0] = i
        row_min = i
        for j in range(1, lb + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            cur[j] = v
            if v < row_min:
                row_min = v
        if row_min >= bound:
            return bound
        prev, cur = cur, prev
    return min(prev[lb], bound)


@numba.njit(cache=True)
def _nearest(q, ql, c, cl):
    n = q.shape[0]
    dist = np.zeros(n, np.int64)
    which = np.zeros(n, np.int64)
    for i in range(n):
        best = 1 << 30
        arg = -1
        for j in range(c.shape[0]):
            if abs(cl[j] - ql[i]) >= best:
                continue
            d = _levenshtein(q[i], ql[i], c[j], cl[j], best)
            if d < best:
                best, arg = d, j
                if best == 0:
                    break
        dist[i], which[i] = best, arg
    return dist, which


def _codes(words: list[str]) -> tuple[np.ndarray, np.ndarray]:
    width = max([len(w) for w in words] + [1])
    codes = np.zeros((len(words), width), np.int64)
    for i, w in enumerate(words):
        codes[i, :len(w)] = [ord(ch) for ch in w]
    return codes, np.array([len(w) for w in words], np.int64)


def levenshtein(a: str, b: str) -> int:
    """The Levenshtein (insert, delete, replace) distance of two words."""
    (ca, la), (cb, lb) = _codes([a]), _codes([b])
    return int(_levenshtein(ca[0], la[0], cb[0], lb[0], 1 << 30))


def nearest_words(words: list[str], corpus: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each word's edit distance to its nearest corpus word, and that word."""
    if not corpus:
        raise ValueError("nearest_words needs a non-empty corpus")
    if not words:
        return np.zeros(0, np.int64), []
    q, ql = _codes(words)
    c, cl = _codes(corpus)
    dist, which = _nearest(q, ql, c, cl)
    return dist, [corpus[j] for j in which]


@dataclass
class TextReference:
    """What the text metrics compare with: a corpus split and its two character models."""

    split: WordSplit
    min_len: int = 3
    order: int = 4
    train_model: CharNgram = field(init=False)
    heldout_model: CharNgram = field(init=False)

    def __post_init__(self):
        self.train_set = set(self.split.train)
        self.held_set = set(self.split.held_out)
        self.train_model = CharNgram(self.split.alphabet, self.order).fit(self.split.train)
        self.heldout_model = CharNgram(self.split.alphabet, min(self.order, 3)).fit(self.split.held_out)
        # fluency's unit: the median held-out word's NLL per symbol under the training model
        self.real_nll = float(np.median(self.train_model.nll_per_char(self.split.held_out)))

    def fluency(self, words: list[str]) -> np.ndarray:
        """exp(median real NLL - NLL) capped at 1: 1 for a word at least as
        likely per symbol as the median held-out word, 1/e one nat worse."""
        if not words:
            return np.zeros(0)
        nll = self.train_model.nll_per_char(words)
        return np.minimum(np.exp(self.real_nll - nll), 1.0)

    def novel(self, words: list[str]) -> np.ndarray:
        return np.array([w not in self.train_set and w not in self.held_set for w in words], bool)

    def valid(self, words: list[str]) -> np.ndarray:
        return np.array([self.min_len <= len(w) <= self.split.max_len for w in words], bool)


def text_metrics(words: list[str], ref: TextReference, constraint=None, floor_seed: int = 0,
                 edit_distance: bool = True) -> dict[str, float]:
    """Every text metric of ``words`` (see the module docstring)."""
    if not words:
        raise ValueError("text_metrics needs at least one word")
    nonempty = [w for w in words if w] or ["?"]
    rng = np.random.default_rng(floor_seed)
    floor_sample = [ref.split.held_out[i] for i in rng.choice(len(ref.split.held_out), min(len(words),
                                                              len(ref.split.held_out)), replace=False)]
    out = {
        "word_valid_fraction": float(ref.valid(words).mean()),
        "word_novel_fraction": float(ref.novel(words).mean()),
        "word_memorised_fraction": float(np.mean([w in ref.train_set for w in words])),
        "word_real_fraction": float(np.mean([w in ref.held_set for w in words])),
        "char_kl": char_ngram_kl(words, ref.split.train),
        "char_kl_floor": char_ngram_kl(floor_sample, ref.split.train),
        "word_nll": float(ref.train_model.nll_per_char(words).mean()),
        "word_nll_heldout_model": float(ref.heldout_model.nll_per_char(words).mean()),
        "word_fluency_mean": float(ref.fluency(words).mean()),
        "word_distinct_3": distinct_n(words, 3),
        "word_unique_fraction": len(set(words)) / len(words),
        "word_length_mean": float(np.mean([len(w) for w in words])),
    }
    if edit_distance:
        out["word_edit_distance_mean"] = float(nearest_words(nonempty, ref.split.train)[0].mean())
    if constraint is not None:
        out["word_constraint_fraction"] = float(constraint.satisfied(words).mean())
    return out
