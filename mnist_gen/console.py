"""One rich Console for the project: wide when output is not a terminal (logs, CI, pipes)."""

import sys

from rich.console import Console

console = Console() if sys.stdout.isatty() else Console(width=220)
