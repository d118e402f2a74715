"""What ``predict.py`` does: photos in, digit + probabilities out, one answer per file and model.

    python predict.py photo.jpg                                   # the bundled default model
    python predict.py photo.jpg more_photos/ --model study/cnn_32  # a bundled model by name
    python predict.py photos/ --model multirun/<sweep> --json > predictions.jsonl

Why argparse and not Hydra here: the inputs are a list of files and folders, which the shell
expands (``photos/*.jpg``) into positional arguments; Hydra's override grammar would need
``inputs=[a.jpg,b.jpg]`` with quoting, and would create a log directory per call. The few
knobs are flags; the preprocessing presets are the packaged ``configs/preprocess/``.

Per file: read and preprocess once (``mnist_gen.preprocess``; files spread over ``--jobs``
processes), save the 28×28 views under ``--out``, then every selected model answers on the
batch of digits. A file that cannot be read, is not an image, or holds no digit gets
``prediction: null`` and an ``error`` sentence naming it; the run goes on and lists such files
at the end. Exit status: 0 when the run finished (bad files included), 2 for user errors (no
model, no inputs, bad flag, unusable ``--out``). The ``--json`` line format is documented in
``README.md, section predict.py`` and is a stable interface.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_gen import paths
from mnist_gen.errors import ImageError, UserError, run_main
from mnist_gen.io import scan_folder, to_json, write_atomic
from mnist_gen.processes import map_in_processes

log = logging.getLogger("predict")

VIEW_ORDER = ("input", "ink", "crop", "digit")
PARALLEL_FROM = 8  # fewer files than this are read in this process: starting workers costs more


@dataclass
class FileResult:
    path: str
    label: int | None
    digit: np.ndarray | None = None
    error: str | None = None


def printable(text: str) -> str:
    """A name for the terminal: control characters (ANSI escapes, newlines) shown escaped, never run."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))


# -- arguments ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="predict.py", description="Predict the digit in photos of handwritten digits.")
    p.add_argument("inputs", nargs="*", help="image files and/or folders (searched recursively)")
    p.add_argument("--model", "-m", action="append", metavar="PATH|NAME",
                   help="model file (.safetensors/.onnx/.ckpt/.skops), run directory, folder of run directories "
                        "(every model in it), or a bundled model (default, study/cnn_32, ...); may be repeated. "
                        "Without it: the bundled default")
    p.add_argument("--out", metavar="DIR", help="where the 28×28 views and predictions.jsonl go "
                                                "(default outputs/predict/<timestamp>)")
    p.add_argument("--preprocess", default="mnist_like", metavar="NAME",
                   help="mnist_like (default) or naive (the study's whole-photo resize)")
    p.add_argument("--json", action="store_true", help="one JSON object per line and file (README.md, section predict.py)")
    p.add_argument("--no-views", action="store_true", help="do not save the 28×28 views")
    p.add_argument("--jobs", "-j", type=int, default=0, metavar="N",
                   help="processes reading the files (default: one per CPU core)")
    return p


# -- inputs ---------------------------------------------------------------------------------------


def collect_inputs(args: list[str]) -> tuple[list[Path], list[FileResult]]:
    """Image files to read, and entries refused up front, each with a sentence (missing files,
    other file types, unreadable subfolders, dangling links, pipes: nothing vanishes silently)."""
    from mnist_gen.evalsets.photos import label_from_path

    files: list[Path] = []
    refused: list[FileResult] = []
    for arg in args:
        p = Path(arg).expanduser()
        if p.is_dir():
            found, problems = scan_folder(p)
            files += found
            refused += [FileResult(str(f), label_from_path(f), error=why) for f, why in problems]
        elif p.is_file():
            files.append(p)  # named explicitly: try it whatever its extension
        elif p.is_symlink():
            refused.append(FileResult(str(p), label_from_path(p), error=f"{p} is a link to nothing (its target is missing)."))
        elif p.exists():
            refused.append(FileResult(str(p), label_from_path(p),
                                      error=f"{p} is not a regular file (a pipe, socket or device); it was not read."))
        else:
            refused.append(FileResult(str(p), label_from_path(p), error=f"File {p} does not exist; check the path."))
    return files, refused


def check_out_dir(raw: str | None) -> Path:
    """The output folder, creatable and writable, or one sentence saying why not (before any work)."""
    out = paths.check_output_path(raw, "--out") if raw else (
        paths.PROJECT_ROOT / "outputs" / "predict" / time.strftime("%Y-%m-%d_%H-%M-%S"))
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file, not a folder; give a folder for the views and predictions.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out} cannot be created ({e.strerror or e}); give a folder you can write to.") from e
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"--out {out} is not writable; give a folder you can write to.")
    return out


# -- per file -------------------------------------------------------------------------------------


