"""A digit written in a form's printed box is read inside the box (``preprocess/formbox.py``)."""

import numpy as np
import pytest

from mnist_gen.preprocess import PreprocessConfig, to_mnist
from mnist_gen.preprocess.formbox import inside_printed_box

CFG = PreprocessConfig()


def _on_paper(ink: np.ndarray, paper: float = 0.85, pen: float = 0.45) -> np.ndarray:
    """Ink share (0..1) → a grey page with a little sensor noise."""
    rng = np.random.default_rng(0)
    return np.clip(paper - ink * (paper - pen) + rng.normal(0, 0.008, ink.shape), 0, 1).astype(np.float32)


def _boxed(digit: np.ndarray, line: int, outside: int, gap: int = 12, line_ink: float = 1.0) -> np.ndarray:
    """The digit's ink (enlarged MNIST, white on black) inside a printed box ``line`` px wide."""
    h, w = digit.shape
    side = max(h, w) + 2 * gap
    n = side + 2 * line
    ink = np.zeros((n, n), np.float32)
    ink[line + gap : line + gap + h, line + (side - w) // 2 : line + (side - w) // 2 + w] = digit
    frame = np.zeros_like(ink)
    frame[:line], frame[-line:], frame[:, :line], frame[:, -line:] = 1, 1, 1, 1
    return np.pad(np.maximum(ink, line_ink * frame), outside)


@pytest.fixture(scope="module")
def digits(mnist):
    from PIL import Image

    big = [np.asarray(Image.fromarray(x).resize((84, 84), Image.Resampling.BICUBIC), np.float32) / 255
           for x in mnist["x_test"][:12]]
    return [(d[np.ix_(d.max(1) > 0.1, d.max(0) > 0.1)]) for d in big], mnist["y_test"][:12]


def _similar(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two 28×28 readings, blurred: a 1-px shift of a thin 0 is the same reading."""
    from scipy import ndimage as ndi

    a, b = (ndi.gaussian_filter(x.astype(float), 1.0).ravel() for x in (a, b))
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.parametrize(("line", "outside"), [(4, 0), (2, 0), (3, 10)])
def test_a_boxed_digit_reads_as_the_digit_alone(digits, line, outside):
    """Cropped at the box (its line is the frame: the polarity trap) or with paper outside it
    (the box joined the digit): the reading equals the digit's own without the box."""
    for d, _ in zip(*digits, strict=True):
        alone = to_mnist(_on_paper(np.pad(d, 12))).digit
        page = _on_paper(_boxed(d, line, outside))
        rows, cols = inside_printed_box(page, CFG)
        assert rows.start >= outside + line and cols.start >= outside + line  # the lines left out
        assert rows.stop <= page.shape[0] - outside - line and cols.stop <= page.shape[1] - outside - line
        boxed = to_mnist(page).digit
        assert _similar(boxed, alone) > 0.9
        negative = to_mnist(1 - page).digit  # light lines and ink on a dark page
        assert _similar(negative, alone) > 0.9


def test_no_box_where_there_is_none_and_a_digit_touching_one_stays_whole(digits):
    d = digits[0][0]
    assert inside_printed_box(_on_paper(np.pad(d, 12)), CFG) is None  # plain paper
    assert inside_printed_box(_on_paper(np.pad(d, 0)), CFG) is None  # cropped tight to the ink
    touching = _on_paper(_boxed(d, 3, 5, gap=0))  # the digit runs into the box's lines: still the digit
    assert _similar(to_mnist(touching).digit, to_mnist(_on_paper(np.pad(d, 12))).digit) > 0.9
    # squared paper: the "box" is one cell of a grid whose lines cross the digit
    grid = np.pad(d, 20)
    lines = np.zeros_like(grid)
    for k in range(2, grid.shape[0], grid.shape[0] // 2 - 2):
        lines[k : k + 2] = 0.6
        lines[:, k : k + 2] = 0.6
    assert inside_printed_box(_on_paper(np.maximum(grid, lines)), CFG) is None


def test_a_square_zero_cropped_tight_is_still_read():
    """Its outline passes for a box with nothing inside: the whole image is read, as before."""
    ink = np.zeros((60, 60), np.float32)
    ink[:3], ink[-3:], ink[:, :3], ink[:, -3:] = 1, 1, 1, 1
    page = _on_paper(ink)
    assert inside_printed_box(page, CFG) is None
    res = to_mnist(page)
    assert res.ok and res.digit.max() == 255


def test_switched_off_by_its_depth():
    d = np.ones((30, 20), np.float32)
    page = _on_paper(_boxed(d, 3, 0))
    assert inside_printed_box(page, CFG) is not None
    assert inside_printed_box(page, PreprocessConfig(form_box_depth=0)) is None
