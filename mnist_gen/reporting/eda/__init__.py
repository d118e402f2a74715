"""Exploratory data analysis: why MNIST models fail on other handwriting (``python -m mnist_gen.cli.eda``).

``stats`` (per-set statistics) -> ``plots`` (PNG figures) and ``embed`` (UMAP, cached) ->
``viewer`` (interactive 3D HTML); ``run`` ties them to ``configs/eda.yaml``.
"""

from mnist_gen.reporting.eda.constants import STAT_LABELS
from mnist_gen.reporting.eda.embed import cached_umap, penultimate_features, pixel_features, umap_embed
from mnist_gen.reporting.eda.plots import (
    plot_domain_gap,
    plot_mean_digits,
    plot_set_stats,
    plot_umap_2d,
    plot_umap_3d,
    stats_markdown,
)
from mnist_gen.reporting.eda.run import run, subsample
from mnist_gen.reporting.eda.stats import (
    background_level,
    bbox_size,
    center_of_mass_offset,
    class_agreement,
    ink_coverage,
    mean_digits,
    set_statistics,
    stroke_width,
    summarize,
)
from mnist_gen.reporting.eda.viewer import write_umap_3d_html

__all__ = ["STAT_LABELS", "cached_umap", "umap_embed", "background_level", "bbox_size", "center_of_mass_offset", "class_agreement", "ink_coverage", "mean_digits",
           "penultimate_features", "pixel_features", "plot_domain_gap", "plot_mean_digits", "plot_set_stats",
           "plot_umap_2d", "plot_umap_3d", "run", "set_statistics", "stats_markdown", "stroke_width", "subsample",
           "summarize", "write_umap_3d_html"]
