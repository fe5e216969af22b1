"""DQN with its common extensions, in parts along its seams.

One agent with switches: MLP or conv Q-network, dueling head, Double DQN,
n-step returns, uniform or prioritized replay, hard or Polyak target updates,
an epsilon-greedy schedule, Huber loss, gradient clipping, several
environments stepped together, greedy evaluation that keeps the best
checkpoint, and learning from demonstrations (DQfD, Hester et al. 2018:
expert transitions kept in their own buffer, a share of every batch, with a
large-margin loss that ranks the expert's action above the others by a
margin, and optional pre-training on them before the first env step).

- :mod:`.config`: ``DQNConfig`` (the hyperparameters) and their checks;
- :mod:`.collector`: vector-env stepping, epsilon-greedy acting, episodes;
- :mod:`.learner`: the Q-networks, TD targets, losses, DQfD's margin loss,
  prioritized weights, the CPU's NumPy fast path (networks.py);
- :mod:`.parallel`: data-parallel learning under torchrun;
- :mod:`.state`: checkpoints of the full training state;
- :mod:`.agent`: ``DQN``, which composes them.

The training loop (evaluations that keep the best weights, logs,
checkpoints, a run folder) is :mod:`clm.agents.training`.
"""

from clm.agents.dqn.agent import DQN, greedy_returns
from clm.agents.dqn.config import DQNConfig, check_data_parallel, linear_schedule, q_network_args

__all__ = ["DQN", "DQNConfig", "check_data_parallel", "greedy_returns", "linear_schedule", "q_network_args"]
