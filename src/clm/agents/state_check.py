"""The schema of a DQN's training state (:meth:`clm.agents.dqn.DQN.training_state`),
checked before :meth:`~clm.agents.dqn.DQN.load_training_state` loads any of it.

Built from the agent the resumed config made (see :mod:`clm.core.state_schema`):
its networks' names, shapes and dtypes, its optimiser's parameters, its replay
buffer's capacity, columns and dtypes, its env's state, and counters in range.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clm.agents.envs import env_state, make_vec_env
from clm.agents.replay import UniformReplay
from clm.core.errors import UserError
from clm.core.runtime import rng_state
from clm.core.state_schema import (
    Anything,
    Arr,
    Bool,
    Fixed,
    Float,
    Int,
    Null,
    Numeric,
    Opt,
    Rec,
    Schema,
    Seq,
    StateMismatch,
    Str,
    Mismatch,
    describe,
    global_rng_schema,
    like,
    like_either,
    optimizer_schema,
    rng_schema,
    validate,
    validate_weights,
)

#: the largest counter a state may hold (2**62: no run comes near it, and it fits every int64)
MAX_COUNT = 2**62

#: env state arrays whose first dimension grows with the run (the player's pool of levels)
GROWING = ("pool",)



class ReplaySchema(Schema):
    """A replay buffer's state: ``pos`` within its ``rows``, as many rows in
    every array as the buffer holds (all of them once ``full``), each array of
    the buffer's columns, shape and dtype; prioritised: its sum tree."""

    def __init__(self, rows: int, columns: int, obs_shape: tuple, obs_dtype, tree: np.ndarray | None = None):
        self.rows, self.columns, self.obs_shape, self.obs_dtype, self.tree = rows, columns, obs_shape, obs_dtype, tree

    @classmethod
    def of(cls, buffer: UniformReplay) -> "ReplaySchema":
        tree = buffer.tree.tree if hasattr(buffer, "tree") else None
        return cls(buffer.rows, buffer.num_envs, buffer.obs.shape[2:], buffer.obs.dtype, tree)

    def check(self, v, path):
        keys: dict[str, Schema] = {"pos": Int(0, self.rows - 1), "full": Bool()}
        obs = Arr(np.dtype(self.obs_dtype), (None, self.columns, *self.obs_shape), max_rows=self.rows)
        keys.update(obs=obs, next_obs=obs)
        for k, dtype in (("actions", np.int64), ("rewards", np.float32), ("terminated", bool),
                         ("episode_end", bool), ("valid", bool)):
            keys[k] = Arr(np.dtype(dtype), (None, self.columns), max_rows=self.rows)
        if self.tree is not None:
            keys["tree"] = Arr(self.tree.dtype, self.tree.shape)
            keys["max_priority"] = Float(0.0, None, finite=True)
        Rec(keys).check(v, path)
        rows = self.rows if v["full"] else v["pos"]
        for k in keys:
            if k not in ("pos", "full", "tree", "max_priority") and len(v[k]) != rows:
                raise Mismatch(f"{path}.{k}", f"{rows} rows (pos {v['pos']}, full {v['full']})", describe(v[k]))


def training_state_schema(agent, stepped: bool = True) -> Schema:
    """The schema of ``agent.training_state()``'s state for ``agent`` as built;
    ``stepped``: the state was saved after the envs' first step (then they
    hold all a reset gives them, their generators included)."""
    cfg = agent.cfg
    env = _env_schema(agent, stepped)
    replay = ReplaySchema.of(agent.replay)
    episode_obs = Arr(replay.obs_dtype, (cfg.num_envs, *replay.obs_shape))
    demos = ReplaySchema(cfg.demo_buffer_size, 1, replay.obs_shape, replay.obs_dtype)  # made on first use
    counters = Rec({"env_steps": Int(0, MAX_COUNT), "gradient_steps": Int(0, MAX_COUNT), "episodes": Int(0, MAX_COUNT),
                    "successes": Int(0, MAX_COUNT), "best_eval_return": Float(), "wall_seconds": Float(0.0, None, True),
                    "target_reached_at": Opt(Rec({"env_steps": Int(0, MAX_COUNT), "wall_seconds": Float(0.0)})),
                    "loss_sum": Float(finite=True), "loss_count": Int(0, MAX_COUNT)})
    return Rec({
        "optimizer": optimizer_schema(agent.optimizer),
        "replay": replay,
        "demos": Opt(demos),
        "counters": counters,
        "rng": Rec({"numpy_generator": rng_schema(agent.rng), "global": global_rng_schema(rng_state())}),
        "episode": Rec({"obs": Opt(episode_obs), "prev_done": Arr(np.dtype(bool), (cfg.num_envs,)),
                        "ep_return": Arr(np.dtype(np.float64), (cfg.num_envs,)),
                        "recent_returns": Seq(Float(), max_len=20)}),
        "env": _growing(env),
        "shape": Rec({"num_envs": Int(), "buffer_size": Int(), "prioritized": Bool(), "demo_buffer_size": Int()}),
    })


