"""``python -m mnist_gen.app [--models <run or folder of runs>]``: the browser demo."""

import sys

from mnist_gen.app.server import main

if __name__ == "__main__":
    sys.exit(main())
