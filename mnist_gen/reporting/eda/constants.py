"""Sizes, colours and labels the EDA figures share."""

SIZE = 28
CLASSES = 10
CLASS_COLORS = [  # matplotlib's tab10, fixed here so the HTML viewers match the PNGs
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]
GROUP_COLORS = {"mnist": "#444444", "mnist_like": "#1f77b4", "naive": "#d95f02"}
STAT_LABELS = {
    "ink_coverage": "ink coverage (% of pixels ≥ ink level)",
    "stroke_width": "stroke width (px, 2 × distance transform on the medial axis)",
    "bbox_height": "bounding-box height (px)",
    "bbox_width": "bounding-box width (px)",
    "com_offset": "centre-of-mass offset from centre (px)",
    "background": "background level (mean of 2-px border, 0–255)",
}