def _env_schema(agent, stepped: bool) -> Schema:
    """The env's state as the config builds it: a Gymnasium env's attributes as
    a copy made from ``env_id`` holds them once reset (CartPole's ``state`` is
    None until then, an array of float64 after; its ``_np_random`` is made
    then), or, before the first step (``stepped`` false), as a fresh env holds
    them; clm's own envs, whose ``state_dict`` says what they hold, as they are.
    A stepped env's state lacking what a reset made would resume inexactly."""
    fresh = env_state(agent.envs)[0]
    if callable(getattr(agent.envs, "state_dict", None)):
        return like(fresh)
    envs = make_vec_env(agent.cfg.env_id, agent.cfg.num_envs)
    try:
        envs.reset(seed=0)
        reset = env_state(envs)[0]
        schema = like_either(fresh, reset)
        return _keys_required(schema, reset) if stepped else schema
    finally:
        envs.close()


def _keys_required(s: Schema, ref: Any) -> Schema:
    """``s`` with every key ``ref`` holds required (at any depth)."""
    if isinstance(s, Rec) and isinstance(ref, dict):
        s.optional = {k for k in s.optional if k not in ref}
        for k, x in s.fields.items():
            if k in ref:
                s.fields[k] = _keys_required(x, ref[k])
    elif isinstance(s, Fixed) and isinstance(ref, (list, tuple)):
        s.items = [_keys_required(x, r) for x, r in zip(s.items, ref)]
    return s


def _growing(s: Schema) -> Schema:
    """``s`` (an env's state as a fresh env holds it) made to take the same env
    later in its life: the first dimension of the :data:`GROWING` arrays free,
    keys a first reset adds (a mapping may hold more keys), and a value a fresh
    env has not set yet (None) may be any number or numeric array."""
    if isinstance(s, Rec):
        s.extra = True
        for k, x in s.fields.items():
            if k in GROWING and isinstance(x, Arr):
                s.fields[k] = Arr(x.dtype, (None, *x.shape[1:]), x.kind)
            else:
                s.fields[k] = _growing(x)
    elif isinstance(s, Fixed):
        s.items = [_growing(x) for x in s.items]
    elif isinstance(s, Null):
        return Numeric()
    return s


def check_training_state(agent, weights: dict, state: dict | None, meta: dict, where: str) -> None:
    """Refuse (exit 2, naming ``where`` and the field) a training state that
    does not fit ``agent``: run before anything of it is loaded."""
    validate_weights(weights, agent.weights(), where)
    if state is None:
        return
    saved = state.get("shape") if isinstance(state, dict) else None
    for key in ("num_envs", "buffer_size", "prioritized", "demo_buffer_size"):
        if isinstance(saved, dict) and key in saved and saved[key] != getattr(agent.cfg, key):
            raise UserError(f"{key} is {getattr(agent.cfg, key)} in this config but {saved[key]!r} in checkpoint "
                            f"{where}: the replay and environments are saved at that size; resume without changing "
                            f"{key}, or start a new run", exit_code=2)
    validate(meta, Rec({"kind": Str(("dqn",)), "env_steps": Int(0, MAX_COUNT), "exact_resume": Bool(),
                        "config": Anything(), "format_version": Int(), "files": Anything()},
                       optional=("config", "format_version", "files")), f"{where} (meta)")
    validate(state, training_state_schema(agent, stepped=meta["env_steps"] > 0), f"{where} (state.json)")
    cnt = state["counters"]
    if meta["env_steps"] != cnt["env_steps"]:
        raise StateMismatch(f"{where} (state.json)", "counters.env_steps",
                            f"{meta['env_steps']} (meta.json's env_steps)", str(cnt["env_steps"]))
    if cnt["successes"] > cnt["episodes"]:
        raise StateMismatch(f"{where} (state.json)", "counters.successes",
                            f"at most counters.episodes ({cnt['episodes']})", str(cnt["successes"]))
