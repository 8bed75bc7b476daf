"""``python -m mcpconn``: the same command as the ``mcpconn`` script."""

import sys

from ._cli.main import main

if __name__ == "__main__":
    sys.exit(main())
