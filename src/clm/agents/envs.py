"""Making Gymnasium vector environments for the DQN, with clear errors."""

from __future__ import annotations

import difflib
import pickle
from typing import Any

import gymnasium as gym
import numpy as np

from clm.core.errors import UsageError


def _register_optional_suites(env_id: str) -> None:
    if env_id.startswith("MinAtar/"):
        try:
            import minatar.gym
        except ImportError:
            raise UsageError("MinAtar environments need the 'minatar' package: pip install minatar")
        if not any(k.startswith("MinAtar/") for k in gym.registry):
            minatar.gym.register_envs()


def _unknown_env(env_id: str) -> UsageError:
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    return UsageError(f"unknown environment id '{env_id}'.{hint} List the ids with: clm dqn envs")


ARRAY_VECTOR_MIN_ENVS = 8  #: fewest envs for which an env's own array-vectorised version is used


def make_vec_env(env_id: str, num_envs: int, **env_kwargs: Any) -> gym.vector.VectorEnv:
    """A vector env of ``num_envs`` copies of ``env_id``.

    Uses the env's own array-vectorised implementation when it has one (e.g.
    CartPole) and ``num_envs`` is large enough to pay for its fixed cost per
    step, else a synchronous vector env with same-step autoreset. (Measured
    for CartPole: the array version takes 130 us a step at 1 to 4 envs, the
    synchronous one 32 us at 1 env and 98 us at 4; the array version wins from
    about 8 envs.)
    """
    _register_optional_suites(env_id)
    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        raise _unknown_env(env_id) from None
    try:
        if spec.vector_entry_point is not None and not env_kwargs and num_envs >= ARRAY_VECTOR_MIN_ENVS:
            envs = gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point")
        else:
            envs = gym.make_vec(env_id, num_envs, vectorization_mode="sync",
                                vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
                                **env_kwargs)
    except gym.error.DependencyNotInstalled as e:
        raise UsageError(f"environment '{env_id}' needs a package that is not installed: {e}")
    check_spaces(envs, env_id)
    return envs


def check_spaces(envs: gym.vector.VectorEnv, env_id: str = "the environment") -> None:
    """The DQN needs a Discrete action space and a Box observation space."""
    act, obs = envs.single_action_space, envs.single_observation_space
    if not isinstance(act, gym.spaces.Discrete):
        kind = "continuous (Box)" if isinstance(act, gym.spaces.Box) else type(act).__name__
        raise UsageError(
            f"{env_id} has a {kind} action space {act}; DQN needs a Discrete action space. "
            "Use an environment with discrete actions or wrap it to discretise its actions.")
    if not isinstance(obs, gym.spaces.Box):
        raise UsageError(
            f"{env_id} has a {type(obs).__name__} observation space {obs}; DQN needs a Box "
            "observation space (wrap Dict/Tuple/Discrete observations, e.g. with "
            "gymnasium.wrappers.FlattenObservation).")


def autoreset_mode(envs: gym.vector.VectorEnv) -> gym.vector.AutoresetMode:
    mode = envs.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    if mode == gym.vector.AutoresetMode.DISABLED:
        raise UsageError("vector environments with autoreset disabled are not supported")
    return mode


def final_observations(next_obs: np.ndarray, infos: dict, done: np.ndarray) -> np.ndarray:
    """Same-step autoreset: the real last observations of the envs that ended
    (the returned ``next_obs`` already holds the next episode's first one)."""
    if not done.any():
        return next_obs
    real = next_obs.copy()
    final = infos["final_obs"]
    for i in np.flatnonzero(done):  # only the few envs that ended this step
        real[i] = final[i]
    return real


def env_state(envs: gym.vector.VectorEnv) -> tuple[bytes, bool]:
    """Pickle what can be pickled of a vector env; the flag says whether all of
    it was (then a resumed run continues exactly)."""
    try:
        return pickle.dumps(envs), True
    except Exception:
        state, whole = {}, True
        for k, v in envs.__dict__.items():
            try:
                state[k] = pickle.dumps(v)
            except Exception:
                whole = whole and k == "env_fns"  # factory closures are rebuilt, not needed
        return pickle.dumps(state), whole


def restore_env_state(envs: gym.vector.VectorEnv, blob: bytes) -> gym.vector.VectorEnv:
    obj = pickle.loads(blob)
    if isinstance(obj, gym.vector.VectorEnv):
        envs.close()
        return obj
    envs.__dict__.update({k: pickle.loads(v) for k, v in obj.items()})
    return envs
