"""Batched training augmentation: the handwriting variation MNIST's 60k digits under-sample.

The study's networks saw only MNIST's tidy, centred, evenly inked digits and collapsed on
phone photos. Each op below models one way real digits differ and says which in its
docstring; ``augment_pixels`` composes them as ``configs/augment/<name>.yaml`` lists.

Conventions
* Ops act on *ink intensity* ``p`` in [0, 1] (0 = background, 1 = full ink; MNIST's
  uint8/255), float, shape (B, 1, H, W). Zero background is what makes padding, dilation
  and line drawing simple. ``Augmenter`` wraps this for the DataModule's normalised chunks:
  ``x·std + mean`` → ops → ``(p - mean) / std``.
* Every random number comes from one ``torch.Generator`` on the tensor's device, drawn in
  a fixed order, so a batch's augmentation is a pure function of (images, seed key) on a
  given device. ``Augmenter`` seeds it from (run seed, epoch, rank, chunk index): resumed
  runs replay the same augmentations. CPU and CUDA draw different (equally valid) numbers.
* Everything is vectorised over the batch (per-sample parameters as tensors, one
  ``grid_sample`` for the whole geometric part, grouped convolutions for per-sample blur);
  no Python loop per sample.
* Each op is applied to a random subset (its ``p``); the others pass through unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from mnist_gen.errors import UserError

#: Op order: how the digit was framed and digitised (reframe) → pen (thickness) → paper geometry (affine + elastic, one resampling) → camera/scan
#: (blur, lines) → exposure (contrast/gamma) → sensor (noise).
OPS = ("reframe", "thickness", "affine", "elastic", "blur", "lines", "contrast", "noise")


# -- random helpers -------------------------------------------------------------------------------


def _uniform(g: torch.Generator, n: int, lo: float, hi: float, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def _log_uniform(g: torch.Generator, n: int, lo: float, hi: float, device) -> torch.Tensor:
    return torch.exp(_uniform(g, n, math.log(lo), math.log(hi), device))


def _chosen(g: torch.Generator, n: int, p: float, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) < p


def _per_sample(mask: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, 1, 1, 1)


def _gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """(n,) sigmas -> (n, 2r+1) normalised 1-D Gaussian kernels."""
    t = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    k = torch.exp(-0.5 * (t[None, :] / sigma.clamp_min(1e-3)[:, None]) ** 2)
    return k / k.sum(1, keepdim=True)


def _dilate3(x: torch.Tensor) -> torch.Tensor:
    """3×3 grey dilation (= ``max_pool2d(x, 3, stride=1, padding=1)``) as two separable shifted maxima.

    ``max_pool2d`` with stride 1 is an order of magnitude slower on CPU for one channel.
    """
    y = F.pad(x, (1, 1, 0, 0), value=-math.inf)
    y = torch.maximum(torch.maximum(y[..., :-2], y[..., 1:-1]), y[..., 2:])
    y = F.pad(y, (0, 0, 1, 1), value=-math.inf)
    return torch.maximum(torch.maximum(y[..., :-2, :], y[..., 1:-1, :]), y[..., 2:, :])


def _separable_blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Blur each channel of x (n, c, H, W) with its own 1-D kernel (n*c, K) along both axes."""
    n, c, h, w = x.shape
    k = kernels.shape[1]
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(y, kernels.view(n * c, 1, 1, k), padding=(0, k // 2), groups=n * c)
    y = F.conv2d(y, kernels.view(n * c, 1, k, 1), padding=(k // 2, 0), groups=n * c)
    return y.reshape(n, c, h, w)


# -- ops --------------------------------------------------------------------------------------------


def affine_theta(g: torch.Generator, n: int, size: int, device, p: float = 1.0, degrees: float = 15.0,
                 scale=(0.8, 1.2), aspect=(1.0, 1.0), shear_deg: float = 0.0, translate_px: float = 0.0) -> torch.Tensor:
    """Per-sample ``affine_grid`` matrices (n, 2, 3): rotation, scale, aspect, slant, shift.

    Why: writers tilt the page and their digits (rotation), write large or small and narrow
    or wide even after the 20-px box normalisation (scale, aspect), slant like italics
    (shear along x), and the centre of mass of a photographed digit is never exactly
    MNIST's (shift). Samples not chosen (probability ``1 - p``) get the identity.
    """
    ang = torch.deg2rad(_uniform(g, n, -degrees, degrees, device))
    s = _uniform(g, n, scale[0], scale[1], device)
    a = _log_uniform(g, n, aspect[0], aspect[1], device) if aspect[0] != aspect[1] else torch.ones(n, device=device)
    sh = torch.tan(torch.deg2rad(_uniform(g, n, -shear_deg, shear_deg, device)))
    shift = _uniform(g, 2 * n, -translate_px, translate_px, device).view(n, 2) * (2.0 / size)  # px -> [-1, 1] units
    keep = ~_chosen(g, n, p, device)
    cos, sin, one, zero = torch.cos(ang), torch.sin(ang), torch.ones_like(ang), torch.zeros_like(ang)
    rot = torch.stack([cos, -sin, sin, cos], 1).view(n, 2, 2)
    shear = torch.stack([one, sh, zero, one], 1).view(n, 2, 2)
    scl = torch.stack([s * a, zero, zero, s / a], 1).view(n, 2, 2)
    fwd = rot @ shear @ scl  # digit coordinates -> image coordinates
    fwd = torch.where(keep.view(n, 1, 1), torch.eye(2, device=device).expand(n, 2, 2), fwd)
    shift = torch.where(keep.view(n, 1), torch.zeros_like(shift), shift)
    inv = torch.linalg.inv(fwd)  # affine_grid maps output pixels back to input pixels
    return torch.cat([inv, -(inv @ shift.unsqueeze(2))], 2)


def elastic_field(g: torch.Generator, n: int, size: int, device, p: float = 0.5, sigma: float = 4.0,
                  max_px: float = 1.5) -> torch.Tensor:
    """Smooth random displacement field (n, H, W, 2) in ``grid_sample`` units (Simard et al. 2003).

    Why: a pen stroke is not a rigid shape; loops open or close, strokes wobble and bend
    locally in ways no global affine map produces. White noise blurred with a Gaussian of
    ``sigma`` px gives locally coherent bends; each chosen sample's field is scaled to an
    RMS displacement drawn uniformly from [0, ``max_px``] px, unchosen samples get zero.
    """
    noise = torch.randn(n, 2, size, size, generator=g, device=device)
    # Separable Gaussian blur (zero padding) as two matrix products with its Toeplitz matrix:
    # one shared wide kernel, where BLAS is far faster than a 25-tap convolution on CPU.
    radius = min(int(math.ceil(3 * sigma)), size - 1)
    k = _gaussian_kernels(torch.tensor([float(sigma)], device=device), radius)[0]
    idx = torch.arange(size, device=device)
    off = idx.view(1, -1) - idx.view(-1, 1) + radius
    blur_m = torch.where((off >= 0) & (off <= 2 * radius), k[off.clamp(0, 2 * radius)], torch.zeros((), device=device))
    field = (noise @ blur_m.T).transpose(-1, -2) @ blur_m.T  # rows, then columns (transposed)
    field = field.transpose(-1, -2)
    rms = field.pow(2).mean((1, 2, 3), keepdim=True).sqrt().clamp_min(1e-8)
    mag = _uniform(g, n, 0.0, max_px, device) * _chosen(g, n, p, device)
    field = field / rms * _per_sample(mag) * (2.0 / size)
    return field.permute(0, 2, 3, 1)


def warp(x: torch.Tensor, theta: torch.Tensor | None = None, field: torch.Tensor | None = None) -> torch.Tensor:
    """Resample x once through affine matrices and/or a displacement field (bilinear, zero outside).

    One resampling for both keeps strokes from being blurred twice; the identity matrix
    reproduces the input exactly (``align_corners=False`` samples pixel centres).
    """
    n, c, h, w = x.shape
    if theta is None:
        theta = torch.eye(2, 3, device=x.device, dtype=x.dtype).expand(n, 2, 3)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    if field is not None:
        grid = grid + field
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _ink_boxes(x: torch.Tensor, level: float = 0.2) -> torch.Tensor:
    """(n, 4) ink bounding boxes (y0, y1, x0, x1), inclusive pixel indices; the whole image when empty."""
    n, _, h, w = x.shape
    rows = x[:, 0].amax(2) > level
    cols = x[:, 0].amax(1) > level
    empty = ~rows.any(1)
    y0 = rows.int().argmax(1)
    y1 = h - 1 - rows.flip(1).int().argmax(1)
    x0 = cols.int().argmax(1)
    x1 = w - 1 - cols.flip(1).int().argmax(1)
    box = torch.stack([y0, y1, x0, x1], 1)
    full = torch.tensor([0, h - 1, 0, w - 1], device=x.device)
    return torch.where(empty[:, None], full, box)


def reframe(x: torch.Tensor, g: torch.Generator, p_stretch: float = 0.15, p_lowres: float = 0.15,
            sizes=(8, 10, 12, 16), p_binary: float = 0.5, box: int = 20) -> torch.Tensor:
    """Digits framed and digitised as other collections do it, on random subsets.

    Why: MNIST fits each digit into a 20-px box keeping its aspect ratio, from 8-bit scans.
    Other collections stretch the digit to fill a square box (narrow 1s become wide), store
    it at 8–16 px, or as black and white. What such a digit looks like after this project's
    preprocessing is the same digit, stretched or blocky; these two ops make it:
    * stretch: the ink's box is stretched to fill the ``box``-px square (one resampling);
    * low resolution: the digit's box is reduced to ``s`` px (``s`` from ``sizes``; area
      average), with probability ``p_binary`` thresholded to black and white, and enlarged
      back (bilinear), its strongest ink rescaled to full.
    """
    n, _, h, w = x.shape
    dev = x.device
    stretch = _chosen(g, n, p_stretch, dev)
    lowres = _chosen(g, n, p_lowres, dev)
    size_idx = torch.randint(len(sizes), (n,), generator=g, device=dev)
    binary = _chosen(g, n, p_binary, dev)
    out = x
    if stretch.any():
        b = _ink_boxes(x).to(x.dtype)
        # pixel edges -> [-1, 1] (align_corners=False): left edge of column i is 2i/w - 1
        top, bottom = 2 * b[:, 0] / h - 1, 2 * (b[:, 1] + 1) / h - 1
        left, right = 2 * b[:, 2] / w - 1, 2 * (b[:, 3] + 1) / w - 1
        half = box / w  # the box's half-width in [-1, 1] units
        theta = torch.zeros(n, 2, 3, device=dev, dtype=x.dtype)
        theta[:, 0, 0], theta[:, 0, 2] = (right - left) / 2 / half, (right + left) / 2
        theta[:, 1, 1], theta[:, 1, 2] = (bottom - top) / 2 / half, (bottom + top) / 2
        out = torch.where(_per_sample(stretch), warp(x, theta), x)
    if lowres.any():
        low = out
        for i, s in enumerate(sizes):
            sel = lowres & (size_idx == i)
            if not sel.any():
                continue
            r = max(2, round(h * s / box))  # the digit's box at s px, so the image at r px
            small = F.interpolate(out[sel], size=(r, r), mode="area")
            peak = small.amax((2, 3), keepdim=True).clamp_min(1e-6)
            small = torch.where(_per_sample(binary[sel]), (small > 0.5 * peak).to(small.dtype), small / peak)
            big = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
            big = big / big.amax((2, 3), keepdim=True).clamp_min(1e-6)
            low = low.index_put((sel.nonzero()[:, 0],), big)
        out = low
    return out


def stroke_thickness(x: torch.Tensor, g: torch.Generator, p_thicken: float = 0.2, p_thin: float = 0.15,
                     strength=(0.3, 1.0)) -> torch.Tensor:
    """Thicken (grey dilation) or thin (grey erosion) strokes on a random subset.

    Why: marker, ballpoint and pencil give strokes from a hairline to a third of the digit's
    width, and preprocessing normalises width only approximately. Dilation is a 3×3 max-pool,
    erosion ``-maxpool(-x)``; blending ``x + t·(op(x) - x)`` with t in ``strength`` gives
    sub-pixel changes (a full 3×3 step is 2 px on a 2-3 px MNIST stroke).
    """
    n = x.shape[0]
    u = torch.rand(n, generator=g, device=x.device)
    t = _per_sample(_uniform(g, n, strength[0], strength[1], x.device))
    thick = _per_sample(u < p_thicken)
    thin = _per_sample((u >= p_thicken) & (u < p_thicken + p_thin))
    dil = _dilate3(x)
    ero = -_dilate3(-x)
    out = torch.where(thick, x + t * (dil - x), x)
    return torch.where(thin, x + t * (ero - x), out)


def blur(x: torch.Tensor, g: torch.Generator, p: float = 0.2, sigma=(0.3, 1.0)) -> torch.Tensor:
    """Gaussian blur with a per-sample sigma on a random subset.

    Why: phone photos are slightly out of focus or shaken, and downscaling a photo to
    28×28 smooths edges differently from NIST's scanner.
    """
    n = x.shape[0]
    s = _uniform(g, n, sigma[0], sigma[1], x.device)
    chosen = _chosen(g, n, p, x.device)
    radius = max(1, int(math.ceil(3 * sigma[1])))
    out = _separable_blur(x, _gaussian_kernels(s, radius))
    return torch.where(_per_sample(chosen), out, x)


def contrast(x: torch.Tensor, g: torch.Generator, p: float = 0.5, gain=(0.6, 1.3), gamma=(0.6, 1.6)) -> torch.Tensor:
    """Ink gain and gamma on a random subset: ``clip(gain · x**gamma, 0, 1)``.

    Why: a faint pencil or a grey photo gives ink that never reaches MNIST's full white
    (gain < 1); a marker saturates it (gain > 1); gamma changes how fast a stroke's edge
    fades, i.e. the grey rim left by anti-aliasing and thresholding.
    """
    n = x.shape[0]
    k = _per_sample(_uniform(g, n, gain[0], gain[1], x.device))
    gm = _per_sample(_log_uniform(g, n, gamma[0], gamma[1], x.device))
    chosen = _per_sample(_chosen(g, n, p, x.device))
    return torch.where(chosen, (k * x.clamp_min(0).pow(gm)).clamp(0, 1), x)


def noise(x: torch.Tensor, g: torch.Generator, p: float = 0.3, std=(0.0, 0.08)) -> torch.Tensor:
    """Additive Gaussian noise with a per-sample std on a random subset, clipped to [0, 1].

    Why: paper grain, sensor noise and JPEG residue survive thresholding as faint speckle
    on the background and uneven ink.
    """
    n = x.shape[0]
    s = _per_sample(_uniform(g, n, std[0], std[1], x.device))
    eps = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
    chosen = _per_sample(_chosen(g, n, p, x.device))
    return torch.where(chosen, (x + s * eps).clamp(0, 1), x)


def lines(x: torch.Tensor, g: torch.Generator, p: float = 0.08, intensity=(0.3, 0.9), width=(0.5, 1.0),
          max_offset_px: float = 12.0) -> torch.Tensor:
    """Draw one thin straight anti-aliased line across a random subset.

    Why: ruled or squared paper, a margin line or a crossed-out stroke: the preprocessing
    removes long lines, but remnants and short pieces reach the classifier.
    Line: random angle, offset from the centre up to ``max_offset_px``, half-width ``width``
    px, brightness ``intensity``; combined with the digit by ``max`` (ink over ink).
    """
    n, _, h, w = x.shape
    ang = _uniform(g, n, 0.0, math.pi, x.device)
    off = _uniform(g, n, -max_offset_px, max_offset_px, x.device)
    half = _uniform(g, n, width[0], width[1], x.device)
    val = _uniform(g, n, intensity[0], intensity[1], x.device) * _chosen(g, n, p, x.device)
    ys = torch.arange(h, device=x.device, dtype=x.dtype) - (h - 1) / 2
    xs = torch.arange(w, device=x.device, dtype=x.dtype) - (w - 1) / 2
    dist = (xs.view(1, 1, w) * torch.cos(ang).view(n, 1, 1) + ys.view(1, h, 1) * torch.sin(ang).view(n, 1, 1)
            - off.view(n, 1, 1)).abs()
    line = (half.view(n, 1, 1) + 0.5 - dist).clamp(0, 1) * val.view(n, 1, 1)
    return torch.maximum(x, line.unsqueeze(1).to(x.dtype))


# -- composition --------------------------------------------------------------------------------


def _opts(cfg: Mapping, key: str) -> dict | None:
    node = cfg.get(key)
    return dict(node) if node else None


#: Applied by the DataModule to whole training digits before the ops above, as copies made
#: once for the whole training set: the styles MNIST lacks (they need each digit's label,
#: ``mnist_gen/data/styles.py``) and the pipeline's reading of each digit filed small
#: (``mnist_gen/data/refiled.py``). Options: ``p``, the share swapped in per epoch.
DATA_OPS = ("styles", "refiled")


def is_identity(cfg: Mapping | None) -> bool:
    """True when the config applies no op (``augment=none``): training data stays bit-for-bit MNIST."""
    return not cfg or not any(cfg.get(op) for op in OPS + DATA_OPS)


def check_config(cfg: Mapping | None) -> None:
    """Unknown keys are typos that would silently disable an op; reject them."""
    if not cfg:
        return
    unknown = set(cfg) - set(OPS) - set(DATA_OPS) - {"name"}
    if unknown:
        raise UserError(f"unknown augmentation op(s) {sorted(unknown)} in the augment config; "
                        f"valid: {', '.join(OPS + DATA_OPS)}.")


def load_config(augment: Mapping | None) -> dict | None:
    """``None`` or the ``augment`` config (a mapping of op -> options) -> a checked plain dict.

    Presets by name (``configs/augment/<name>.yaml``) are composed by the caller: Hydra in
    ``train.py``, ``mnist_gen.settings.compose_group("augment", name)`` elsewhere.
    """
    if augment is None:
        return None
    if isinstance(augment, DictConfig):
        augment = OmegaConf.to_container(augment, resolve=True)
    if not isinstance(augment, Mapping):
        raise UserError(f"the augment config must be a mapping of op -> options, got {type(augment).__name__}.")
    cfg = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in dict(augment).items()}
    check_config(cfg)
    return cfg


def augment_pixels(p: torch.Tensor, cfg: Mapping, g: torch.Generator) -> torch.Tensor:
    """Apply the configured ops to ink intensities p in [0, 1], shape (B, 1, H, W); returns a new tensor."""
    check_config(cfg)
    if is_identity(cfg):
        return p
    x = p.float()
    n, size = x.shape[0], x.shape[-1]
    if (o := _opts(cfg, "reframe")) is not None:
        x = reframe(x, g, **o)
    if (o := _opts(cfg, "thickness")) is not None:
        x = stroke_thickness(x, g, **o)
    theta = affine_theta(g, n, size, x.device, **o) if (o := _opts(cfg, "affine")) is not None else None
    field = elastic_field(g, n, size, x.device, **o) if (o := _opts(cfg, "elastic")) is not None else None
    if theta is not None or field is not None:
        x = warp(x, theta, field)
    if (o := _opts(cfg, "blur")) is not None:
        x = blur(x, g, **o)
    if (o := _opts(cfg, "lines")) is not None:
        x = lines(x, g, **o)
    if (o := _opts(cfg, "contrast")) is not None:
        x = contrast(x, g, **o)
    if (o := _opts(cfg, "noise")) is not None:
        x = noise(x, g, **o)
    return x.clamp(0, 1).to(p.dtype)


def seed_for(*key: int) -> int:
    """A 63-bit generator seed from integers (run seed, epoch, rank, chunk), well mixed."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class Augmenter:
    """Callable for ``EpochChunks``: normalised chunk (M, 1, 28, 28) + seed key -> augmented chunk.

    ``cfg`` is the ``augment`` config group (a mapping of op name -> keyword arguments);
    ``mean``/``std`` are the DataModule's normalisation scalars.
    """

    def __init__(self, cfg: Mapping, mean: float, std: float):
        self.cfg = load_config(cfg)
        self.mean, self.std = float(mean), float(std)

    def __call__(self, x: torch.Tensor, key: tuple[int, ...]) -> torch.Tensor:
        g = torch.Generator(device=x.device)
        g.manual_seed(seed_for(*key))
        p = x.float() * self.std + self.mean
        return ((augment_pixels(p, self.cfg, g) - self.mean) / self.std).to(x.dtype)
