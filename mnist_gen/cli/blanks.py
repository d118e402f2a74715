"""``python -m mnist_gen.cli.blanks``: how often an image with no digit on it gets one anyway.

The evaluation sets count the one error ("no digit found" on a digit); this counts the other. Two
kinds of blank image, each read by ``to_mnist`` with the default settings:

* synthetic pages (seeded, 40 of each kind per seed, 16–400 px a side): an even level; light
  from one side (a plane, clipped to 0–1 where it runs out of range, as an over- or under-exposed
  photo is); falling off towards the corners (vignetting); sensor noise; and the two mixtures;
* strips of the study's photos beside the digit's box (real paper under real light; a few hold
  real marks: a page edge, a shadow, show-through), when ``../shared`` is there.

Prints a table (false digits per kind) and writes ``blanks.json`` under ``outputs/blanks/<time>/``.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Iterator

import numpy as np

from mnist_gen import paths
from mnist_gen.io import to_json, write_atomic
from mnist_gen.preprocess import to_mnist

KINDS = ("plane", "vignette", "noise", "plane+noise", "vignette+noise")


def synthetic_blanks(seed: int, per_kind: int = 40) -> Iterator[tuple[str, np.ndarray]]:
    """(kind, grey page in [0, 1]) for each kind, ``per_kind`` of each."""
    rng = np.random.default_rng(seed)
    for kind in KINDS:
        for _ in range(per_kind):
            h, w = rng.integers(16, 400, 2)
            yy, xx = np.mgrid[0:h, 0:w]
            page = np.full((h, w), rng.uniform(0.3, 0.9))
            if "plane" in kind:
                page = page + rng.uniform(-0.3, 0.3) * xx / w + rng.uniform(-0.3, 0.3) * yy / h
            if "vignette" in kind:
                page = page * (1 - rng.uniform(0, 0.4) * (((yy - h / 2) / h) ** 2 + ((xx - w / 2) / w) ** 2))
            if "noise" in kind:
                page = page + rng.normal(0, rng.uniform(0, 0.05), (h, w))
            yield kind, np.clip(page, 0, 1)


def photo_strips() -> Iterator[tuple[str, np.ndarray]]:
    """("photo strip", the photo beside its digit's box: above, below, left, right; ≥ 24 px)."""
    from mnist_gen.evalsets.framing import photo_items
    from mnist_gen.evalsets.photos import seed_photo_dir

    if not seed_photo_dir().is_dir():  # the study's photos are not there: synthetic pages only
        return
    for _, _, g, (y0, x0, y1, x1) in photo_items():  # one photo in memory at a time
        for strip in (g[: max(0, y0 - 5)], g[y1 + 5 :], g[:, : max(0, x0 - 5)], g[:, x1 + 5 :]):
            if min(strip.shape) >= 24:
                yield "photo strip", strip


def count_false_digits(pages) -> dict[str, dict[str, int]]:
    """{kind: {"images": n, "false_digits": k}} over (kind, image) pairs."""
    seen, found = Counter(), Counter()
    for kind, img in pages:
        seen[kind] += 1
        found[kind] += to_mnist(img).ok
    return {k: {"images": seen[k], "false_digits": found[k]} for k in seen}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m mnist_gen.cli.blanks", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 7], help="synthetic pages' seeds (default: 0 7)")
    p.add_argument("--per-kind", type=int, default=40, help="synthetic pages of each kind per seed (default: 40)")
    args = p.parse_args(argv)
    result = {f"seed {s}": count_false_digits(synthetic_blanks(s, args.per_kind)) for s in args.seeds}
    result["photo strips"] = count_false_digits(photo_strips())
    print("| blank images | " + " | ".join(KINDS) + " | photo strip | all |")
    print("|---" * (len(KINDS) + 3) + "|")
    for name, counts in result.items():
        cells = [f"{counts[k]['false_digits']}/{counts[k]['images']}" if k in counts else "–" for k in (*KINDS, "photo strip")]
        total = sum(c["false_digits"] for c in counts.values()), sum(c["images"] for c in counts.values())
        print(f"| {name} | " + " | ".join(cells) + f" | **{total[0]}/{total[1]}** |")
    out = paths.PROJECT_ROOT / "outputs" / "blanks" / time.strftime("%Y-%m-%d_%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "blanks.json", to_json(result))
    print(f"written to {out / 'blanks.json'}")
    return result


if __name__ == "__main__":
    main()
