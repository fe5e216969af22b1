"""clm: a Creative Learning Model in which DQN agents and GANs learn together."""

from clm.domains.registration import register_envs

__version__ = "0.1.0"

# Gymnasium 1.x reads no entry points: importing clm registers its envs (clm/Sokoban-v0, ...), so that
# `gymnasium.make("clm:clm/Sokoban-v0")` and rl-zoo3's `--gym-packages clm` find them.
register_envs()
