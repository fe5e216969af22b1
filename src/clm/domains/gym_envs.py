"""What ``gymnasium.make("clm/...")`` builds: each registered env with its data.

The CLM's own envs take their levels, or G and D as callables; a Gymnasium
client has none of those, so each factory here builds them from data (a
level file, a Boxoban folder, the digits, a word list) with defaults that
need nothing else: the project's generated levels, scikit-learn's digits,
the CMU dictionary. The canvas and word-edit envs still take ``propose`` /
``realism`` / ``score`` callables as keyword arguments, so a trained G and D
can replace the data-made stand-ins.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from clm.core.errors import UserError
from clm.domains.images.canvas import CanvasEnv, CanvasVecEnv
from clm.domains.images.digits import load_image_data, resize_split
from clm.domains.levels.edit_env import INVALID_PENALTY, LevelEditEnv, LevelEditVecEnv
from clm.domains.levels.env import SokobanEnv, SokobanVecEnv
from clm.domains.levels.generator import generate_levels
from clm.domains.levels.io import read_levels
from clm.domains.levels.sim import MAX_STEPS
from clm.domains.text.corpus import DEFAULT_ALPHABET, load_word_split
from clm.domains.text.edit_env import WordEditEnv, WordEditVecEnv
from clm.domains.text.metrics import TextReference


# ------------------------------------------------------------------ Sokoban
@lru_cache(maxsize=8)
def _levels(levels: str | None, size: int, boxes: int, n_levels: int, min_pushes: int, seed: int | None,
            max_levels: int) -> tuple:
    if levels is not None:
        got = list(read_levels(Path(levels).expanduser()))  # a level that does not parse: LevelError naming file and line
        got = got[:max_levels] if max_levels > 0 else got
        sizes = sorted({lv.shape for lv in got})
        if len(sizes) > 1:
            raise UserError(f"{levels}: levels of several sizes ({', '.join(f'{h}x{w}' for h, w in sizes)}); "
                            f"one env holds one size: keep one size in the file or folder", exit_code=2)
        return tuple(got)
    if n_levels < 1:
        raise UserError(f"n_levels must be at least 1, got {n_levels}", exit_code=2)
    # The seed of `clm run`'s generated corpus for this size and box count (clm.hybrid.corpus), so an
    # agent trained here meets the levels a CLM run of the same size trains on.
    seed = 10_000 + size * 10 + boxes if seed is None else seed
    return tuple(generate_levels(n_levels, size=size, n_boxes=boxes, seed=seed, min_pushes=min_pushes))


def make_sokoban(levels: str | None = None, size: int = 7, boxes: int = 1, n_levels: int = 200, min_pushes: int = 3,
                 seed: int | None = None, max_levels: int = 0, obs: str = "onehot", max_steps: int = MAX_STEPS,
                 render_mode: str | None = None, sequential: bool = False) -> SokobanEnv:
    """``clm/Sokoban-v0``: one level per episode, drawn from ``levels`` (a
    Boxoban file, or a folder of them such as ``boxoban/unfiltered/train``;
    ``max_levels`` > 0 reads the first that many) or, by default, from
    ``n_levels`` levels of the project's generator (``size`` x ``size``,
    ``boxes`` boxes, at least ``min_pushes`` optimal pushes)."""
    pool = list(_levels(levels, size, boxes, n_levels, min_pushes, seed, max_levels))
    return SokobanEnv(pool, obs=obs, max_steps=max_steps, render_mode=render_mode, sequential=sequential)


def make_sokoban_vec(num_envs: int = 1, levels: str | None = None, size: int = 7, boxes: int = 1,
                     n_levels: int = 200, min_pushes: int = 3, seed: int | None = None, max_levels: int = 0,
                     max_steps: int = MAX_STEPS, copy: bool = True, sequential: bool = False) -> SokobanVecEnv:
    """The vector version (``gymnasium.make_vec``): the compiled SokobanVecEnv, same data arguments."""
    pool = list(_levels(levels, size, boxes, n_levels, min_pushes, seed, max_levels))
    return SokobanVecEnv(pool, num_envs, max_steps=max_steps, copy=copy, sequential=sequential)


def make_level_edit(levels: str | None = None, size: int = 7, boxes: int = 1, n_levels: int = 200,
                    min_pushes: int = 3, seed: int | None = None, max_levels: int = 0, bins: tuple = (4, 4),
                    horizon: int = 4, max_boxes: int = 4, score_fn=None, target_fn=None,
                    invalid_penalty: float = INVALID_PENALTY, render_mode: str | None = None) -> LevelEditEnv:
    """``clm/LevelEdit-v0``: one level edited toward a target QD cell (LevelEditEnv's arguments), its start
    levels from the same data arguments as clm/Sokoban-v0. Without ``score_fn`` (the judge) the only
    rewards are the refused edits' penalties."""
    pool = list(_levels(levels, size, boxes, n_levels, min_pushes, seed, max_levels))
    return LevelEditEnv(pool, tuple(bins), horizon, max_boxes, score_fn, target_fn, invalid_penalty, render_mode)


def make_level_edit_vec(num_envs: int = 8, levels: str | None = None, size: int = 7, boxes: int = 1,
                        n_levels: int = 200, min_pushes: int = 3, seed: int | None = None, max_levels: int = 0,
                        bins: tuple = (4, 4), horizon: int = 4, max_boxes: int = 4, score_fn=None, target_fn=None,
                        invalid_penalty: float = INVALID_PENALTY) -> LevelEditVecEnv:
    """The vector version of :func:`make_level_edit` (LevelEditVecEnv)."""
    pool = list(_levels(levels, size, boxes, n_levels, min_pushes, seed, max_levels))
    return LevelEditVecEnv(pool, num_envs, tuple(bins), horizon, max_boxes, score_fn, target_fn, invalid_penalty)


# ------------------------------------------------------------------ canvas
@lru_cache(maxsize=4)
def digit_reference(data: str, size: int) -> tuple[np.ndarray, float]:
    """Training images (N, S, S) float32 in [-1, 1], and the median distance of
    a held-out image to its nearest training image (realism's unit)."""
    split = resize_split(load_image_data(data), size)
    train = split.train_x[:, 0].numpy().astype(np.float32)
    test = split.test_x[:, 0].numpy().astype(np.float32)[:256]
    return train, float(np.median(_nearest_distance(test, train)))


def _nearest_distance(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """RMS pixel distance of each image of ``x`` to its nearest image of ``ref``."""
    a = x.reshape(len(x), -1).astype(np.float64)
    b = ref.reshape(len(ref), -1).astype(np.float64)
    d2 = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
    return np.sqrt(np.maximum(d2.min(1), 0.0) / a.shape[1])


def _canvas_args(data: str, size: int, n_proposals: int, propose, realism):
    train, unit = digit_reference(data, size)

    def real_proposals(canvases: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        idx = rng.integers(0, len(train), (len(canvases), n_proposals))
        return train[idx][:, :, None]

    def closeness(canvases: np.ndarray) -> np.ndarray:
        # exp(-d / d_ref): 1 on a training image, 1/e at a typical held-out digit's distance from them
        return np.exp(-_nearest_distance(canvases[:, 0], train) / unit)

    return propose or real_proposals, realism or closeness


def make_canvas(data: str = "digits", size: int = 16, steps: int = 6, n_proposals: int = 2, window: int = 8,
                stride: int = 4, fragments: bool = True, strokes: bool = True, propose=None, realism=None,
                final_bonus=None, seed: int = 0, whole: bool = False, keep: bool = False) -> CanvasEnv:
    """``clm/Canvas-v0``: the art domain's canvas (CanvasEnv's arguments).
    ``data``: ``digits`` (scikit-learn's) or ``mnist:PATH_TO_IMAGES_IDX``;
    without ``propose`` the K proposals are random training images, without
    ``realism`` a canvas's realism is exp(-d / d_ref), d its RMS distance to
    the nearest training image and d_ref the median held-out image's."""
    propose, realism = _canvas_args(data, size, n_proposals, propose, realism)
    return CanvasEnv(size, steps, n_proposals, window, stride, fragments, strokes, propose, realism, final_bonus,
                     seed, whole, keep)


def make_canvas_vec(num_envs: int = 8, data: str = "digits", size: int = 16, steps: int = 6, n_proposals: int = 2,
                    window: int = 8, stride: int = 4, fragments: bool = True, strokes: bool = True, propose=None,
                    realism=None, final_bonus=None, seed: int = 0, whole: bool = False,
                    keep: bool = False) -> CanvasVecEnv:
    """The vector version of :func:`make_canvas` (CanvasVecEnv)."""
    propose, realism = _canvas_args(data, size, n_proposals, propose, realism)
    return CanvasVecEnv(num_envs, size, steps, n_proposals, window, stride, fragments, strokes, propose, realism,
                        final_bonus, seed, whole, keep)


# ------------------------------------------------------------------ words
@lru_cache(maxsize=4)
def word_reference(data: str, letters: str, min_len: int, max_len: int) -> TextReference:
    return TextReference(load_word_split(data, letters, min_len, max_len), min_len=min_len)


def _word_args(data: str, letters: str, min_len: int, max_len: int, n_proposals: int, propose, score):
    ref = word_reference(data, letters, min_len, max_len)
    train = ref.split.alphabet.indices(ref.split.train, max_len)

    def real_proposals(words: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return train[rng.integers(0, len(train), (len(words), n_proposals))]

    def fluency(words: np.ndarray) -> np.ndarray:
        text = ref.split.alphabet.decode_indices(words)
        return np.where([len(w) > 0 for w in text], ref.fluency(text), 0.0)

    return ref.split.alphabet.size, propose or real_proposals, score or fluency


def make_word_edit(data: str = "cmudict", letters: str = DEFAULT_ALPHABET, min_len: int = 3, max_len: int = 10,
                   steps: int = 6, n_proposals: int = 2, propose=None, score=None, final_bonus=None,
                   seed: int = 0) -> WordEditEnv:
    """``clm/WordEdit-v0``: the text domain's word editing (WordEditEnv's
    arguments). ``data``: ``cmudict`` or a file of words, one per line;
    without ``propose`` the K proposals are random training words, without
    ``score`` a word's potential is its fluency under a 4-gram character
    model of the training words (1: as likely per letter as the median
    held-out word), so a step's reward is the change of fluency."""
    n_symbols, propose, score = _word_args(data, letters, min_len, max_len, n_proposals, propose, score)
    return WordEditEnv(max_len, n_symbols, steps, n_proposals, propose, score, final_bonus, seed)


def make_word_edit_vec(num_envs: int = 8, data: str = "cmudict", letters: str = DEFAULT_ALPHABET, min_len: int = 3,
                       max_len: int = 10, steps: int = 6, n_proposals: int = 2, propose=None, score=None,
                       final_bonus=None, seed: int = 0) -> WordEditVecEnv:
    """The vector version of :func:`make_word_edit` (WordEditVecEnv)."""
    n_symbols, propose, score = _word_args(data, letters, min_len, max_len, n_proposals, propose, score)
    return WordEditVecEnv(num_envs, max_len, n_symbols, steps, n_proposals, propose, score, final_bonus, seed)
