"""The art domain's environment: a DQN paints a digit on a canvas.

At each of ``steps`` steps the painter either pastes a fragment (one window
of one of the generator's K full-canvas proposals, drawn for the canvas as it
is now) or makes a brush stroke (paint or erase one 4x4 block). The reward is
the change of the discriminator's belief that the canvas is real, so an
episode's return is how far the painter moved a blank canvas towards a real
digit; the caller's ``final_bonus`` (recognisability, novelty) is added on
the last step. G and D come in as plain numpy callables, so this module stays
below torch and the GAN in the layers, and tests drive it with hand-made
functions.

* :class:`CanvasVecEnv`: ``num_envs`` canvases at once, same-step autoreset,
  checkpointed by ``state_dict()`` (plain data, no pickle).
* :class:`CanvasEnv`: one canvas with the plain ``gymnasium.Env`` API.
* :func:`fragment_windows`, :func:`action_names`: the action layout, for the
  report.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from clm.core.errors import UserError
from clm.domains.single_env import SingleEnvView

__all__ = ["BRUSH", "BLOCK", "CanvasVecEnv", "CanvasEnv", "fragment_windows", "action_names"]

BLOCK = 4  # a stroke's block is BLOCK x BLOCK pixels
# The brush: a soft disc, white at the block's centre, fading to the blank
# value at its corners, so strokes make round marks rather than squares.
BRUSH = np.array([[-1.0, 0.0, 0.0, -1.0],
                  [0.0, 1.0, 1.0, 0.0],
                  [0.0, 1.0, 1.0, 0.0],
                  [-1.0, 0.0, 0.0, -1.0]], np.float32)
BLANK = -1.0

Propose = Callable[[np.ndarray, np.random.Generator], np.ndarray]
Score = Callable[[np.ndarray], np.ndarray]


def _check_layout(size: int, window: int, stride: int) -> None:
    if size < 1:
        raise UserError(f"size must be at least 1, got size={size}")
    if not 1 <= window <= size:
        raise UserError(f"window must be between 1 and size ({size}), got window={window}")
    if stride < 1:
        raise UserError(f"stride must be at least 1, got stride={stride}")


def fragment_windows(size: int, window: int, stride: int) -> list[tuple[slice, slice]]:
    """The windows a fragment can be pasted through, row-major: every
    ``window`` x ``window`` square whose top-left corner lies on the
    ``stride`` grid and that fits on the canvas."""
    _check_layout(size, window, stride)
    starts = range(0, size - window + 1, stride)
    return [(slice(r, r + window), slice(c, c + window)) for r in starts for c in starts]


def _batch(fn, name: str, shape: tuple, *args) -> np.ndarray:
    """Call a user callable and insist on the shape this env relies on: a
    wrong shape would otherwise surface as a broadcast error far away."""
    out = np.asarray(fn(*args))
    if out.shape != shape:
        raise UserError(f"{name} returned an array of shape {out.shape}; expected {shape}")
    return out


class CanvasVecEnv(gym.vector.VectorEnv):
    """``num_envs`` canvases painted at once (same-step autoreset).

    Arguments:

    * ``num_envs``: canvases stepped together (one batched G and D call per step).
    * ``size``: the canvas is ``size`` x ``size`` pixels, float32 in [-1, 1], blank = -1.
    * ``steps``: actions per episode; the episode is truncated after the last.
    * ``n_proposals``: K, the generator's proposals offered at each step.
    * ``window``: side of a fragment's square window, in pixels.
    * ``stride``: distance between neighbouring windows, in pixels.
    * ``fragments``: offer the K * W fragment actions.
    * ``strokes``: offer the 2 * P brush actions (paint, then erase, per 4x4 block).
    * ``propose``: ``propose(canvases (N,1,S,S), rng) -> (N,K,1,S,S)`` in [-1, 1],
      G's proposals for each canvas; None draws uniform noise (tests only).
    * ``realism``: ``realism(canvases) -> (N,)``, D's probability that each
      canvas is real; None scores every canvas 0.
    * ``final_bonus``: ``final_bonus(canvases) -> (N,)`` added to the last
      step's reward (recognisability + novelty); None adds nothing.
    * ``seed``: seeds the generator handed to ``propose``, so proposals are
      reproducible and are saved with the env.
    * ``whole``: the whole canvas is one more window, the first (taking a
      proposal as it is: the painter is then at least a best-of-K choice
      among G's samples, and refines from there).
    * ``keep``: one more action, the last, that leaves the canvas as it is
      (a painter with a good canvas need not spoil it to spend its steps).

    Observation per env: ``(2 + K, S, S)`` float32: the canvas, the K
    proposals, a constant plane ``t / steps`` (so that the painter knows how
    many actions are left). Finished episodes are kept in ``finished`` (the
    last 256; see :meth:`pop_finished`) for the report and for feedback.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 8, size: int = 16, steps: int = 6, n_proposals: int = 2,
                 window: int = 8, stride: int = 4, fragments: bool = True, strokes: bool = True,
                 propose: Propose | None = None, realism: Score | None = None, final_bonus: Score | None = None,
                 seed: int = 0, whole: bool = False, keep: bool = False):
        if num_envs < 1:
            raise UserError(f"num_envs must be at least 1, got num_envs={num_envs}")
        _check_layout(size, window, stride)
        if steps < 1:
            raise UserError(f"steps must be at least 1, got steps={steps}")
        if n_proposals < 1:
            raise UserError(f"n_proposals must be at least 1, got n_proposals={n_proposals}")
        if not (fragments or strokes):
            raise UserError("fragments and strokes are both off: the painter would have no action; turn one on")
        if strokes and size < BLOCK:
            raise UserError(f"strokes paint {BLOCK}x{BLOCK} blocks, so size must be at least {BLOCK}, got size={size}")
        self.num_envs, self.size, self.steps, self.n_proposals = num_envs, size, steps, n_proposals
        self.window, self.stride, self.fragments, self.strokes = window, stride, fragments, strokes
        self.propose, self.realism, self.final_bonus = propose, realism, final_bonus

        self.windows = ([(slice(0, size), slice(0, size))] if whole else []) + fragment_windows(size, window, stride)
        self._win_mask = np.zeros((len(self.windows), size, size), bool)
        for w, (rs, cs) in enumerate(self.windows):
            self._win_mask[w, rs, cs] = True
        nb = size // BLOCK
        self._block_mask = np.zeros((nb * nb, size, size), bool)
        self._brush_plane = np.full((nb * nb, size, size), BLANK, np.float32)  # max with BLANK changes nothing
        for p in range(nb * nb):
            r, c = divmod(p, nb)
            block = (slice(r * BLOCK, (r + 1) * BLOCK), slice(c * BLOCK, (c + 1) * BLOCK))
            self._block_mask[p][block] = True
            self._brush_plane[p][block] = BRUSH
        self._n_frag = n_proposals * len(self.windows) if fragments else 0
        self._n_blocks = nb * nb if strokes else 0
        self.keep = keep

        self.single_observation_space = gym.spaces.Box(-1.0, 1.0, (2 + n_proposals, size, size), np.float32)
        self.single_action_space = gym.spaces.Discrete(self.n_actions)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.rng = np.random.default_rng(seed)
        self.finished: deque = deque(maxlen=256)
        self._started = False

    @property
    def n_actions(self) -> int:
        """Fragment actions first (K * W), then paint (P) and erase (P), then keep (with ``keep``)."""
        return self._n_frag + 2 * self._n_blocks + int(self.keep)

    # ------------------------------------------------------------ G and D
    def _propose(self, canvases: np.ndarray) -> np.ndarray:
        n, k, s = len(canvases), self.n_proposals, self.size
        if self.propose is None:
            return self.rng.uniform(-1.0, 1.0, (n, k, 1, s, s)).astype(np.float32)
        out = _batch(self.propose, "propose", (n, k, 1, s, s), canvases.copy(), self.rng)
        # Clipped so that the observation stays inside its Box even if G overshoots by a rounding error.
        return np.clip(out, -1.0, 1.0).astype(np.float32)

    def _realism(self, canvases: np.ndarray) -> np.ndarray:
        if self.realism is None:
            return np.zeros(len(canvases))
        return _batch(self.realism, "realism", (len(canvases),), canvases.copy()).astype(np.float64)

    def _bonus(self, canvases: np.ndarray) -> np.ndarray:
        if self.final_bonus is None:
            return np.zeros(len(canvases))
        return _batch(self.final_bonus, "final_bonus", (len(canvases),), canvases.copy()).astype(np.float64)

    # ------------------------------------------------------------ episodes
    def _obs(self) -> np.ndarray:
        obs = np.empty((self.num_envs, 2 + self.n_proposals, self.size, self.size), np.float32)
        obs[:, 0] = self._canvas[:, 0]
        obs[:, 1:-1] = self._proposals[:, :, 0]
        obs[:, -1] = (self._t / self.steps)[:, None, None]
        return obs

    def _start(self, idx: np.ndarray) -> None:
        """Blank canvases for envs ``idx``, with D's score and G's proposals for them."""
        self._canvas[idx] = BLANK
        self._t[idx] = 0
        self._history[idx] = BLANK
        self._actions[idx] = 0
        self._return[idx] = 0.0
        self._real[idx] = self._realism(self._canvas[idx])
        self._proposals[idx] = self._propose(self._canvas[idx])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        n, s = self.num_envs, self.size
        self._canvas = np.full((n, 1, s, s), BLANK, np.float32)
        self._proposals = np.zeros((n, self.n_proposals, 1, s, s), np.float32)
        self._t = np.zeros(n, np.int64)
        self._real = np.zeros(n)
        self._history = np.full((n, self.steps + 1, s, s), BLANK, np.float32)
        self._actions = np.zeros((n, self.steps), np.int64)
        self._return = np.zeros(n)
        self._start(np.arange(n))
        self._started = True
        return self._obs(), {}

    def _check_actions(self, actions) -> np.ndarray:
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer) \
                or (a.size and (a.min() < 0 or a.max() >= self.n_actions)):
            raise ValueError(f"actions must be {self.num_envs} integers in 0..{self.n_actions - 1}, "
                             f"got {actions!r}")
        return a.astype(np.int64)

    def _apply(self, a: np.ndarray) -> None:
        """Each env's action on its canvas (in place)."""
        c = self._canvas
        i = np.flatnonzero(a < self._n_frag)
        if len(i):
            k, w = np.divmod(a[i], len(self.windows))
            c[i, 0] = np.where(self._win_mask[w], self._proposals[i, k, 0], c[i, 0])
        s = a - self._n_frag
        i = np.flatnonzero((s >= 0) & (s < self._n_blocks))
        if len(i):
            c[i, 0] = np.maximum(c[i, 0], self._brush_plane[s[i]])
        i = np.flatnonzero((s >= self._n_blocks) & (s < 2 * self._n_blocks))  # the keep action changes nothing
        if len(i):
            c[i, 0] = np.where(self._block_mask[s[i] - self._n_blocks], np.float32(BLANK), c[i, 0])

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = self._check_actions(actions)
        rows = np.arange(self.num_envs)
        self._actions[rows, self._t] = a
        self._apply(a)
        self._t += 1
        self._history[rows, self._t] = self._canvas[:, 0]
        real = self._realism(self._canvas)
        reward = real - self._real
        self._real = real
        truncated = self._t >= self.steps
        idx = np.flatnonzero(truncated)
        if len(idx):
            reward[idx] += self._bonus(self._canvas[idx])
        self._return += reward
        # Proposals for the final canvases too: final_obs is what a DQN bootstraps from at truncation.
        self._proposals = self._propose(self._canvas)
        obs = self._obs()
        infos = {}
        if len(idx):
            infos = {"final_obs": obs.copy(), "_final_obs": truncated.copy(),
                     "final_canvas": self._canvas.copy(), "_final_canvas": truncated.copy()}
            for i in idx:
                self.finished.append({"canvases": self._history[i].copy(), "actions": self._actions[i].copy(),
                                      "return": float(self._return[i])})
            self._start(idx)
            obs = self._obs()
        return obs, reward.astype(np.float32), np.zeros(self.num_envs, bool), truncated, infos

    def pop_finished(self) -> list[dict]:
        """The finished episodes not yet collected (oldest first), and forget them."""
        out = list(self.finished)
        self.finished.clear()
        return out

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything a resumed run needs, as arrays and numbers (no pickle):
        the canvases in play with their proposals, step counts, D's cached
        scores and histories so far, the finished episodes not yet collected,
        and the random generator. The callables are the caller's and are
        given again to the new env."""
        st = {"rng": self.rng.bit_generator.state, "started": self._started,
              "finished": [{"canvases": f["canvases"].copy(), "actions": f["actions"].copy(),
                            "return": float(f["return"])} for f in self.finished]}
        if self._started:
            st.update(canvases=self._canvas.copy(), proposals=self._proposals.copy(), t=self._t.copy(),
                      realism=self._real.copy(), history=self._history.copy(), actions=self._actions.copy(),
                      returns=self._return.copy())
        return st

    def load_state_dict(self, state: dict) -> None:
        n, k, s = self.num_envs, self.n_proposals, self.size
        if state["started"]:
            want = {"canvases": (n, 1, s, s), "proposals": (n, k, 1, s, s), "history": (n, self.steps + 1, s, s)}
            for key, shape in want.items():
                if np.shape(state[key]) != shape:
                    raise UserError(f"the saved canvas env's {key} have shape {np.shape(state[key])}; this config's "
                                    f"are {shape}: resume with the config the run started with")
            self._canvas = np.array(state["canvases"], np.float32)
            self._proposals = np.array(state["proposals"], np.float32)
            self._t = np.array(state["t"], np.int64)
            self._real = np.array(state["realism"], np.float64)
            self._history = np.array(state["history"], np.float32)
            self._actions = np.array(state["actions"], np.int64)
            self._return = np.array(state["returns"], np.float64)
        self.rng.bit_generator.state = state["rng"]
        self._started = bool(state["started"])
        self.finished.clear()
        for f in state["finished"]:
            self.finished.append({"canvases": np.array(f["canvases"], np.float32),
                                  "actions": np.array(f["actions"], np.int64), "return": float(f["return"])})

    def close_extras(self, **kwargs) -> None:
        pass


class CanvasEnv(SingleEnvView):
    """One canvas: a thin single-env view of CanvasVecEnv (num_envs=1), for
    Gymnasium's env checker and for users who want the plain Env API.

    Arguments are :class:`CanvasVecEnv`'s. The env's ``np_random`` is the
    generator handed to ``propose``, so ``reset(seed=...)`` reproduces the
    proposals too. At the last step ``step`` returns the final observation
    with ``truncated=True``; the next ``reset`` starts a blank canvas.
    """

    def __init__(self, size: int = 16, steps: int = 6, n_proposals: int = 2, window: int = 8, stride: int = 4,
                 fragments: bool = True, strokes: bool = True, propose: Propose | None = None,
                 realism: Score | None = None, final_bonus: Score | None = None, seed: int = 0,
                 whole: bool = False, keep: bool = False):
        super().__init__(CanvasVecEnv(1, size, steps, n_proposals, window, stride, fragments, strokes,
                                      propose, realism, final_bonus, seed, whole, keep))


def action_names(env: CanvasVecEnv | CanvasEnv) -> list[str]:
    """A readable name per action, in action order, for the report:
    ``fragment k at (r,c)`` (the window's top-left pixel),
    ``paint block (r,c)`` and ``erase block (r,c)`` (the block's row and
    column in the grid of 4x4 blocks)."""
    v = env.vec if isinstance(env, CanvasEnv) else env
    names = []
    if v.fragments:
        for k in range(v.n_proposals):
            names += [f"whole proposal {k}" if rs.stop - rs.start == v.size else f"fragment {k} at ({rs.start},{cs.start})"
                      for rs, cs in v.windows]
    if v.strokes:
        nb = v.size // BLOCK
        for verb in ("paint", "erase"):
            names += [f"{verb} block ({p // nb},{p % nb})" for p in range(nb * nb)]
    if v.keep:
        names.append("keep the canvas")
    return names
