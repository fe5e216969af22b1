"""The text domain's environment: a DQN writes a word by editing it with the
generator's proposals.

An episode starts from the empty word. At each step G proposes ``K`` words
conditioned on the word as it is now, and the agent either takes a proposal
whole, splices one on (keeps its own first ``i`` letters and takes the
proposal's from ``i`` on), replaces or inserts one letter taken from a
proposal at the same position, deletes a letter, or stops. The reward is
the change of the caller's ``score`` (D's realism plus fluency), and the
caller's ``final_bonus`` (novelty, the user's constraint) when the episode
ends, by ``stop`` (terminated) or after ``steps`` edits (truncated).

Words are (L,) int arrays of symbol indices (0 = end; see
:class:`clm.domains.text.corpus.Alphabet`): everything after the first end
symbol is end. G and D come in as numpy callables, so this module stays below
torch and the GAN in the layers, and tests drive it with hand-made ones.

* :class:`WordEditVecEnv`: ``num_envs`` words at once (same-step autoreset),
  every edit vectorised over the envs, checkpointed by ``state_dict()``.
* :class:`WordEditEnv`: one word with the plain ``gymnasium.Env`` API.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from clm.core.errors import UserError
from clm.domains.single_env import SingleEnvView

__all__ = ["WordEditVecEnv", "WordEditEnv", "edit_action_names", "normalise_words"]

Propose = Callable[[np.ndarray, np.random.Generator], np.ndarray]
Score = Callable[[np.ndarray], np.ndarray]


def normalise_words(words: np.ndarray) -> np.ndarray:
    """Set every symbol after a word's first end symbol to end (in place; returned)."""
    words[np.cumsum(words == 0, axis=-1) > 0] = 0
    return words


def _call(fn, name: str, shape: tuple, *args) -> np.ndarray:
    out = np.asarray(fn(*args))
    if out.shape != shape:
        raise UserError(f"{name} returned an array of shape {out.shape}; expected {shape}")
    return out


