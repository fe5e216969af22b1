"""The DQN family."""
