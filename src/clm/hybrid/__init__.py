"""The Creative Learning Model: the only place where agents and GANs meet."""
