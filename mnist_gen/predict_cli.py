"""What ``predict.py`` does: photos in, digit + probabilities out, one answer per file and model.

    python predict.py photo.jpg more_photos/ --model outputs/train/cnn_32/seed0/<time>
    python predict.py photos/ --model multirun/<sweep> --json > predictions.jsonl

Why argparse and not Hydra here: the inputs are a list of files and folders, which the shell
expands (``photos/*.jpg``) into positional arguments; Hydra's override grammar would need
``inputs=[a.jpg,b.jpg]`` with quoting, and would create a log directory per call. The few
knobs are flags; the preprocessing itself still comes from ``configs/preprocess/<name>.yaml``,
so every pipeline setting stays in ``configs/``.

Per file: read and preprocess once (``mnist_gen.preprocess``), save the 28×28 views under
``--out``, then every selected model answers on the batch of digits. A file that cannot be
read, is not an image, or holds no digit gets ``prediction: null`` and an ``error`` sentence;
the run goes on and lists such files at the end. Exit status: 0 when the run finished (bad
files included), 2 for user errors (no model, no inputs, bad flag). The ``--json`` line format
is documented in ``README.md, section predict.py`` and is a stable interface.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_gen import paths
from mnist_gen.errors import ImageError, UserError, run_main

log = logging.getLogger("predict")

#: Files with these extensions are read as images when found in a folder; others are reported.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm")
VIEW_ORDER = ("input", "ink", "crop", "digit")


@dataclass
class FileResult:
    path: str
    label: int | None
    digit: np.ndarray | None = None
    error: str | None = None


# -- arguments ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="predict.py",
        description="Predict the digit in photos with one model, a run directory, or every run under a folder.",
    )
    p.add_argument("inputs", nargs="*", help="image files and/or folders (searched recursively)")
    p.add_argument("--model", "-m", action="append", metavar="PATH",
                   help="model file (.ckpt/.pt2/.skops), run directory, or folder of run directories "
                        "(every model in it); may be repeated")
    p.add_argument("--out", metavar="DIR", help="where the 28×28 views and predictions.jsonl go "
                                                "(default outputs/predict/<timestamp>)")
    p.add_argument("--preprocess", default="mnist_like", metavar="NAME",
                   help="mnist_like (default, configs/preprocess/mnist_like.yaml) or naive (the study's resize)")
    p.add_argument("--json", action="store_true", help="one JSON object per line and file (README.md, section predict.py)")
    p.add_argument("--no-views", action="store_true", help="do not save the 28×28 views")
    p.add_argument("--trust-export", action="store_true",
                   help="also load .pt2 exports (torch.export archives can run code when loaded: only your own)")
    return p


def preprocess_config(name: str) -> dict:
    """Settings for ``to_mnist``: ``configs/preprocess/<name>.yaml``, or the study's naive resize."""
    yaml = paths.PROJECT_ROOT / "configs" / "preprocess" / f"{name}.yaml"
    if re.fullmatch(r"[A-Za-z0-9_-]+", name) and yaml.is_file():
        from omegaconf import OmegaConf

        return dict(OmegaConf.to_container(OmegaConf.load(yaml), resolve=True))
    if name == "naive":
        return {"method": "naive", "exif_transpose": False}  # as the study did it (no EXIF rotation)
    known = sorted({"naive", *(f.stem for f in yaml.parent.glob("*.yaml"))})
    raise UserError(f"--preprocess {name!r} is unknown; choose one of {', '.join(known)}.")


# -- inputs ---------------------------------------------------------------------------------------


def collect_inputs(args: list[str]) -> tuple[list[Path], list[FileResult]]:
    """Image files to read, and files refused up front (missing, or not an image by extension)."""
    from mnist_gen.data.handwritten import label_from_path

    files: list[Path] = []
    refused: list[FileResult] = []
    for arg in args:
        p = Path(arg).expanduser()
        if p.is_dir():
            for f in sorted(x for x in p.rglob("*") if x.is_file() and not x.name.startswith(".")):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    files.append(f)
                else:
                    refused.append(FileResult(str(f), label_from_path(f), error=(
                        f"File {f} is not an image (extension '{f.suffix or 'none'}'); "
                        f"accepted: {', '.join(IMAGE_SUFFIXES)}.")))
        elif p.is_file():
            files.append(p)  # named explicitly: try it whatever its extension
        else:
            refused.append(FileResult(str(p), label_from_path(p), error=f"File {p} does not exist; check the path."))
    return files, refused


# -- models ---------------------------------------------------------------------------------------


def load_models(specs: list[str] | None, trust_export: bool = False) -> list[tuple[str, object]]:
    """``(name, predictor)`` for every ``--model``; a folder of runs gives every model in it."""
    from mnist_gen.models.predictors import find_run_dirs, load_predictor, model_file

    if not specs:
        raise UserError("No model given; pass --model <model file, run directory or folder of runs> "
                        "(e.g. --model outputs/train/mlp_64_16/seed0/<time>).")
    loaded: list[tuple[object, str]] = []  # (predictor, where it came from, relative to its --model)
    for spec in specs:
        root = Path(spec).expanduser()
        if not root.exists():
            raise UserError(f"--model {spec} does not exist; give a model file, a run directory or a folder of runs.")
        if root.is_file() or model_file(root) is not None:
            loaded.append((load_predictor(root, trust_export=trust_export), root.name))
            continue
        runs = [d for d in find_run_dirs(root) if model_file(d) is not None]
        if not runs:
            raise UserError(f"No model file (model.ckpt, model.pt2, model.skops) found under {spec}; train one first.")
        n_before = len(loaded)
        for run in runs:
            try:
                loaded.append((load_predictor(run, trust_export=trust_export), str(run.relative_to(root))))
            except UserError as e:  # one broken run must not hide the others
                log.warning("skipping %s: %s", run, e)
        if len(loaded) == n_before:
            raise UserError(f"None of the models under {spec} could be loaded; see the warnings above.")
    # ``model`` in the output: the model's name, made unique with its run path when names repeat.
    names = [p.name for p, _ in loaded]
    return [(p.name if names.count(p.name) == 1 else f"{p.name}@{where}", p) for p, where in loaded]


