"""The ``clm`` command line. Each command group lives in its own module with a
``register(subparsers)`` function; main.py lists the groups."""