def _safe_stem(path: Path) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)[:60] or "image"


def preprocess_file(job: tuple) -> FileResult:
    """One file through ``to_mnist``, its views saved; every failure becomes its ``error`` sentence."""
    path, index, cfg, views_dir = job
    from mnist_gen.evalsets.photos import label_from_path
    from mnist_gen.preprocess import to_mnist

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
        res.error = f"{path}: {out.reason or 'No digit found.'}"
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


def preprocess_all(files: list[Path], cfg, views_dir: Path | None, jobs: int) -> list[FileResult]:
    """Every file, in order; spread over ``jobs`` processes when there are enough of them."""
    work = [(f, i, cfg, views_dir) for i, f in enumerate(files)]
    return map_in_processes(preprocess_file, work, jobs, serial_below=PARALLEL_FROM, chunksize=4)


def records(results: list[FileResult], models: list) -> list[dict]:
    """One record per (file, model): the ``--json`` line format (never NaN: a model that gives no
    finite probabilities for a digit answers with an error for it)."""
    ok = [i for i, r in enumerate(results) if r.digit is not None]
    batch = np.stack([results[i].digit for i in ok]) if ok else np.zeros((0, 28, 28), np.uint8)
    out = []
    for name, model in models:
        proba = np.asarray(model.predict_proba(batch), dtype=np.float64) if ok else np.zeros((0, 10))
        row_of = {i: proba[k] for k, i in enumerate(ok)}
        for i, r in enumerate(results):
            p, error = row_of.get(i), r.error
            if p is not None and not np.isfinite(p).all():
                p, error = None, f"Model {name} gave no finite probabilities for {r.path} (a broken model?)."
            out.append({
                "path": r.path,
                "label": r.label,
                "model": str(name),
                "prediction": None if p is None else int(np.argmax(p)),
                "probabilities": None if p is None else [round(float(v), 6) for v in p],
                "error": error,
            })
    return out


# -- output ---------------------------------------------------------------------------------------


def print_human(recs: list[dict], results: list[FileResult], models: list) -> None:
    by_file: dict[str, list[dict]] = {}
    for rec in recs:
        by_file.setdefault(rec["path"], []).append(rec)
    width = max((len(printable(name)) for name, _ in models), default=8)
    for r in results:
        print(printable(r.path) + ("" if r.label is None else f"  (label {r.label})"))
        for rec in by_file.get(r.path, []):
            model = printable(rec["model"])
            if rec["prediction"] is None:
                print(f"  {model:<{width}}  –  {printable(rec['error'])}")
                continue
            probs = " ".join(f"{d}:{p:.2f}" for d, p in enumerate(rec["probabilities"]))
            mark = "" if rec["label"] is None else ("  ✓" if rec["prediction"] == rec["label"] else "  ✗")
            print(f"  {model:<{width}}  {rec['prediction']}  p={max(rec['probabilities']):.3f}{mark}   [{probs}]")


def run(argv: list[str] | None = None) -> int:
    from mnist_gen.models.predictors import load_models
    from mnist_gen.preprocess import as_config
    from mnist_gen.settings import compose_group

    args = build_parser().parse_args(argv)
    if not args.inputs:
        raise UserError("No input images given; pass image files or folders, e.g. python predict.py photo.jpg.")
    if args.jobs < 0:
        raise UserError(f"--jobs must be 0 (one per core) or a positive number, got {args.jobs}.")
    cfg = as_config(compose_group("preprocess", args.preprocess))
    files, refused = collect_inputs(args.inputs)
    if not files and not refused:
        raise UserError(f"No files found in {', '.join(map(printable, args.inputs))}; give image files or folders "
                        "holding images.")
    out_dir = check_out_dir(args.out)
    models = load_models(args.model or ["default"])
    views_dir = None if args.no_views else out_dir / "views"

    results = preprocess_all(files, cfg, views_dir, args.jobs) + refused
    recs = records(results, models)
    lines = "".join(to_json(r, indent=None) + "\n" for r in recs)
    if args.json:
        sys.stdout.write(lines)
    else:
        print_human(recs, results, models)
    write_atomic(out_dir / "predictions.jsonl", lines)

    bad = [r for r in results if r.error is not None]
    summary = sys.stderr if args.json else sys.stdout
    print(f"{len(results)} file(s), {len(results) - len(bad)} with a digit, {len(bad)} without a prediction; "
          f"{len(models)} model(s). Written: {printable(out_dir)}", file=summary)
    if bad:
        print("Files without a prediction:", file=summary)
        for r in bad:  # most sentences name their file already ("<file>: No digit found ...")
            named = r.error if r.path in r.error else f"{r.path}: {r.error}"
            print(f"  {printable(named)}", file=summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(run, argv)
