"""Pages for the framing tests of the pipeline's digit finder: MNIST digits enlarged and put on
paper, and how alike two readings are (``test_formbox``, ``test_row_crop``, ``test_circled``, ``test_underlined``)."""

import numpy as np


def on_paper(ink: np.ndarray, paper: float = 0.9, pen: float = 0.2) -> np.ndarray:
    """Ink share (0..1) → a grey page with a little sensor noise."""
    rng = np.random.default_rng(0)
    return np.clip(paper - ink * (paper - pen) + rng.normal(0, 0.008, ink.shape), 0, 1).astype(np.float32)


def big_digits(mnist, n: int) -> list[np.ndarray]:
    """The first ``n`` test digits enlarged to 84 px and cut to their ink (white on black, 0..1)."""
    from PIL import Image

    big = [np.asarray(Image.fromarray(x).resize((84, 84), Image.Resampling.BICUBIC), np.float32) / 255
           for x in mnist["x_test"][:n]]
    return [d[np.ix_(d.max(1) > 0.1, d.max(0) > 0.1)] for d in big]


def similar(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two 28×28 readings, blurred: a 1-px shift of a thin 0 is the same reading."""
    from scipy import ndimage as ndi

    a, b = (ndi.gaussian_filter(x.astype(float), 1.0).ravel() for x in (a, b))
    return float(np.corrcoef(a, b)[0, 1])


def read_alike(digits, framed, off) -> tuple[int, int]:
    """How many ``framed(d)`` pages read as the digit alone: (in both polarities with the default
    settings, of 2 × len(digits); dark ink with the settings ``off``, of len(digits))."""
    from mnist_gen.preprocess import to_mnist

    alike = alike_off = 0
    for d in digits:
        alone = to_mnist(on_paper(np.pad(d, 12))).digit
        page = on_paper(framed(d))
        for img in (page, 1 - page):
            alike += similar(to_mnist(img).digit, alone) > 0.9
        alike_off += similar(to_mnist(page, off).digit, alone) > 0.9
    return alike, alike_off