class WordEditVecEnv(gym.vector.VectorEnv):
    """``num_envs`` words edited at once.

    Arguments: ``max_len`` (L, letters per word at most), ``n_symbols`` (C,
    the alphabet plus the end symbol), ``steps`` (edits per episode),
    ``n_proposals`` (K), ``propose(words (N, L), rng) -> (N, K, L)`` (None:
    uniform random letters, tests only), ``score(words) -> (N,)`` (None: 0),
    ``final_bonus(words) -> (N,)`` (None: 0), ``seed`` (the generator handed to
    ``propose``).

    Actions, in order: take proposal k (K), splice proposal k at i (K x (L-1),
    i = 1..L-1), replace letter i with proposal k's (K x L), insert proposal
    k's letter i at i (K x L), delete letter i (L), stop (1). An edit that
    does not apply (a position past the word's end) leaves the word as it is.

    Observation per env, float32, flat: the word one-hot (L x C), the K
    proposals one-hot (K x L x C), and ``t / steps``. Finished episodes (their
    words step by step, actions and return) are kept for the report and for
    feedback (:meth:`pop_finished`).
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 8, max_len: int = 10, n_symbols: int = 27, steps: int = 6,
                 n_proposals: int = 2, propose: Propose | None = None, score: Score | None = None,
                 final_bonus: Score | None = None, seed: int = 0):
        checks = [(num_envs >= 1, "num_envs"), (max_len >= 2, "max_len (>= 2)"), (n_symbols >= 2, "n_symbols (>= 2)"),
                  (steps >= 1, "steps"), (n_proposals >= 1, "n_proposals")]
        for ok, what in checks:
            if not ok:
                raise UserError(f"the word-edit env needs a positive {what}")
        self.num_envs, self.L, self.C, self.steps, self.K = num_envs, max_len, n_symbols, steps, n_proposals
        self.propose, self.score, self.final_bonus = propose, score, final_bonus
        K, L = n_proposals, max_len
        self.n_take, self.n_splice, self.n_replace, self.n_insert, self.n_delete = K, K * (L - 1), K * L, K * L, L
        self.n_actions = self.n_take + self.n_splice + self.n_replace + self.n_insert + self.n_delete + 1
        self.obs_dim = (1 + K) * L * n_symbols + 1
        self.single_observation_space = gym.spaces.Box(0.0, 1.0, (self.obs_dim,), np.float32)
        self.single_action_space = gym.spaces.Discrete(self.n_actions)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.rng = np.random.default_rng(seed)
        self.finished: deque = deque(maxlen=max(256, num_envs * steps))  # all of a batch's first episodes
        self._started = False

    # ------------------------------------------------------------ G and the score
    def _propose(self, words: np.ndarray) -> np.ndarray:
        n = len(words)
        if self.propose is None:
            out = self.rng.integers(0, self.C, (n, self.K, self.L))
        else:
            out = _call(self.propose, "propose", (n, self.K, self.L), words.copy(), self.rng)
        return normalise_words(np.clip(np.asarray(out, np.int64), 0, self.C - 1))

    def _score(self, words: np.ndarray, fn: Score | None, name: str) -> np.ndarray:
        if fn is None:
            return np.zeros(len(words))
        return _call(fn, name, (len(words),), words.copy()).astype(np.float64)

    # ------------------------------------------------------------ the edits, vectorised over envs
    def apply(self, words: np.ndarray, proposals: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The words after ``actions`` (``words`` (N, L), ``proposals`` (N, K, L)); stop leaves a word as it is."""
        L = self.L
        n = len(words)
        rows = np.arange(n)
        length = (words != 0).sum(1)
        pos = np.arange(L)[None, :]
        new = words.copy()
        a = actions.copy()

        def block(size):  # which actions fall in the next block of ``size``, and their offset in it
            nonlocal a
            hit = (a >= 0) & (a < size)
            off = np.where(hit, a, 0)
            a = a - size
            return hit, off

        hit, off = block(self.n_take)
        new = np.where(hit[:, None], proposals[rows, off], new)
        hit, off = block(self.n_splice)
        k, i = np.divmod(off, L - 1)
        i = i + 1
        hit &= i <= length
        new = np.where(hit[:, None], np.where(pos < i[:, None], words, proposals[rows, k]), new)
        hit, off = block(self.n_replace)
        k, i = np.divmod(off, L)
        hit &= i <= length
        letter = proposals[rows, k, i]
        new = np.where(hit[:, None] & (pos == i[:, None]), letter[:, None], new)
        hit, off = block(self.n_insert)
        k, i = np.divmod(off, L)
        letter = proposals[rows, k, i]
        hit &= (i <= length) & (letter != 0)
        shifted = np.concatenate([words[:, :1], words[:, :-1]], 1)  # shifted[j] = words[j - 1]
        ins = np.where(pos < i[:, None], words, np.where(pos == i[:, None], letter[:, None], shifted))
        new = np.where(hit[:, None], ins, new)
        hit, off = block(self.n_delete)
        hit &= off < length
        later = np.concatenate([words[:, 1:], np.zeros((n, 1), words.dtype)], 1)
        new = np.where(hit[:, None], np.where(pos < off[:, None], words, later), new)
        return normalise_words(new)

    # ------------------------------------------------------------ episodes
    def _obs(self) -> np.ndarray:
        n, L, C = self.num_envs, self.L, self.C
        obs = np.zeros((n, self.obs_dim), np.float32)
        hot = np.zeros((n, 1 + self.K, L, C), np.float32)
        sym = np.concatenate([self._words[:, None], self._proposals], 1)
        np.put_along_axis(hot, sym[..., None], 1.0, axis=3)
        obs[:, :-1] = hot.reshape(n, -1)
        obs[:, -1] = self._t / self.steps
        return obs

    def _start(self, idx: np.ndarray) -> None:
        self._words[idx] = 0
        self._t[idx] = 0
        self._history[idx] = 0
        self._actions[idx] = -1
        self._return[idx] = 0.0
        self._potential[idx] = self._score(self._words[idx], self.score, "score")
        self._proposals[idx] = self._propose(self._words[idx])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        n, L = self.num_envs, self.L
        self._words = np.zeros((n, L), np.int64)
        self._proposals = np.zeros((n, self.K, L), np.int64)
        self._t = np.zeros(n, np.int64)
        self._potential = np.zeros(n)
        self._history = np.zeros((n, self.steps + 1, L), np.int64)
        self._actions = np.full((n, self.steps), -1, np.int64)
        self._return = np.zeros(n)
        self._start(np.arange(n))
        self._started = True
        return self._obs(), {}

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer) \
                or (a.size and (a.min() < 0 or a.max() >= self.n_actions)):
            raise ValueError(f"actions must be {self.num_envs} integers in 0..{self.n_actions - 1}, got {actions!r}")
        a = a.astype(np.int64)
        rows = np.arange(self.num_envs)
        self._actions[rows, self._t] = a
        self._words = self.apply(self._words, self._proposals, a)
        self._t += 1
        self._history[rows, self._t] = self._words
        potential = self._score(self._words, self.score, "score")
        reward = potential - self._potential
        self._potential = potential
        terminated = a == self.n_actions - 1
        truncated = (self._t >= self.steps) & ~terminated
        done = terminated | truncated
        idx = np.flatnonzero(done)
        if len(idx):
            reward[idx] += self._score(self._words[idx], self.final_bonus, "final_bonus")
        self._return += reward
        self._proposals = self._propose(self._words)  # final_obs's proposals: what a DQN bootstraps from
        obs = self._obs()
        infos = {}
        if len(idx):
            infos = {"final_obs": obs.copy(), "_final_obs": done.copy()}
            for i in idx:
                t = int(self._t[i])
                self.finished.append({"words": self._history[i, : t + 1].copy(), "actions": self._actions[i, :t].copy(),
                                      "return": float(self._return[i]), "env": int(i)})
            self._start(idx)
            obs = self._obs()
        return obs, reward.astype(np.float32), terminated, truncated, infos

    def pop_finished(self) -> list[dict]:
        """The finished episodes not yet collected (oldest first), and forget them."""
        out = list(self.finished)
        self.finished.clear()
        return out

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """The words in play, their proposals, counters, scores, histories, the
        finished episodes not yet collected and the random generator, as plain data."""
        st = {"rng": self.rng.bit_generator.state, "started": self._started,
              "finished": [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in f.items()}
                           for f in self.finished]}
        if self._started:
            st.update(words=self._words.copy(), proposals=self._proposals.copy(), t=self._t.copy(),
                      potential=self._potential.copy(), history=self._history.copy(), actions=self._actions.copy(),
                      returns=self._return.copy())
        return st

    def load_state_dict(self, state: dict) -> None:
        if state["started"]:
            if np.shape(state["proposals"]) != (self.num_envs, self.K, self.L):
                raise UserError(f"the saved word-edit env's proposals have shape {np.shape(state['proposals'])}; this "
                                f"config's are {(self.num_envs, self.K, self.L)}: resume with the run's own config")
            self._words = np.array(state["words"], np.int64)
            self._proposals = np.array(state["proposals"], np.int64)
            self._t = np.array(state["t"], np.int64)
            self._potential = np.array(state["potential"], np.float64)
            self._history = np.array(state["history"], np.int64)
            self._actions = np.array(state["actions"], np.int64)
            self._return = np.array(state["returns"], np.float64)
        self.rng.bit_generator.state = state["rng"]
        self._started = bool(state["started"])
        self.finished.clear()
        for f in state["finished"]:
            self.finished.append({"words": np.array(f["words"], np.int64), "actions": np.array(f["actions"], np.int64),
                                  "return": float(f["return"]), "env": int(f["env"])})

    def close_extras(self, **kwargs) -> None:
        pass


class WordEditEnv(SingleEnvView):
    """One word: a single-env view of :class:`WordEditVecEnv` (its arguments),
    for Gymnasium's env checker and the plain Env API."""

    def __init__(self, max_len: int = 10, n_symbols: int = 27, steps: int = 6, n_proposals: int = 2,
                 propose: Propose | None = None, score: Score | None = None, final_bonus: Score | None = None,
                 seed: int = 0):
        super().__init__(WordEditVecEnv(1, max_len, n_symbols, steps, n_proposals, propose, score, final_bonus, seed))


def edit_action_names(env: WordEditVecEnv | WordEditEnv) -> list[str]:
    """A readable name per action, in action order (for the report's edit sequences)."""
    v = env.vec if isinstance(env, WordEditEnv) else env
    K, L = v.K, v.L
    names = [f"take proposal {k}" for k in range(K)]
    names += [f"splice proposal {k} at {i}" for k in range(K) for i in range(1, L)]
    names += [f"replace letter {i} from proposal {k}" for k in range(K) for i in range(L)]
    names += [f"insert proposal {k}'s letter {i}" for k in range(K) for i in range(L)]
    names += [f"delete letter {i}" for i in range(L)]
    return names + ["stop"]
