"""One self-contained HTML report from a run directory or a directory of runs.

    python -m mnist_gen.cli.report multirun/paper_cpu [--out report.html] [--eda outputs/eda]

Sections (element ids, in order): ``#study-table`` (mean ± std over seeds, as evaluate.py
writes it), ``#reports`` (classification report per run and evaluation set), ``#curves``,
``#confusion``, ``#galleries`` (misclassified digits) and ``#umap`` (the EDA figures of
``python -m mnist_gen.cli.eda``). Every image is embedded as a base64 data URI and there is no
external script or stylesheet, so the file can be mailed or archived alone. The EDA's
interactive 3D views are embedded too (as sandboxed iframes) when small enough, else linked.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from datetime import datetime
from pathlib import Path

from mnist_gen import paths
from mnist_gen.errors import UserError
from mnist_gen.evaluation import aggregate
from mnist_gen.io import write_atomic

log = logging.getLogger(__name__)

SECTIONS = [
    ("study-table", "Study table"),
    ("reports", "Classification reports"),
    ("curves", "Training curves"),
    ("confusion", "Confusion matrices"),
    ("galleries", "Misclassification galleries"),
    ("umap", "Data analysis: mean digits, statistics, UMAP"),
]
EDA_FIGURES = [  # (file stem, caption) in the order they read best
    ("mean_digits", "Mean image of each digit, MNIST and each set after preprocessing"),
    ("set_stats", "Per-set statistics that explain the gap"),
    ("umap_pixels_2d", "UMAP of MNIST, raw pixels"),
    ("umap_pixels_gap", "Other sets projected into the MNIST embedding, raw pixels"),
    ("umap_pixels_3d", "3D UMAP, raw pixels"),
    ("umap_penultimate_2d", "UMAP of MNIST, a trained network's penultimate features"),
    ("umap_penultimate_gap", "Other sets projected into the MNIST embedding, penultimate features"),
    ("umap_penultimate_3d", "3D UMAP, penultimate features"),
]
MAX_EMBED_HTML = 8 * 1024 * 1024  # interactive views above this are linked, not embedded

CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1300px;padding:0 16px 40px;color:#222}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;padding:6px 0;z-index:2}
nav a{margin-right:14px}
h2{border-bottom:2px solid #1f77b4;padding-top:10px}
table{border-collapse:collapse;margin:6px 0 14px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th:first-child,td:first-child{text-align:left}
thead th{background:#eef3f8}
figure{display:inline-block;margin:6px 10px 14px 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:13px;color:#555}
.muted{color:#777}
iframe{width:100%;height:720px;border:1px solid #ccc}
details{margin:4px 0}
"""


# --------------------------------------------------------------------------- helpers


def img_tag(path: Path, alt: str, max_width: int | None = None) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    style = f' style="max-width:{max_width}px"' if max_width else ""
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"{style}>'


def figure(path: Path, caption: str, max_width: int | None = None) -> str:
    return f"<figure>{img_tag(path, caption, max_width)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def html_table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def report_table(report: dict) -> str:
    """A metrics.classification_report dict as an HTML table (per class, then the averages)."""
    rows = []
    for key, val in report.items():
        if isinstance(val, dict) and "precision" in val:
            rows.append([key, f"{val['precision']:.4f}", f"{val['recall']:.4f}", f"{val['f1-score']:.4f}",
                         str(int(val["support"]))])
    if "accuracy" in report:
        total = sum(int(v["support"]) for k, v in report.items() if isinstance(v, dict) and k.isdigit())
        rows.append(["accuracy", "", "", f"{report['accuracy']:.4f}", str(total)])
    return html_table(["class", "precision", "recall", "f1-score", "support"], rows, "report")


def _run_label(run: dict, root: Path) -> str:
    d = Path(run["_dir"])
    try:
        rel = d.relative_to(root)
    except ValueError:
        rel = d
    rel_s = "." if str(rel) == "." else str(rel)
    return f"{run['model']} · seed {run['seed']} · {rel_s}"


# --------------------------------------------------------------------------- sections


