"""A character n-gram model of words: the text domain's fluency judge and its
simplest baseline generator.

Counts, not training: the model is the corpus's n-gram counts with
interpolated absolute discounting (Ney, Essen and Kneser 1994; discount 0.75,
down to an add-one unigram), held as one dense table of log-probabilities
so that scoring and sampling a batch of words are array lookups. Symbols:
0 is the end of a word, 1..V the letters, V+1 the start padding (context only).
"""

from __future__ import annotations

import numpy as np

from clm.domains.text.corpus import Alphabet

__all__ = ["CharNgram"]


class CharNgram:
    """An order-``order`` character model fitted on ``words`` (``fit``)."""

    def __init__(self, alphabet: Alphabet, order: int = 4, discount: float = 0.75):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if not 0 < discount < 1:
            raise ValueError(f"discount must lie in (0, 1), got {discount}")
        self.alphabet, self.order, self.discount = alphabet, order, discount
        self.V = len(alphabet.letters)
        self.S = self.V + 2  # context symbols: end, letters, start
        self.log_probs: np.ndarray | None = None  # (S ** (order - 1), V + 1)

    # -- fitting --------------------------------------------------------------------------
    def _events(self, words: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """(context index, next symbol) of every prediction in ``words`` with ``k`` symbols of context."""
        max_len = max(len(w) for w in words)
        idx = self.alphabet.indices(words, max_len + 1)  # the end symbol (0) after each word
        lengths = np.array([len(w) for w in words])
        padded = np.concatenate([np.full((len(words), k), self.S - 1, np.int64), idx], 1)
        ctx = np.zeros((len(words), max_len + 1), np.int64)
        for j in range(k):  # context index: base-S number of the k previous symbols
            ctx = ctx * self.S + padded[:, j: j + max_len + 1]
        keep = np.arange(max_len + 1)[None, :] <= lengths[:, None]
        return ctx[keep], idx[keep]

    def fit(self, words: list[str]) -> "CharNgram":
        if not words:
            raise ValueError("an n-gram model needs at least one word")
        out = self.V + 1
        _, nxt = self._events(words, 0)
        counts = np.bincount(nxt, minlength=out).astype(np.float64)
        probs = (counts + 1.0) / (counts.sum() + out)  # add-one unigram: every symbol has some probability
        probs = probs[None, :]
        for k in range(1, self.order):
            ctx, nxt = self._events(words, k)
            table = np.zeros((self.S ** k, out))
            np.add.at(table, (ctx, nxt), 1.0)
            total = table.sum(1, keepdims=True)
            types = (table > 0).sum(1, keepdims=True)
            lower = probs[np.arange(self.S ** k) % self.S ** (k - 1)]  # drop the oldest symbol of the context
            with np.errstate(invalid="ignore", divide="ignore"):
                mixed = (np.maximum(table - self.discount, 0.0) + self.discount * types * lower) / total
            probs = np.where(total > 0, mixed, lower)
        self.log_probs = np.log(probs).astype(np.float64)
        return self

    # -- scoring --------------------------------------------------------------------------
    def _require(self) -> np.ndarray:
        if self.log_probs is None:
            raise RuntimeError("call fit() first")
        return self.log_probs

    def word_log_prob(self, words: list[str]) -> np.ndarray:
        """Natural-log probability of each whole word (its letters and its end)."""
        lp = self._require()
        if not words:
            return np.zeros(0)
        k = self.order - 1
        max_len = max(len(w) for w in words)
        idx = self.alphabet.indices(words, max_len + 1)
        lengths = np.array([len(w) for w in words])
        padded = np.concatenate([np.full((len(words), k), self.S - 1, np.int64), idx], 1)
        ctx = np.zeros((len(words), max_len + 1), np.int64)
        for j in range(k):
            ctx = ctx * self.S + padded[:, j: j + max_len + 1]
        step = lp[ctx, idx]
        return np.where(np.arange(max_len + 1)[None, :] <= lengths[:, None], step, 0.0).sum(1)

    def nll_per_char(self, words: list[str]) -> np.ndarray:
        """Negative log-likelihood per predicted symbol (the letters and the end), in nats."""
        lengths = np.array([len(w) + 1 for w in words], np.float64)
        return -self.word_log_prob(words) / lengths

    # -- sampling -------------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator, temperature: float = 1.0, max_len: int = 10) -> list[str]:
        """``n`` words drawn symbol by symbol at ``temperature`` (probabilities
        raised to 1/T and renormalised); a word that reaches ``max_len``
        letters ends there."""
        lp = self._require()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        k = self.order - 1
        hist = np.full((n, max(k, 1)), self.S - 1, np.int64)
        out = np.zeros((n, max_len), np.int64)
        alive = np.ones(n, bool)
        for t in range(max_len):
            ctx = np.zeros(n, np.int64)
            for j in range(k):
                ctx = ctx * self.S + hist[:, j]
            logits = lp[ctx] / temperature
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            sym = (p.cumsum(1) < rng.random((n, 1))).sum(1).clip(0, self.V)
            sym = np.where(alive, sym, 0)
            out[:, t] = sym
            alive &= sym != 0
            if k:
                hist = np.concatenate([hist[:, 1:], sym[:, None]], 1)
            if not alive.any():
                break
        return self.alphabet.decode_indices(out)
