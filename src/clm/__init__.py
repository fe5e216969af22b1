"""clm: a Creative Learning Model in which DQN agents and GANs learn together."""

__version__ = "0.1.0"
