"""Predict the digit in photos: ``python predict.py photo.jpg photos/ --model <model file|run dir|runs folder>``.

``--json`` prints one JSON object per line and file (format: README.md, section predict.py). Plain
argparse, not Hydra: see ``mnist_gen/predict_cli.py`` for why. Exit status 0 when the run
finished (unreadable files are listed, not fatal), 2 for user errors.
"""

import sys

from mnist_gen.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
