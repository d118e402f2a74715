"""A digit written in a form's printed box is read inside the box (``preprocess/formbox.py``)."""

import numpy as np
import pytest

from mnist_gen.preprocess import PreprocessConfig, to_mnist
from mnist_gen.preprocess.formbox import inside_printed_box
from tests.pages import big_digits, on_paper, similar

CFG = PreprocessConfig()


def _on_paper(ink: np.ndarray) -> np.ndarray:
    return on_paper(ink, paper=0.85, pen=0.45)  # a grey page and a pen lighter than the box's lines


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
    return big_digits(mnist, 12), mnist["y_test"][:12]


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
        assert similar(boxed, alone) > 0.9
        negative = to_mnist(1 - page).digit  # light lines and ink on a dark page
        assert similar(negative, alone) > 0.9


def test_no_box_where_there_is_none_and_a_digit_touching_one_stays_whole(digits):
    d = digits[0][0]
    assert inside_printed_box(_on_paper(np.pad(d, 12)), CFG) is None  # plain paper
    assert inside_printed_box(_on_paper(np.pad(d, 0)), CFG) is None  # cropped tight to the ink
    touching = _on_paper(_boxed(d, 3, 5, gap=0))  # the digit runs into the box's lines: still the digit
    assert similar(to_mnist(touching).digit, to_mnist(_on_paper(np.pad(d, 12))).digit) > 0.9
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
