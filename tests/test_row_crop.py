"""A digit cropped sloppily out of a row of writing: the neighbours' pieces cut by the crop's
left/right edges are left out (``preprocess/ink.py``: ``_row_neighbours``), a digit's own pieces are not."""

import numpy as np
import pytest

from mnist_gen.preprocess import PreprocessConfig, to_mnist
from tests.pages import big_digits, on_paper, similar

OFF = PreprocessConfig(neighbour_gap=0)


@pytest.fixture(scope="module")
def digits(mnist):
    return big_digits(mnist, 30)


def _row(digit, left, right, gap: float, inside: float, margin: float | None = None) -> np.ndarray:
    """``digit`` between two others written ``gap`` × its height away, the crop taking ``inside``
    × its height of each; ``right=None``: no neighbour there, ``margin`` × its height of paper."""
    h = digit.shape[0]

    def fit(d):  # another digit at this one's height
        from PIL import Image

        k = h / d.shape[0]
        return np.asarray(Image.fromarray(d).resize((max(1, round(d.shape[1] * k)), h), Image.Resampling.BICUBIC))

    g, cut = np.zeros((h, round(gap * h))), round(inside * h)
    parts = [fit(left)[:, -cut:], g, digit]
    parts += [g, fit(right)[:, :cut]] if right is not None else [np.zeros((h, round(margin * h)))]
    return np.pad(np.concatenate(parts, axis=1), ((8, 8), (0, 0)))


@pytest.mark.parametrize(("gap", "inside", "one_side"), [(0.2, 0.3, False), (0.33, 0.15, False), (0.2, 0.25, True)])
def test_a_digit_cropped_from_a_row_reads_as_the_digit_alone(digits, gap, inside, one_side):
    """Both neighbours cut by the crop, or one and paper on the other side: the reading equals the
    digit's own on bare paper, in both polarities; without the rule many readings take the pieces in."""
    n = len(digits)
    alike = alike_off = 0
    for i, d in enumerate(digits):
        left, right = digits[(i + 7) % n], None if one_side else digits[(i + 13) % n]
        alone = to_mnist(on_paper(np.pad(d, 12))).digit
        page = on_paper(_row(d, left, right, gap, inside, margin=0.2))
        for img in (page, 1 - page):
            alike += similar(to_mnist(img).digit, alone) > 0.9
        alike_off += similar(to_mnist(page, OFF).digit, alone) > 0.9
    assert alike == 2 * n
    assert alike_off <= 0.8 * n  # without the rule the pieces join a fifth to a half of the digits


def test_a_stroke_broken_by_a_narrow_gap_keeps_its_piece(digits):
    """A digit broken by a column of paper narrower than the space between digits, cropped tight on
    the broken piece's side and with paper on the other: both pieces are the digit."""
    for d in digits:
        cut = d.shape[1] // 2
        broken = d.copy()
        broken[:, cut : cut + 3] = 0  # 3 px of 84: a skipped stretch of pen
        page = on_paper(np.pad(broken, ((10, 10), (20, 0))))  # paper on the left, tight on the right
        assert similar(to_mnist(page).digit, to_mnist(page, OFF).digit) > 0.99


def test_a_tight_crop_of_a_digit_in_two_pieces_keeps_both(digits):
    """Cropped tight on both sides, the digit reaches both borders: pieces cut by the border are its own,
    however wide the gap between them."""
    for d in digits:
        cut = d.shape[1] // 2
        broken = d.copy()
        broken[:, cut : cut + 12] = 0  # wider than a row's space
        page = on_paper(np.pad(broken, ((10, 10), (0, 0))))
        assert similar(to_mnist(page).digit, to_mnist(page, OFF).digit) > 0.99


@pytest.mark.parametrize(("stop", "kept"), [(40, False), (55, True)])
def test_a_piece_cut_by_the_border_is_a_neighbour_only_with_a_space_between(stop, kept):
    """The digit (a stem 80 px tall) reaches neither side; a piece cut by the left border 20 px
    (a quarter of its height) clear of it is the next digit, 5 px clear a piece of its own."""
    from mnist_gen.preprocess.ink import choose_digit

    mask = np.zeros((112, 120), bool)
    mask[20:100, 60:75] = True
    mask[50:80, 0:stop] = True
    digit = choose_digit(mask, mask.astype(np.float32), PreprocessConfig())
    assert digit[60, 65] and digit[60, 20] == kept
    assert choose_digit(mask, mask.astype(np.float32), OFF)[60, 20]  # without the rule: always joined


def test_pieces_cut_by_the_top_border_are_kept():
    """Only the left/right borders cut a row of writing: a bar cut by the top border with paper
    between it and the stem (a 5's flag, cropped tight) stays part of the digit."""
    from mnist_gen.preprocess.ink import choose_digit

    mask = np.zeros((112, 90), bool)
    mask[30:100, 30:40] = True
    mask[0:20, 45:75] = True
    digit = choose_digit(mask, mask.astype(np.float32), PreprocessConfig())
    assert digit[5, 60] and digit[60, 35]
