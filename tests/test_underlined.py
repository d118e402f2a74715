"""A digit underlined by its writer, the line clear of it, is read without the line
(``preprocess/ink.py``: ``_underline``); a digit's own bars, above it or joined to it, stay."""

import numpy as np
import pytest

from mnist_gen.preprocess import PreprocessConfig
from tests.pages import big_digits, read_alike

OFF = PreprocessConfig(underline=0)


@pytest.fixture(scope="module")
def digits(mnist):
    return big_digits(mnist, 40)


def _underlined(d: np.ndarray, gap: float, wider: float, pen: int = 7) -> np.ndarray:
    """``d`` with a bar ``wider`` × its width (at least 0.6 × its height) ``gap`` × its height below it."""
    h, w = d.shape
    length = int(wider * max(w, 0.6 * h))
    side = max(0, (length - w) // 2) + 12
    page = np.pad(d, ((12, int(gap * h) + pen + 12), (side, side)))
    top = 12 + h + int(gap * h)
    left = (page.shape[1] - length) // 2
    page[top : top + pen, left : left + length] = 1.0
    return page


@pytest.mark.parametrize("gap,wider", [(0.1, 1.2), (0.25, 1.0)])
def test_an_underlined_digit_reads_as_the_digit_alone(digits, gap, wider):
    """With paper between the line and the digit: the reading equals the digit's own in both
    polarities; without the rule most read with the line."""
    alike, alike_off = read_alike(digits, lambda d: _underlined(d, gap, wider), OFF)
    n = len(digits)
    assert alike >= 2 * n - 2, alike
    assert alike_off <= n / 2, alike_off


def test_a_digits_own_bars_stay():
    """A 7 whose bar is a separate stroke above it, a 2 whose base is a separate stroke at the
    height its curve ends, a flat scribble over a bar (no digit is so flat) and a dot over one (no
    digit is so small beside it; both from the census at version 37: a squashed USPS 2): none is
    taken for an underline."""
    from mnist_gen.preprocess.ink import choose_digit

    seven = np.zeros((120, 100), bool)
    seven[20:28, 20:80] = True  # the bar, clear of the stem
    for y in range(34, 100):
        x = 70 - (y - 34) * 30 // 66
        seven[y, x - 4 : x + 4] = True
    two = np.zeros((120, 100), bool)
    for y in range(20, 92):  # a curve ending low on the left
        x = 75 - (y - 20) * 50 // 72
        two[y, x - 4 : x + 4] = True
    two[86:94, 38:96] = True  # the base, from where the curve ends, a few pixels clear of it
    flat = np.zeros((120, 100), bool)  # a flat scribble in two pieces (a squashed 2 in a 16×6 box)
    flat[50:58, 20:70] = True
    flat[64:70, 10:90] = True
    dot = np.zeros((120, 100), bool)  # a dot over a bar (the same 2 as an 8×16 JPEG)
    dot[40:48, 45:53] = True
    dot[60:66, 20:80] = True
    from scipy import ndimage as ndi

    for mask in (seven, two, flat, dot):
        assert ndi.label(mask, structure=np.ones((3, 3)))[1] == 2
        assert choose_digit(mask, mask.astype(np.float32), PreprocessConfig()).sum() == mask.sum()
