"""Exploratory data analysis: why MNIST models fail on other handwriting.

    python -m mnist_gen.cli.eda                         # fixed-seed subsample, about 2 min on 2 cores
    python -m mnist_gen.cli.eda n_mnist=null n_per_set=null   # every digit (slow)

Writes into ``out_dir`` (default ``outputs/eda``):

    mean_digits.png            average image of each digit, MNIST and every set side by side
    set_stats.png|.md|.json    ink coverage, stroke width, bounding box, centre-of-mass offset, background
    umap_<features>_2d.png     MNIST embedding coloured by class
    umap_<features>_gap.png    the other sets projected into the MNIST embedding (rows: preprocessing)
    umap_<features>_3d.png     the same in 3D, and ``umap_<features>_3d.html`` to rotate and hover
    cache/umap_*.npz           embeddings, keyed by a hash of their inputs and the UMAP settings
    eda.json                   what was written, set sizes, sets that were missing, the model used

``<features>`` is ``pixels`` (raw 784 pixels / 255) or ``penultimate`` (a trained network's
activations before its Dense(10) layer). UMAP is fitted on MNIST only and the other sets are
``transform``-ed into it: a set that lands on top of MNIST's clusters looks like MNIST to
a model, one that lands elsewhere is out of distribution.

Every figure function takes plain arrays/dicts and tolerates missing or empty sets, so it
can be called alone (see tests/test_eda.py).
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mnist_gen import paths
from mnist_gen.errors import UserError
from mnist_gen.evalsets import load_eval_set
from mnist_gen.io import write_atomic
from mnist_gen.reporting.eda.embed import cached_umap, penultimate_features, pixel_features, reduce_dims
from mnist_gen.reporting.eda.plots import (
    plot_domain_gap,
    plot_mean_digits,
    plot_set_stats,
    plot_umap_2d,
    plot_umap_3d,
    stats_markdown,
)
from mnist_gen.reporting.eda.stats import class_agreement, set_statistics, summarize
from mnist_gen.reporting.eda.viewer import write_umap_3d_html

log = logging.getLogger(__name__)

def subsample(n_total: int, n: int | None, seed: int, name: str = "") -> np.ndarray:
    """Sorted fixed-seed indices of ``n`` of ``n_total`` items (all when n is None or ≥ n_total).

    The seed is mixed with the set's name so every set draws its own, reproducible sample.
    """
    if n is None or n >= n_total:
        return np.arange(n_total)
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
    return np.sort(rng.choice(n_total, size=int(n), replace=False))


# --------------------------------------------------------------------------- model for penultimate features

# Deepest network first: its penultimate layer is furthest from raw pixels.
NETWORK_PREFERENCE = ["cnn_32_16x3", "cnn_32_16", "cnn_32", "mlp_64_32", "mlp_64_16"]


def find_network_run(roots: Sequence[Path]) -> Path | None:
    """The finished network run (results.json + model.ckpt) to read features from, by ``NETWORK_PREFERENCE``."""
    found = []
    for root in roots:
        if not Path(root).is_dir():
            continue
        for ckpt in Path(root).rglob("model.ckpt"):
            res = ckpt.parent / "results.json"
            try:
                name = json.loads(res.read_text())["model"]
            except (OSError, ValueError, KeyError):
                continue  # a run still training, or broken: never read features from it
            rank = NETWORK_PREFERENCE.index(name) if name in NETWORK_PREFERENCE else len(NETWORK_PREFERENCE)
            found.append((rank, str(ckpt.parent)))
    return Path(min(found)[1]) if found else None


def _plain(node):
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def run(cfg) -> dict:
    """The whole EDA under one config (see configs/eda.yaml); returns what eda.json records."""
    t_start = time.perf_counter()
    if cfg.get("threads"):
        import torch

        torch.set_num_threads(int(cfg.threads))
    out = Path(cfg.out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    cache_dir = out / "cache" if cfg.cache else None
    level = int(cfg.ink_level)
    timings: dict[str, float] = {}

    # --- data ------------------------------------------------------------------------------
    t = time.perf_counter()
    from mnist_gen.data.mnist import load_mnist

    data_dir = Path(cfg.paths.data_dir) if cfg.paths.get("data_dir") else paths.data_dir()
    m = load_mnist(data_dir)
    split = cfg.mnist_split
    if split not in ("train", "test"):
        raise UserError(f"mnist_split must be train or test, got '{split}'.")
    idx = subsample(len(m[f"y_{split}"]), cfg.n_mnist, cfg.seed, f"mnist_{split}")
    mnist_x, mnist_y = m[f"x_{split}"][idx], m[f"y_{split}"][idx]
    mnist_ids = [f"{split}[{i}]" for i in idx]

    layout: dict[str, list[str]] = {g: list(v or []) for g, v in _plain(cfg.sets).items()}
    set_options = _plain(cfg.eval_set_options) or {}
    preprocess = _plain(cfg.preprocess)
    sets, missing, group_of = {}, {}, {"mnist": "mnist"}
    for group, names in layout.items():
        for name in names:
            opts = {"data_dir": str(data_dir), **(set_options.get(name) or {})}
            # The naive variants carry their own conversion; handing them the MNIST-like
            # preprocessing would make them copies of the MNIST-like sets.
            if group != "naive" and preprocess is not None:
                opts.setdefault("preprocess", preprocess)
            try:
                s = load_eval_set(name, **opts)
            except (UserError, FileNotFoundError, OSError) as e:
                log.warning("set %s skipped: %s", name, e)
                missing[name] = str(e)
                continue
            if len(s) == 0:
                log.warning("set %s is empty; skipped", name)
                missing[name] = "empty"
                continue
            keep = subsample(len(s), cfg.n_per_set, cfg.seed, name)
            sets[name] = (s.images[keep], s.labels[keep], [s.ids[i] for i in keep])
            group_of[name] = group
    timings["load"] = time.perf_counter() - t
    log.info("data: %d MNIST %s digits; sets %s; missing %s", len(mnist_y), split,
             {n: len(v[1]) for n, v in sets.items()}, list(missing) or "none")

    files: dict[str, str] = {}

    def rel(p: Path | None) -> None:
        if p is not None:
            files[p.stem if p.suffix == ".png" else p.name] = str(Path(p).relative_to(out))

    # --- mean digits + statistics ----------------------------------------------------------
    t = time.perf_counter()
    mnist_name = f"mnist_{split}"
    with_mnist = {mnist_name: (mnist_x, mnist_y), **{n: (v[0], v[1]) for n, v in sets.items()}}
    group_of[mnist_name] = "mnist"
    rel(plot_mean_digits(with_mnist, out / "mean_digits.png"))
    stats = {n: set_statistics(x, level) for n, (x, _) in with_mnist.items()}
    summaries = {n: summarize(s) for n, s in stats.items()}
    sizes = {n: len(y) for n, (_, y) in with_mnist.items()}
    rel(plot_set_stats(stats, group_of, out / "set_stats.png"))
    rel(write_atomic(out / "set_stats.md", stats_markdown(summaries, sizes)))
    rel(write_atomic(out / "set_stats.json", json.dumps({"ink_level": level, "sizes": sizes, "groups": group_of,
                                                         "summary": summaries}, indent=2)))
    timings["stats_figures"] = time.perf_counter() - t
    log.info("mean digits and set statistics written (%.1f s)", timings["stats_figures"])

    # --- UMAP ------------------------------------------------------------------------------
    features = list(cfg.features or [])
    model_info = None
    if "penultimate" in features:
        model_info = _resolve_model(cfg)
        if model_info is None:
            log.warning("no trained network found (model_path=%s); penultimate-feature views skipped", cfg.model_path)
            features.remove("penultimate")
    u = cfg.umap
    params = {"n_neighbors": int(u.n_neighbors), "min_dist": float(u.min_dist),
              "n_epochs": None if u.n_epochs is None else int(u.n_epochs), "seed": int(cfg.seed)}
    layout_present = {g: [n for n in names if n in sets] + [n for n in names if n in missing] for g, names in layout.items()}
    cache_hits, agreement = {}, {}
    for feat in features:
        t = time.perf_counter()
        log.info("UMAP on %s: fitting on %d MNIST digits, then projecting %d set(s)", feat, len(mnist_y), len(sets))
        if feat == "pixels":
            fx = pixel_features
            desc = "raw pixels"
        elif feat == "penultimate":
            from mnist_gen.models.predictors import load_predictor

            predictor = load_predictor(model_info["path"])
            def fx(images, _p=predictor):
                return penultimate_features(_p, images)
            desc = f"{model_info['name']} penultimate features"
        else:
            raise UserError(f"Unknown feature kind '{feat}'; use pixels and/or penultimate.")
        train_f = fx(mnist_x)
        others_f = {n: fx(v[0]) for n, v in sets.items()}
        train_f, others_f = reduce_dims(train_f, others_f, u.get("pca_dims"), int(cfg.seed))
        for dim in list(u.components):
            dim = int(dim)
            emb, proj, hit = cached_umap(cache_dir, f"{feat}_{dim}d", train_f, others_f, n_components=dim, **params)
            cache_hits[f"{feat}_{dim}d"] = hit
            projected = {n: (proj[n], sets[n][1]) for n in sets}
            if dim == 2:
                agreement[feat] = {n: class_agreement(emb, mnist_y, *projected[n]) for n in projected}
                rel(plot_umap_2d(emb, mnist_y, out / f"umap_{feat}_2d.png", f"UMAP of {len(mnist_y)} MNIST digits ({desc})"))
                rel(plot_domain_gap(emb, mnist_y, projected, layout_present, out / f"umap_{feat}_gap.png",
                                    f"Other sets projected into the MNIST embedding ({desc})"))
            elif dim == 3:
                title = f"3D UMAP: sets projected into MNIST ({desc})"
                rel(plot_umap_3d(emb, mnist_y, projected, layout_present, out / f"umap_{feat}_3d.png", title))
                if cfg.interactive_3d:
                    with_ids = {n: (proj[n], sets[n][1], sets[n][2]) for n in sets}
                    p, engine = write_umap_3d_html(emb, mnist_y, mnist_ids, with_ids, out / f"umap_{feat}_3d.html",
                                                   title, engine=cfg.html_engine)
                    rel(p)
                    files[f"umap_{feat}_3d_engine"] = engine
        timings[f"umap_{feat}"] = time.perf_counter() - t

    timings["total"] = time.perf_counter() - t_start
    manifest = {
        "out_dir": str(out), "seed": int(cfg.seed), "mnist_split": split, "n_mnist": len(mnist_y),
        "sets": {n: {"n": len(v[1]), "group": group_of[n]} for n, v in sets.items()}, "missing": missing,
        "layout": layout, "features": features, "model": model_info, "files": files,
        "class_agreement_2d": agreement, "cache_hits": cache_hits, "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "umap": params, "pca_dims": u.get("pca_dims"), "ink_level": level,
    }
    write_atomic(out / "eda.json", json.dumps(manifest, indent=2))
    log.info("EDA written to %s in %.1f s", out, timings["total"])
    return manifest


def _resolve_model(cfg) -> dict | None:
    mp = cfg.get("model_path")
    if mp is None:
        return None
    if str(mp) == "auto":
        found = find_network_run([paths.PROJECT_ROOT / r for r in cfg.model_search])
        if found is None:
            return None
        mp = found
    p = Path(mp).expanduser()
    if not p.exists():
        raise UserError(f"model_path {p} does not exist; give a network run directory or model.ckpt (or null to skip).")
    from mnist_gen.models.predictors import load_predictor

    if p.is_dir():  # penultimate features need the network's layers: its weights, not the ONNX graph
        p = next((p / n for n in ("model.safetensors", "model.ckpt") if (p / n).is_file()), p)
    pred = load_predictor(p)
    if not hasattr(pred, "net"):
        raise UserError(f"model_path {p} is not a network (model.safetensors or .ckpt); penultimate features need one.")
    return {"path": str(p), "name": pred.name}
