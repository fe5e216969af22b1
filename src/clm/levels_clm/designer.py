"""The designer's environment: a DQN acting in G's latent space.

Each of ``num_envs`` designers holds a latent vector z. An action moves one
coordinate of z by +-``step_size`` (2 * z_dim actions); G decodes z into a
level, the ``LevelJudge`` scores it (realism + playable + novelty +
difficulty), and the reward is the change of that score, so an episode's
return is how much the designer improved its starting level. Every judged
level is offered to the archive: the designer's search is a source of
creative data. It is a Gymnasium vector env, so the same DQN trains on it.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from clm.core.errors import UserError
from clm.domains.levels.decode import decode_levels
from clm.engine.archive import ScoredArchive
from clm.levels_clm.couplings import Judgement, LevelJudge, archive_creative


def decode_latents(G: torch.nn.Module, z: np.ndarray, n_boxes: int | None = None) -> list:
    """Latent vectors -> structurally valid levels (G's most probable tiles),
    with ``n_boxes`` boxes when given (the corpus's count), else G's own."""
    with torch.no_grad():
        dev = next(G.parameters()).device
        probs = G.probs(torch.as_tensor(z, dtype=torch.float32, device=dev)).cpu().numpy()
    return decode_levels(probs, None if n_boxes is None else [n_boxes] * len(probs))


def designer_observation(z: np.ndarray, j: Judgement, t: np.ndarray, horizon: int) -> np.ndarray:
    """The designer's observation of latent vectors ``z`` (N, z_dim) and their
    judgement: z, then realism, playable, novelty / 10 (capped at 1), pushes / 10
    and the step's share of the episode ``t / horizon``."""
    feats = np.stack([j.realism, j.playable.astype(np.float64), np.minimum(j.novelty / 10.0, 1.0),
                      np.maximum(j.pushes, 0) / 10.0, np.asarray(t, float) / horizon], axis=1)
    return np.concatenate([np.asarray(z, np.float32), feats], axis=1).astype(np.float32)


class LatentDesignerEnv(gym.vector.VectorEnv):
    """``num_envs`` designers stepping G's latent space at once (same-step autoreset)."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, judge: LevelJudge, archive: ScoredArchive | None,
                 num_envs: int = 8, horizon: int = 8, step_size: float = 0.5, seed: int = 0):
        self.G, self.D, self.judge, self.archive = G, D, judge, archive
        self.num_envs, self.horizon, self.step_size = num_envs, horizon, step_size
        self.z_dim = G.z_dim
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (self.z_dim + 5,), np.float32)
        self.single_action_space = gym.spaces.Discrete(2 * self.z_dim)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.rng = np.random.default_rng(seed)
        self.round = 0
        self.found = 0  # creative levels this env added to the archive
        self.on_judged = None  # called with (levels, judgement) after each judged batch (the CLM's QD grid)

    def state_dict(self) -> dict:
        """The designers' own state (G, D, the judge and the archive are the
        CLM's and are saved by it)."""
        st = {"rng": self.rng.bit_generator.state, "round": self.round, "found": self.found}
        if hasattr(self, "_z"):
            st.update(z=self._z.copy(), t=self._t.copy(), judgement={k: np.copy(v) for k, v in vars(self._j).items()})
        return st

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.round, self.found = int(state["round"]), int(state["found"])
        if "z" in state:
            if np.shape(state["z"]) != (self.num_envs, self.z_dim):
                raise UserError(f"the saved designers' latents have shape {np.shape(state['z'])}; this config's are "
                                f"{(self.num_envs, self.z_dim)}: resume with the config the run started with")
            self._z, self._t = np.array(state["z"], np.float32), np.array(state["t"], np.float64)
            self._j = Judgement(**{k: np.asarray(v) for k, v in state["judgement"].items()})

    def _judge(self, z: np.ndarray) -> tuple[list, Judgement]:
        levels = decode_latents(self.G, z, self.judge.n_boxes)
        j = self.judge.judge(self.D, levels)
        if self.archive is not None:
            self.found += archive_creative(self.archive, levels, j, "designer", self.round)
        if self.on_judged is not None:
            self.on_judged(levels, j)
        return levels, j

    def _obs(self) -> np.ndarray:
        return designer_observation(self._z, self._j, self._t, self.horizon)

    def _starts(self, n: int) -> np.ndarray:
        """Where ``n`` new walks start: z ~ N(0, I)."""
        return self.rng.standard_normal((n, self.z_dim)).astype(np.float32)

    def _reward(self, score_before: np.ndarray) -> np.ndarray:
        """A step's reward: the change of the judge's score."""
        return (self._j.score - score_before).astype(np.float32)

    def reset(self, *, seed: int | None = None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self._z = self._starts(self.num_envs)
        self._t = np.zeros(self.num_envs)
        _, self._j = self._judge(self._z)
        return self._obs(), {}

    def step(self, actions):
        actions = np.asarray(actions)
        dim, sign = actions // 2, np.where(actions % 2 == 0, 1.0, -1.0)
        before = self._j.score.copy()
        self._z[np.arange(self.num_envs), dim] += sign * self.step_size
        self._t += 1
        _, self._j = self._judge(self._z)
        reward = self._reward(before)
        truncated = self._t >= self.horizon
        terminated = np.zeros(self.num_envs, bool)
        obs = self._obs()
        infos = {}
        if truncated.any():
            infos = {"final_obs": obs.copy(), "_final_obs": truncated.copy()}
            idx = np.flatnonzero(truncated)
            self._z[idx] = self._starts(len(idx))
            self._t[idx] = 0
            _, fresh = self._judge(self._z[idx])
            for name in vars(fresh):
                getattr(self._j, name)[idx] = getattr(fresh, name)
            obs = self._obs()
        return obs, reward, terminated, truncated, infos