def study_table_section(root: Path, runs: list[dict]) -> str:
    """From study_table.json when the directory has one (aggregate dir), else aggregated now."""
    source = root / "study_table.json"
    rows = None
    if source.is_file():
        try:
            rows = json.loads(source.read_text())
            note = f"From {source.name}."
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable %s (%s); aggregating the runs instead", source, e)
    if rows is None:
        if not runs:
            return '<p class="muted">No results.json found.</p>'
        rows = aggregate.aggregate(runs)
        note = f"Aggregated from {len(runs)} results.json file(s)."
    try:
        header, body = aggregate.table_rows(rows)
    except (KeyError, TypeError) as e:
        return f'<p class="muted">study_table.json has an unexpected layout ({html.escape(str(e))}).</p>'
    return f"<p class=\"muted\">{html.escape(note)} Accuracy in %, mean ± std over seeds.</p>" + html_table(header, body, "study")


def reports_section(root: Path, runs: list[dict]) -> str:
    parts = []
    for run in runs:
        sets = run.get("eval_sets") or {}
        if not sets:
            continue
        summary = [[name, f"{s.get('correct', '–')}/{s.get('n', '–')}",
                    "–" if s.get("accuracy") is None else f"{100 * s['accuracy']:.2f}",
                    "–" if not s.get("ci95") else f"{100 * s['ci95'][0]:.1f}–{100 * s['ci95'][1]:.1f}"]
                   for name, s in sets.items()]
        parts.append(f"<h3>{html.escape(_run_label(run, root))}</h3>")
        parts.append(html_table(["set", "correct", "accuracy %", "95 % CI"], summary, "summary"))
        for name, s in sets.items():
            if isinstance(s.get("report"), dict):
                parts.append(f"<details><summary>{html.escape(name)}: per-class report</summary>"
                             f"{report_table(s['report'])}</details>")
    return "".join(parts) or '<p class="muted">No evaluation results.</p>'


def _figures_per_run(root: Path, run_dirs: list[Path], pattern: str, caption) -> str:
    parts = []
    for d in run_dirs:
        files = sorted(d.glob(pattern))
        if not files:
            continue
        rel = "." if d == root else str(d.relative_to(root)) if d.is_relative_to(root) else str(d)
        parts.append(f"<h3>{html.escape(rel)}</h3>")
        parts.extend(figure(f, caption(f), 640) for f in files)
    return "".join(parts)


def eda_section(eda_dir: Path | None, out_file: Path) -> str:
    if eda_dir is None:
        return ('<p class="muted">No EDA output found; run <code>python -m mnist_gen.reporting.eda</code> '
                "and pass its directory with --eda.</p>")
    parts = [f'<p class="muted">From {html.escape(str(eda_dir))}.</p>']
    manifest = {}
    try:
        manifest = json.loads((eda_dir / "eda.json").read_text())
    except (OSError, ValueError):
        pass
    if manifest.get("missing"):
        parts.append("<p>Sets not available: " + html.escape(", ".join(manifest["missing"])) + ".</p>")
    stats_md = eda_dir / "set_stats.json"
    if stats_md.is_file():
        try:
            st = json.loads(stats_md.read_text())
            keys = list(next(iter(st["summary"].values())).keys())
            rows = [[n, str(st["sizes"].get(n, ""))] + [
                "–" if s[k]["median"] is None else f"{s[k]['median']:.2f}" for k in keys] for n, s in st["summary"].items()]
            parts.append("<h3>Per-set statistics (medians)</h3>" + html_table(["set", "n"] + keys, rows, "stats"))
        except (OSError, ValueError, KeyError, StopIteration):
            pass
    if manifest.get("class_agreement_2d"):
        feats = list(manifest["class_agreement_2d"])
        names = sorted({n for f in feats for n in manifest["class_agreement_2d"][f]})
        rows = [[n] + ["–" if manifest["class_agreement_2d"][f].get(n) is None
                       else f"{100 * manifest['class_agreement_2d'][f][n]:.0f}" for f in feats] for n in names]
        parts.append("<h3>Projected digits landing in their own MNIST class (%, 2D UMAP, 10 nearest MNIST points)</h3>"
                     + html_table(["set"] + feats, rows, "agreement"))
    seen = set()
    for stem, caption in EDA_FIGURES:
        f = eda_dir / f"{stem}.png"
        if f.is_file():
            parts.append(figure(f, caption))
            seen.add(f.name)
    for f in sorted(eda_dir.glob("*.png")):  # anything else the EDA wrote
        if f.name not in seen:
            parts.append(figure(f, f.stem))
    for h in sorted(eda_dir.glob("umap_*_3d.html")):
        parts.append(f"<h3>Interactive 3D: {html.escape(h.stem)}</h3>")
        if h.stat().st_size <= MAX_EMBED_HTML:
            data = base64.b64encode(h.read_bytes()).decode("ascii")
            parts.append(f'<iframe title="{html.escape(h.stem)}" sandbox="allow-scripts" '
                         f'src="data:text/html;base64,{data}"></iframe>')
        else:
            link = Path(_relpath(h, out_file.parent))
            parts.append(f'<p><a href="{html.escape(str(link))}">{html.escape(h.name)}</a> (opens the viewer)</p>')
    return "".join(parts)


