"""Settings of the MNIST-like pipeline, in one place: the fields of ``PreprocessConfig``.

``configs/preprocess/<name>.yaml`` presets only override fields of this dataclass, which
Hydra knows as the group's schema (``preprocess/base``): a typo in a preset or on the command
line is refused, and each default lives here alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np

from mnist_gen.errors import UserError

#: MNIST's geometry: a 20×20 box for the digit inside a 28×28 field.
MNIST_SIZE = 28
MNIST_BOX = 20


@dataclass
class PreprocessConfig:
    """All knobs of the photo → MNIST pipeline (defaults = ``configs/preprocess/mnist_like.yaml``)."""

    method: str = "mnist_like"  # mnist_like | naive (the study's whole-photo resize)
    exif_transpose: bool = True  # phones store photos sideways and record the rotation in EXIF
    max_load_side: int = 2048  # huge files are reduced while decoding (JPEG draft / reduce)
    max_decode_pixels: int = 40_000_000  # larger non-JPEG images are refused before decoding (memory)
    work_size: int = 640  # longest side the photo is analysed at
    min_work_size: int = 112  # tiny inputs (a 16×16 scan, a 28×28 array) are enlarged to this first
    smooth_sigma: float = 1.0  # px at work size; averages away paper grain and sensor noise
    noisy: float = 0.02  # sensor noise (σ) above this, 5 levels, is a noisy photo (a well-lit one: 1-3), read smoothed until its noise is this × the paper's level
    max_denoise_frac: float = 0.04  # ... by at most this × the image side (a stroke is ~10 % of a digit)
    max_noisy: float = 0.16  # noisier than this (40 levels; a photo's sensor gives at most ~30) is no photo: left as it is
    min_noise_side: int = 32  # smaller images are mostly strokes: their noise cannot be told from them
    frame_frac: float = 0.06  # the frame the paper is fitted to: this × the image side from each edge
    max_frame_ink: float = 0.4  # more of the frame than this off the paper: it is mixed, topology decides
    min_plane_side: int = 32  # images (coarse copies) smaller than this are too small to show lighting: flat paper
    light_frac: float = 0.25  # the polarity vote first reads the image less its median over this × its side: light is wider than strokes (0: never)
    light_out_paper: float = 2.0  # ... and trusts it only where one class comes out this × wider than the other (paper around strokes)
    light_out_tie: bool = True  # ... and a tie there goes to its class owning less of the frame, where the image as it is is no strokes and paper (False: version 35)
    light_out_span: float = 0.5  # ... and only where its wide class is this × the median's window wide at least (mean distance): its median was then the paper's (0: any)
    light_out_frame: float = 2.0  # a clear frame departing from its plane by this × the grain left with the light out by scale: the polarity is read there, if one way departs this × the other (0: never)
    lighting_frac: float = 0.3  # both tones hold areas this × the image side wide: a shadow's edge (0: never)
    shade_ink_beyond: float = 0.25  # ... or one tone's wide area is a shade the ink lies beyond, by this × its step (0: never)
    shade_frac: float = 0.2  # ... which need only hold a square this × the image's shorter side (0: version 22's third of the longest)
    level_frac: float = 0.5  # a shadowed image is levelled by a running median this × its side wide
    min_grain: float = 0.008  # floor of the paper's grain, 2 of 255 levels (a synthetic image has none)
    min_grain_frac: float = 0.02  # and at least this × the image's range (JPEG's flat blocks hide the grain)
    background_frac: float = 0.12  # the paper closing is at least this × longest side wide
    min_paper: float = 0.1  # ink darkness is relative to the paper, which counts as at least this bright
    snr: float = 5.0  # ink must be this many × the paper's grain darker than the paper
    min_peak_snr: float = 6.0  # the strongest ink must reach this × the grain, else nothing is there
    min_contrast: float = 0.03  # and at least this much darker (relative), whatever the grain
    threshold_frac: float = 0.4  # a mark is ink only where part of it reaches this × the strongest ink (hysteresis)
    smoothed_band: float = 0.7  # on a photo smoothed for its noise, ink touching clear ink down to this × the clear level belongs to it, under the grain floor (1: no band)
    line_frac: float = 0.5  # straight runs longer than this × image side may be ruled lines ...
    line_over_digit: float = 1.5  # ... and are erased when this × longer than the rest of the ink,
    line_faint: float = 0.5  # or when they cross the image and are at most this × as dark as its strokes
    faint_bands: bool = True  # such faint crossing rules are erased however wide (a thin pen on squared paper)
    rule_max_width: float = 0.05  # ... up to this × the image side at half their darkness (wider: a blurred stroke's fringe)
    line_angles: tuple[float, ...] = (-6.0, -3.0, 0.0, 3.0, 6.0)  # degrees; photos are rarely square-on
    form_box_depth: float = 0.25  # a form's printed box is looked for this far in from each border (0: never)
    form_line_cover: float = 0.6  # its line covers this much of the image's middle 80 % along the border
    form_line_max: float = 0.06  # and is at most this × the image side wide (a digit's own stroke is wider)
    sheet_min_area: float = 0.1  # a sheet lying on a desk covers at least this share of the photo (0: never look)
    sheet_desk_frame: float = 0.5  # and the desk owns at least this share of the frame
    sheet_wider: float = 2.5  # the sheet is this × wider than the pen that wrote on it (4 before version 26: a marker on a small note)
    sheet_pen: float = 0.3  # what is written on it is strokes: their half-width at most this × its extent (0.2 before version 26)
    sheet_edge: float = 0.7  # its edge is a step: the tones differ within 3 px of it by this share (to its inverse) of 3-8 px off it (a ramp: ~0)
    sheet_grain: float = 0.03  # the desk's streaks of the sheet's tone are narrower than this × the image's shorter side
    speck_frac: float = 0.02  # marks smaller than this × the largest mark are specks (dust, grain)
    min_digit_frac: float = 0.04  # a digit's longest side is at least this × shorter image side
    max_loops: int = 3  # a digit has at most two loops (8); a tangle with more is noise or texture
    min_digit_ink_share: float = 0.35  # the chosen digit holds at least this share of all ink
    stroke_gap: float = 2.0  # pieces this × the stroke's width apart are one stroke, broken by the pen (0: off)
    group_margin: float = 0.35  # pieces within this × digit size of the main stroke belong to it
    neighbour_gap: float = 0.1  # marks cut by the left/right border this × the digit's height clear of it: the next digit (0: never)
    ring_inside: float = 0.1  # marks inside a ring with this × its ink are a circled digit, read alone (0: never)
    ring_outline: bool = True  # a ring is also found by its oval outline: touched by the digit, or thick and close around it (false: version 37)
    ring_open: bool = True  # ... and when left open by up to three pens (false: version 38)
    underline: float = 1.0  # a flat bar below the rest of the digit, this × its width or wider, is an underline (0: never)
    edge_penalty: float = 0.05  # weight of marks hugging the frame (page edges, shadows) when others do not
    stroke_ratio: float | None = 0.12  # stroke width / box side; MNIST: median 0.135, IQR 0.117–0.157
    stroke_tolerance: float = 0.25  # leave strokes alone within ±25 % of the target
    stroke_max_thicken: float = 3.0  # at most this × current width is added (hairlines → MNIST pen)
    stroke_max_thin: float = 0.5  # at most this × current width is removed (thin parts must survive)
    saturate_quantile: float | None = 0.5  # this ink quantile → full white (MNIST cores: 255)
    box: int = MNIST_BOX
    size: int = MNIST_SIZE
    naive_threshold: float | None = None  # the study's fixed threshold (0–255 after inversion), if any

    def __post_init__(self):
        if self.method not in ("mnist_like", "naive"):
            raise UserError(f"preprocess.method must be 'mnist_like' or 'naive', got '{self.method}'.")
        self.line_angles = tuple(float(a) for a in self.line_angles)


@dataclass
class PreprocessResult:
    """``digit`` is uint8 28×28 (bright ink on black) or None with a one-sentence ``reason``."""

    digit: np.ndarray | None
    reason: str | None = None
    views: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.digit is not None


class NoDigit(Exception):
    """Internal: the pipeline found no digit; the message becomes ``PreprocessResult.reason``.

    ``marks``: ink stood out, but as no digit (scattered pieces, a tangle of loops) — what the
    paper between a bold digit's strokes looks like when read as the ink. ``faint``: nothing
    stood out from the grain measured on the frame — which a bold stroke running along the
    frame inflates.
    """

    def __init__(self, message: str, marks: bool = False, faint: bool = False):
        super().__init__(message)
        self.marks = marks
        self.faint = faint


def as_config(cfg: PreprocessConfig | Mapping | None = None, **overrides) -> PreprocessConfig:
    """Accept a config object, a plain/Hydra mapping or None (defaults); unknown keys are a user error."""
    if isinstance(cfg, PreprocessConfig) and not overrides:
        return cfg
    base = (
        {}
        if cfg is None
        else (
            {f.name: getattr(cfg, f.name) for f in fields(cfg)}
            if isinstance(cfg, PreprocessConfig)
            else dict(cfg)
        )
    )
    base.update(overrides)
    known = {f.name for f in fields(PreprocessConfig)}
    unknown = sorted(set(base) - known)
    if unknown:
        raise UserError(
            f"Unknown preprocess setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}."
        )
    if base.get("line_angles") is not None:
        base["line_angles"] = tuple(base["line_angles"])
    return PreprocessConfig(**base)


def register_schema() -> None:
    """Make ``PreprocessConfig`` the schema of Hydra's ``preprocess`` group (``preprocess/base``).

    Done on import of this module (Hydra's structured-config pattern), so any composition of
    the packaged configs finds it; calling it again is harmless.
    """
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="preprocess", name="base", node=PreprocessConfig)


register_schema()
