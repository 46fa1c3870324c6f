"""``python -m tunelab``: the same command line as the ``tunelab`` script."""

import sys

from tunelab.cli import main

if __name__ == "__main__":
    sys.exit(main())