def _relpath(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(target.resolve(), start.resolve())


def find_eda_dir(root: Path) -> Path | None:
    """``root`` itself, ``root/eda``, anything below root holding eda.json, else ``outputs/eda``."""
    for cand in (root, root / "eda"):
        if (cand / "eda.json").is_file():
            return cand
    below = sorted(root.rglob("eda.json"))
    if below:
        return below[0].parent
    default = paths.PROJECT_ROOT / "outputs" / "eda"
    return default if (default / "eda.json").is_file() else None


# --------------------------------------------------------------------------- build


def build_report(root: str | Path, out: str | Path | None = None, eda_dir: str | Path | None = None,
                 title: str | None = None) -> Path:
    """Write the report for a run directory or a directory of runs; returns the HTML path."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"{root} is not a directory; give a run directory or a directory of runs.")
    runs = aggregate.load_runs(root)
    run_dirs = sorted({Path(r["_dir"]) for r in runs})
    has_table = (root / "study_table.json").is_file()
    if not runs and not has_table:
        raise UserError(f"No results.json or study_table.json under {root}; train first (python train.py ...).")
    out = Path(out).expanduser() if out else root / "report.html"
    eda = Path(eda_dir).expanduser().resolve() if eda_dir else find_eda_dir(root)
    if eda is not None and not eda.is_dir():
        raise UserError(f"EDA directory {eda} does not exist; run `python -m mnist_gen.cli.eda` first.")

    order = {m: i for i, m in enumerate(aggregate.MODEL_ORDER)}
    runs.sort(key=lambda r: (order.get(r["model"], 99), r["model"], r.get("seed", 0), r["_dir"]))
    run_dirs = [Path(r["_dir"]) for r in runs]
    log.info("building the report for %d run(s) under %s", len(runs), root)
    bodies = {
        "study-table": study_table_section(root, runs),
        "reports": reports_section(root, runs),
        "curves": _figures_per_run(root, run_dirs, "*_curve.png", lambda f: f.stem.replace("_", " ")),
        "confusion": _figures_per_run(root, run_dirs, "reports/*_confusion.png",
                                      lambda f: f"confusion on {f.stem.removesuffix('_confusion')}"),
        "galleries": _figures_per_run(root, run_dirs, "reports/*_errors.png",
                                      lambda f: f"misclassified on {f.stem.removesuffix('_errors')}"),
        "umap": eda_section(eda, out),
    }
    title = title or f"mnist_gen report: {root.name}"
    nav = "".join(f'<a href="#{sid}">{html.escape(name)}</a>' for sid, name in SECTIONS)
    sections = "".join(
        f'<section id="{sid}"><h2>{html.escape(name)}</h2>'
        f'{bodies[sid] or "<p class=muted>Nothing in this run for this section.</p>"}</section>'
        for sid, name in SECTIONS
    )
    doc = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
           f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
           f'<p class="muted">{html.escape(str(root))} · {len(runs)} run(s) · generated '
           f"{datetime.now():%Y-%m-%d %H:%M}</p><nav>{nav}</nav>{sections}</body></html>")
    log.info("report sections done; writing %s", out)
    return write_atomic(out, doc)
