"""A photo taken in low light, smoothed until its noise is a clean photo's (pipeline versions 28–30).

A photo taken in low light (high ISO) has sensor noise of 10–30 grey levels where a well-lit
photo or a scan has 1–3. Every later step was set for the latter: on the former, the grain hides
ink 25–50 levels dark, splits it into specks the digit finder takes for the digit or for nothing,
and outvotes the ink in the choice of polarity.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from mnist_gen.preprocess.config import PreprocessConfig
from mnist_gen.preprocess.paper import find_paper

#: The lower quartile of |N(0, 6σ²)| (a second difference of white noise of σ), over σ.
QUARTILE = 0.3186 * np.sqrt(6)


def denoised(gray: np.ndarray, cfg: PreprocessConfig) -> tuple[np.ndarray, float]:
    """(a noisy photo smoothed until its noise is a clean photo's, or any other image as it is;
    the noise left, relative to the paper: 0 when nothing was smoothed).

    The photo is smoothed by a Gaussian just wide enough to leave its noise at the bound the
    later steps were set for, and no lower: smoothed further, a blank page's faint shading stands
    out from a grain smoothed away (blank strips of the study's photos read at a fixed 2–4 × the
    usual smoothing gave "digits" in 52 of 116 strips instead of 14).

    The bound is ``noisy`` on white paper and scales with the paper's level as the reading will
    see it (versions 29–30): the later steps measure ink and grain relative to the paper
    (lighting multiplies), and 5 levels of noise are a tenth of a paper at 50; a dim page's pen
    30 % darker did not clear the grain left at version 28's fixed bound. Light ink is read
    turned to dark, on a paper of 1 − its level: the inverse of a dim photo (light ink on a paper
    at 0.7) was smoothed for a paper at 0.7 and read on one at 0.3, with 2.3 × the grain a dim
    page is read with (version 29: 91.5 % of ``check_usps_lowlight_inv`` against 94.2 % dark).
    A noisy image's polarity is a coin's toss until it is smoothed (read off the raw image it
    lost 1.9 points on the dark-ink set), so it is smoothed once for the plane's own level and,
    when that shows light ink, again for the level it will be read at if that is lower. Only
    ever more, not less, than for the plane's level: smoothed, a blank page's polarity is still a
    guess, and a dim page guessed as light ink (0.3 read as 0.7) would lose what version 29 gained.

    The noise left is returned: the reading takes the paper's grain as at least that
    (``_read_digit``, ``lit_blank``), since a grain smoothed into blobs measures smaller than it
    is between them and the blobs would pass for ink (pure noise on dim pages read as digits in
    40 of 240 without it, 6 with it).

    No image whose noise is at or below ``noisy`` changes (a well-lit photo, a scan); nor one
    smaller than ``min_noise_side`` (mostly strokes: its noise cannot be told from them), nor
    one noisier than ``max_noisy``, more than a photo's sensor gives (uniform noise, a dithered
    scan): smoothed that far, pure noise turns into blobs as wide as strokes (a 100 px square of
    uniform noise gave a "digit").
    """
    side = max(gray.shape)
    step = max(1, side // cfg.work_size)  # rows up to the work size's count: enough to measure
    if min(gray.shape) < cfg.min_noise_side:
        return gray, 0.0
    d = _second_differences(gray, 2, step)
    # Most images are far quieter than the bound, and a count shows it: the quartile itself costs
    # ~7 ms on a 640 px photo. (Over a quarter and two of the differences under 0.99 × the bound's
    # quartile put the quartile itself below it: the same answer.)
    if np.count_nonzero(d <= 0.99 * cfg.noisy * QUARTILE) > 0.25 * d.size + 2:
        return gray, 0.0
    noise = float(np.quantile(d, 0.25)) / QUARTILE
    if not cfg.noisy < noise <= cfg.max_noisy:
        return gray, 0.0
    smooth, left = _smoothed(gray, noise, float(find_paper(gray, cfg).coef[0]), step, cfg)
    paper = find_paper(smooth, cfg)
    light = 1.0 - float(paper.coef[0])  # the paper's level once light ink is turned to dark
    if not paper.dark_ink and light < paper.coef[0]:
        smooth, left = _smoothed(gray, noise, light, step, cfg)
    return smooth, left


def _smoothed(gray: np.ndarray, noise: float, level: float, step: int, cfg: PreprocessConfig) -> tuple[np.ndarray, float]:
    """``gray`` smoothed to ``noisy`` × the paper's ``level`` of noise (clipped to ``min_paper``..1),
    and the noise left relative to that level.

    The width starts where white noise would need it (a Gaussian of σ px divides it by 2√π·σ)
    and grows by half until what is left measures at the bound (so between 2/3 of it and it): a
    camera's noise is correlated over a pixel or two (demosaicing, JPEG) and falls more slowly.
    At most ``max_denoise_frac`` of the side: a stroke is ~10 % of a digit.
    """
    level = float(np.clip(level, cfg.min_paper, 1.0))
    bound = cfg.noisy * level
    cap = cfg.max_denoise_frac * max(gray.shape)
    sigma = min(noise / bound / (2 * np.sqrt(np.pi)), cap)
    while True:
        smooth = ndi.gaussian_filter(gray, sigma)
        left = sensor_noise(smooth, int(np.ceil(3 * sigma)), step)
        if sigma >= cap or left <= bound:
            # At the cap more may be left, partly strokes at that lag: no more than the bound counts.
            return smooth, min(left, bound) / level
        sigma = min(1.5 * sigma, cap)


def sensor_noise(g: np.ndarray, lag: int, step: int = 1) -> float:
    """σ of the noise in ``g`` from second differences of pixels ``lag`` apart (beyond a camera's
    demosaicing, or a smoothing's reach), across and down every ``step``-th row, by their lower
    quartile (|N(0, 6σ²)|'s is 0.3186·√6·σ), which strokes do not reach in a digit's photo.

    Not ``paper.smoothed_noise``, which takes first differences: those count the light's
    gradient as noise, and side-lit photos of digits (``check_usps_uneven_photo``, σ 2 levels)
    measured 4–7 levels; a second difference cancels a gradient.
    """
    d = _second_differences(g, lag, step)
    return float(np.quantile(d, 0.25)) / QUARTILE if d.size else 0.0


def _second_differences(g: np.ndarray, lag: int, step: int) -> np.ndarray:
    """|second differences| of pixels ``lag`` apart, across and down every ``step``-th row."""
    rows = g[::step]
    across = rows[:, 2 * lag :] - 2 * rows[:, lag:-lag] + rows[:, : -2 * lag]
    cols = g[:, ::step]
    down = cols[2 * lag :] - 2 * cols[lag:-lag] + cols[: -2 * lag]
    return np.abs(np.concatenate([across.ravel(), down.ravel()]))
