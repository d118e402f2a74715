"""Tables beyond the study's: accuracy per framing (model × variant), and the styles MNIST lacks.

Both read what ``evaluate.py`` aggregates (``evaluation.aggregate``) or the runs' own
``results.json``; nothing here scores anything.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import numpy as np

from mnist_gen.evalsets.framing import FRAMING_SETS

#: Framing sources in table order, with the sets that are "as stored" for each.
FRAMING_SOURCES = {"photos": "seed_photos", "usps": "usps", "uci": "uci_digits", "mnist": None}
#: The confusions the continental styles cause (true -> predicted), and the digits they concern.
STYLE_CONFUSIONS = [(1, 7), (7, 1), (7, 3), (9, 3), (9, 4), (9, 7), (4, 9)]
STYLE_DIGITS = (1, 4, 7, 9)


def _cell(stat: dict | None, items: int | None) -> str:
    if not stat:
        return "–"
    mean = 100 * stat["mean"]
    spread = f" ± {100 * stat['std']:.1f}" if stat.get("n", 1) > 1 else ""
    if items is not None and items <= 100:  # small sets read better as counts
        return f"{stat['mean'] * items:.3g}/{items}{spread and ' ± ' + format(stat['std'] * items, '.2g')}"
    return f"{mean:.1f}{spread}"


def framing_sets(names: Iterable[str], source: str) -> list[str]:
    """The sets of one framing source present in ``names``, as stored first, each before its negative."""
    names = set(names)
    base = FRAMING_SOURCES[source]
    found = sorted(n for n in names & FRAMING_SETS if n.startswith(f"{source}_"))
    out = [base] if base and base in names else []
    return out + sorted(found, key=lambda n: (n.removesuffix("_inv"), n.endswith("_inv")))


def framing_table(rows: list[dict], sources=tuple(FRAMING_SOURCES)) -> str:
    """Markdown: one line per framing set, one column per model (mean ± std over its seeds)."""
    rows = [r for r in rows if FRAMING_SETS & set(r["eval_sets"])]
    if not rows:
        return ""
    header = "| set | " + " | ".join(f"{r['model']} ({r['recipe']}, {len(r['seeds'])} seed{'s' * (len(r['seeds']) > 1)})"
                                      for r in rows) + " |"
    lines = [header, "|---|" + "---|" * len(rows)]
    all_sets = {s for r in rows for s in r["eval_sets"]}
    for source in sources:
        for name in framing_sets(all_sets, source):
            cells = [_cell(r["eval_sets"].get(name), (r["eval_sets"].get(name) or {}).get("n_items")) for r in rows]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _read_by(rows: list[dict]) -> str:
    """A line under the summary naming the pipeline versions that read the files (none before they were recorded)."""
    versions = sorted({v for r in rows for v in r.get("pipeline_versions") or []})
    if not versions:
        return ""
    return f"\nFiles read by pipeline version{'s' * (len(versions) > 1)} {', '.join(map(str, versions))}.\n"


def framing_summary(rows: list[dict]) -> str:
    """Markdown: one line per model and recipe (means over seeds): MNIST test, each real source as
    files and as the reference arrays, and the worst-best over its rendered framings."""
    rows = [r for r in rows if FRAMING_SETS & set(r["eval_sets"])]
    if not rows:
        return ""

    def mean(r, name, items=False):
        s = r["eval_sets"].get(name)
        if not s:
            return "–"
        return f"{s['mean'] * s['n_items']:.3g}" if items else f"{100 * s['mean']:.2f}"

    def spread(r, source, items=False):
        stats = [r["eval_sets"][n] for n in framing_sets(r["eval_sets"], source) if n != FRAMING_SOURCES[source]]
        if not stats:
            return "–"
        lo, hi = min(s["mean"] for s in stats), max(s["mean"] for s in stats)
        if items:
            k = stats[0]["n_items"]
            return f"{lo * k:.3g}–{hi * k:.3g}/{k}"
        return f"{100 * lo:.1f}–{100 * hi:.1f}"

    n_var = {src: len({n for r in rows for n in framing_sets(r["eval_sets"], src)} - {FRAMING_SOURCES[src]})
             for src in ("photos", "usps", "uci")}
    head = ["model", "recipe", "seeds", "MNIST test %", "study photos /29", f"photos, {n_var['photos']} framings",
            "USPS files %", "USPS arrays %", f"USPS, {n_var['usps']} framings %", "UCI files %", "UCI arrays %",
            f"UCI, {n_var['uci']} framings %"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - 1)]
    for r in rows:
        cells = [r["model"], r["recipe"], str(len(r["seeds"])), f"{100 * r['test_accuracy']['mean']:.2f}",
                 mean(r, "seed_photos", items=True), spread(r, "photos", items=True),
                 mean(r, "usps"), mean(r, "usps_arrays"), spread(r, "usps"),
                 mean(r, "uci_digits"), mean(r, "uci_digits_arrays"), spread(r, "uci")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + _read_by(rows)


#: Real handwriting the style table sums over (files in every framing; MNIST itself is not).
REAL_SETS = ("seed_photos", "photos_*", "usps", "usps_*", "uci_digits", "uci_*")
#: Not what a user's files go through: the study's whole-image resize and the told-the-crop arrays.
REFERENCE_SUFFIXES = ("_naive", "_arrays")


def _confusion(runs: list[dict], sets: Iterable[str]) -> np.ndarray:
    cm = np.zeros((10, 10), np.int64)
    for r in runs:
        for name, s in r["eval_sets"].items():
            if any(fnmatch.fnmatch(name, p) for p in sets) and not name.endswith(REFERENCE_SUFFIXES):
                m = (s.get("report") or {}).get("confusion_matrix")
                if m is not None and np.shape(m) == (10, 10):
                    cm += np.asarray(m, np.int64)
    return cm


def style_groups(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by model and recipe, and whether the style augmentation was on: before/after."""
    groups: dict[str, list[dict]] = {}
    for r in runs:
        augment = ((r.get("config") or {}).get("augment") or {})
        styles = isinstance(augment, dict) and bool((augment.get("styles") or {}).get("p"))
        label = f"{r['model']} ({r.get('recipe', 'study')}{', styles' if styles else ''})"
        groups.setdefault(label, []).append(r)
    return dict(sorted(groups.items()))


def style_table(groups: dict[str, list[dict]], sets: Iterable[str]) -> str:
    """Markdown: per group of runs (e.g. before / after the style augmentation), recall of 1, 4, 7, 9
    and the style confusions, summed over ``sets`` (patterns) and the group's seeds."""
    sets = list(sets)
    head = ["runs", *[f"recall {d}" for d in STYLE_DIGITS], *[f"{a}→{b}" for a, b in STYLE_CONFUSIONS]]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - 1)]
    for label, runs in groups.items():
        cm = _confusion(runs, sets)
        support = cm.sum(1)
        recall = [f"{100 * cm[d, d] / support[d]:.1f} %" if support[d] else "–" for d in STYLE_DIGITS]
        conf = [str(int(cm[a, b])) for a, b in STYLE_CONFUSIONS]
        lines.append(f"| {label} | " + " | ".join(recall + conf) + " |")
    return "\n".join(lines) + "\n"
