"""``python -m clm``: the same as the ``clm`` command."""

import sys

from clm.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
