"""``python -m mnist_gen.cli.blanks``: blank pages counted; vignetted and clipped ones read as blank."""

from __future__ import annotations

import numpy as np

from mnist_gen.cli.blanks import KINDS, count_false_digits, synthetic_blanks


def test_synthetic_blanks_are_seeded_and_cover_every_kind():
    a, b = list(synthetic_blanks(3, per_kind=2)), list(synthetic_blanks(3, per_kind=2))
    assert [k for k, _ in a] == [k for k in KINDS for _ in range(2)]
    assert all(np.array_equal(x, y) and x.min() >= 0 and x.max() <= 1 for (_, x), (_, y) in zip(a, b, strict=True))


def test_vignetted_blank_pages_give_no_digit():
    # A seed not used while the blank-page check was developed (0 and 7 were). Noisy pages are
    # counted, not asserted: a few still give a "digit" (the README's blank-page table).
    pages = [(k, p) for k, p in synthetic_blanks(11, per_kind=10) if k == "vignette"]
    assert count_false_digits(pages) == {"vignette": {"images": 10, "false_digits": 0}}


def test_clipped_blank_pages_give_no_digit_and_no_page_crashes_the_reading():
    # Seeds not used while the censored fit was developed (0 and 7 were). A plane of light clipped
    # at the sensor's limit is blank; the same seeds' other pages must all be read without an
    # exception (seed 13 held a lit page whose light, taken out, left a range too small for
    # float32 histogram bins: to_mnist raised instead of answering, version 14 and before).
    for seed in (11, 13):
        pages = list(synthetic_blanks(seed, per_kind=40))
        counts = count_false_digits(pages)  # raises if any reading does
        assert counts["plane"]["false_digits"] == 0, (seed, counts)
