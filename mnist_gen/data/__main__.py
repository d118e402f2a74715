"""`python -m mnist_gen.data [--data-dir DIR]`: fetch and verify MNIST, with progress."""

from __future__ import annotations

import argparse
import logging
import sys

from rich.logging import RichHandler

from mnist_gen import paths
from mnist_gen.data.mnist import MD5, ensure_mnist, raw_dir
from mnist_gen.errors import UserError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", default=None, help="cache folder (default: $MNIST_GEN_DATA or <project>/data)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)])
    data_dir = args.data_dir or paths.data_dir()
    try:
        raw = ensure_mnist(data_dir)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, md5 in MD5.items():
        print(f"  {name:26s} md5 {md5}  ok")
    print(f"MNIST verified in {raw_dir(data_dir) if raw else raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
