"""``python -m cranerec.cli``: the ``cranerec`` command."""

import sys

from cranerec.cli.entry import main

if __name__ == "__main__":
    sys.exit(main())
