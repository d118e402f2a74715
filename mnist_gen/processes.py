"""Many images read over every core: reading is numpy/scipy/PIL work, one image at a time.

One helper for the three places that read many images (``predict.py``'s files, the evaluation
sets, ``robust_files``' training digits) so they start, size and order their workers alike.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_in_processes(fn: Callable[[T], R], work: Sequence[T], jobs: int = 0, *, serial_below: int = 8,
                     chunksize: int = 1) -> list[R]:
    """``[fn(w) for w in work]``, in order, over ``jobs`` processes (0: one per core).

    Fewer than ``serial_below`` items, or one job, run in this process: starting workers costs
    more. So does a daemonic process (a pool's worker), which may not start any. ``fn`` and the
    items must pickle. Workers fork on Linux: they only run numpy, scipy and PIL, and a fork
    starts at once with the parent's memory shared.
    """
    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1 or len(work) < serial_below or multiprocessing.current_process().daemon:
        return [fn(w) for w in work]
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(min(jobs, len(work))) as pool:
        return pool.map(fn, work, chunksize=chunksize)
