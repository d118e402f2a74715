"""A stroke broken by the pen (pencil on the paper's tooth, a dry marker) is read as one mark
(``preprocess/ink.py``: ``_broken_stroke``), in either polarity; without the rule the digit
finder keeps only the pieces near the largest one."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from mnist_gen.preprocess import PreprocessConfig, to_mnist
from tests.pages import big_digits, on_paper, similar

OFF = PreprocessConfig(stroke_gap=0)


@pytest.fixture(scope="module")
def digits(mnist):
    return big_digits(mnist, 40)


def _broken(d: np.ndarray, rng) -> np.ndarray:
    """``d`` (on a 12 px margin) with half of its ink taken away by a tooth of 1.5 px grain."""
    page = np.pad(d, 12)
    tooth = ndi.gaussian_filter(rng.standard_normal(page.shape), 1.5)
    return page * (tooth > np.median(tooth))


def test_a_digit_broken_into_pieces_reads_as_the_whole_digit(digits):
    rng = np.random.default_rng(0)
    alike = alike_off = 0
    for d in digits:
        whole = to_mnist(on_paper(np.pad(d, 12))).digit
        page = on_paper(_broken(d, rng))
        for img in (page, 1 - page):
            r = to_mnist(img)
            alike += r.ok and similar(r.digit, whole) > 0.8
        off = to_mnist(page, OFF)
        alike_off += off.ok and similar(off.digit, whole) > 0.8
    n = len(digits)
    assert alike >= 2 * 0.85 * n, alike
    assert alike_off <= 0.75 * n, alike_off


def test_whole_strokes_read_as_before(digits):
    """A digit in one piece, or with its pieces far apart, has no chain of close pieces to join."""
    for d in digits[:20]:
        img = on_paper(np.pad(d, 12))
        assert np.array_equal(to_mnist(img).digit, to_mnist(img, OFF).digit)