# -- per file -------------------------------------------------------------------------------------


def _safe_stem(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)[:60] or "image"


def preprocess_file(path: Path, index: int, cfg: dict, views_dir: Path | None) -> FileResult:
    from mnist_gen.data.handwritten import label_from_path
    from mnist_gen.preprocess import to_mnist
    from mnist_gen.report import write_atomic

    res = FileResult(str(path), label_from_path(path))
    try:
        out = to_mnist(path, cfg)
    except ImageError as e:
        res.error = str(e)
        return res
    except MemoryError:
        res.error = f"Image {path} is too large to process in memory; downscale it first."
        return res
    except Exception as e:  # noqa: BLE001 - one odd file must never sink the run
        res.error = f"Preprocessing {path} failed unexpectedly ({type(e).__name__}: {str(e)[:200]})."
        return res
    res.digit = out.digit
    if out.digit is None:
        res.error = out.reason or f"No digit found in {path}."
    if views_dir is not None:
        import io

        from PIL import Image

        views = dict(out.views)
        if out.digit is not None:
            views["digit"] = out.digit
        for name in VIEW_ORDER:
            if name in views and views[name] is not None and np.asarray(views[name]).size:
                buf = io.BytesIO()
                Image.fromarray(np.asarray(views[name], dtype=np.uint8)).save(buf, format="PNG")
                write_atomic(views_dir / f"{index:05d}_{_safe_stem(path)}_{name}.png", buf.getvalue())
    return res


def records(results: list[FileResult], models: list) -> list[dict]:
    """One record per (file, model): the ``--json`` line format."""
    ok = [i for i, r in enumerate(results) if r.digit is not None]
    batch = np.stack([results[i].digit for i in ok]) if ok else np.zeros((0, 28, 28), np.uint8)
    out = []
    for name, model in models:
        proba = np.asarray(model.predict_proba(batch), dtype=np.float64) if ok else np.zeros((0, 10))
        row_of = {i: proba[k] for k, i in enumerate(ok)}
        for i, r in enumerate(results):
            p = row_of.get(i)
            out.append({
                "path": r.path,
                "label": r.label,
                "model": name,
                "prediction": None if p is None else int(np.argmax(p)),
                "probabilities": None if p is None else [round(float(v), 6) for v in p],
                "error": r.error,
            })
    return out


# -- output ---------------------------------------------------------------------------------------


def print_human(recs: list[dict], results: list[FileResult], models: list) -> None:
    by_file: dict[str, list[dict]] = {}
    for rec in recs:
        by_file.setdefault(rec["path"], []).append(rec)
    width = max((len(name) for name, _ in models), default=8)
    for r in results:
        head = r.path + ("" if r.label is None else f"  (label {r.label})")
        print(head)
        for rec in by_file.get(r.path, []):
            if rec["prediction"] is None:
                print(f"  {rec['model']:<{width}}  –  {rec['error']}")
                continue
            probs = " ".join(f"{d}:{p:.2f}" for d, p in enumerate(rec["probabilities"]))
            mark = "" if rec["label"] is None else ("  ✓" if rec["prediction"] == rec["label"] else "  ✗")
            print(f"  {rec['model']:<{width}}  {rec['prediction']}  p={max(rec['probabilities']):.3f}{mark}   [{probs}]")


def run(argv: list[str] | None = None) -> int:
    from mnist_gen.report import write_atomic
    from mnist_gen.safe_paths import check_output_path

    args = build_parser().parse_args(argv)
    if not args.inputs:
        raise UserError("No input images given; pass image files or folders, e.g. python predict.py photo.jpg --model <run dir>.")
    cfg = preprocess_config(args.preprocess)
    from mnist_gen.preprocess import as_config

    cfg = as_config(cfg)  # unknown keys in a preprocess yaml → one sentence, before any work
    files, refused = collect_inputs(args.inputs)
    if not files and not refused:
        raise UserError(f"No files found in {', '.join(args.inputs)}; give image files or folders holding images.")
    models = load_models(args.model, trust_export=args.trust_export)
    out_dir = check_output_path(args.out, "--out") if args.out else (
        paths.PROJECT_ROOT / "outputs" / "predict" / time.strftime("%Y-%m-%d_%H-%M-%S"))
    views_dir = None if args.no_views else out_dir / "views"

    results = [preprocess_file(f, i, cfg, views_dir) for i, f in enumerate(files)] + refused
    recs = records(results, models)
    lines = [json.dumps(r, ensure_ascii=False) for r in recs]
    if args.json:
        sys.stdout.write("".join(line + "\n" for line in lines))
    else:
        print_human(recs, results, models)
    write_atomic(out_dir / "predictions.jsonl", "".join(line + "\n" for line in lines))

    bad = [r for r in results if r.error is not None]
    summary = sys.stderr if args.json else sys.stdout
    n_ok = len(results) - len(bad)
    print(f"{len(results)} file(s), {n_ok} with a digit, {len(bad)} without a prediction; "
          f"{len(models)} model(s). Written: {out_dir}", file=summary)
    if bad:
        print("Files without a prediction:", file=summary)
        for r in bad:
            print(f"  {r.path}: {r.error}", file=summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(run, argv)
