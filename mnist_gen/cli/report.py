"""``python -m mnist_gen.cli.report <run or sweep dir> [--eda outputs/eda]``: one self-contained HTML report."""

from __future__ import annotations

import argparse
import logging
import sys

from mnist_gen.errors import UserError
from mnist_gen.reporting.html import build_report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mnist_gen.cli.report", description=__doc__.splitlines()[0])
    p.add_argument("root", help="a run directory, or a directory of runs (multirun sweep, aggregate dir)")
    p.add_argument("--out", help="HTML file to write (default: <root>/report.html)")
    p.add_argument("--eda", help="EDA output directory (default: found under root, else outputs/eda)")
    p.add_argument("--title", help="report title")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        path = build_report(args.root, args.out, args.eda, args.title)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report written: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
