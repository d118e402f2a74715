"""``python -m mnist_gen.cli.census``: one model's answer on a sample of every framing, to compare pipeline versions.

A change to the photo pipeline is made on the files it is for; a census reads a sample of
everything else the same way, so what the change breaks elsewhere shows before any table is
rebuilt. It renders every ``--every``-th digit of every framing set and check of USPS, UCI,
MNIST and the styled digits (every other sample inverted, so both polarities are read), every
framing of the study's photos (all 29, alternately inverted) and the 29 photos as they are,
exactly as the sets render them, and reads each file through ``to_mnist`` as ``predict.py`` does.

Writes ``census.json`` (each file's label and answer: a digit, or why there is none) under
``outputs/census/<time>/``. With ``--against`` an earlier ``census.json``, it lists every answer
that changed and the right answers before and after. ``--preprocess key=value`` reads with a
setting changed: a change's counterfactual is its setting turned off (``stroke_gap=0``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml

from mnist_gen import paths
from mnist_gen.errors import UserError, run_main
from mnist_gen.io import to_json, write_atomic

NO_DIGIT = "no digit"


def sample_sets(every: int, sources=None, data_dir=None) -> Iterator[tuple[str, int, int, str, np.ndarray, int | None]]:
    """(set name, sample index, label, item id, image, JPEG quality or None) for the census's files."""
    from mnist_gen.evalsets.framing import CHECKS, SOURCES, render_file, row_neighbours, source_items

    for source, (variants, _) in SOURCES.items():
        if sources is not None and source not in sources:
            continue
        sets = [(f"{source}_{v}", v) for v in variants] + [(f"check_{source}_{v}", v) for v in CHECKS.get(source, ())]
        step = 1 if source == "photos" else every  # 29 photos: all of them
        digits = row_neighbours(source_items(source, data_dir)) if any(v == "row" for _, v in sets) else []
        for i, (item_id, label, g, box) in enumerate(source_items(source, data_dir)):
            if i % step:
                continue
            inverted = (i // step) % 2 == 1
            for name, variant in sets:
                img, quality = render_file(i, g, box, variant, inverted, digits)
                yield name + ("_inv" if inverted else ""), i, label, item_id, img, quality


def unreadable(source: str, data_dir=None) -> str | None:
    """Why a source's data cannot be read here (missing USPS file, no photos), or None: a
    source that is not here is left out with one sentence, and the census reads the rest."""
    from mnist_gen.evalsets.framing import source_items

    try:
        next(iter(source_items(source, data_dir)), None)
    except UserError as e:
        return str(e)
    except OSError as e:
        return f"cannot read {e.filename or 'its data'} ({e.strerror or e})."
    return None


def write_files(every: int, folder: Path, sources=None, data_dir=None) -> list[tuple[str, int, Path]]:
    """Render the census's files into ``folder``: [(key "set/file", label, path)], the study's photos first."""
    from mnist_gen.evalsets.framing import write_rendered
    from mnist_gen.evalsets.photos import label_from_path, seed_photo_dir
    from mnist_gen.io import scan_folder

    files = []
    if (sources is None or "photos" in sources) and seed_photo_dir().is_dir():
        photos, _ = scan_folder(seed_photo_dir(), other_files=False)
        files = [(f"seed_photos/{p.relative_to(seed_photo_dir())}", label_from_path(p), p) for p in photos]
        files = [f for f in files if f[1] is not None]
    for name, _, label, item_id, img, quality in sample_sets(every, sources, data_dir):
        out = folder / name / str(label)
        out.mkdir(parents=True, exist_ok=True)
        path = write_rendered(out, item_id, (img, quality))
        files.append((f"{name}/{label}/{path.name}", label, path))
    return files


def read_files(files: list[tuple[str, int, Path]], model: str, preprocess: dict) -> dict[str, list]:
    """{key: [label, answer]}: the answer is the model's digit, or why the pipeline gave none."""
    from mnist_gen.evalsets.base import through_pipeline
    from mnist_gen.models.predictors import load_models

    (_, predictor), *_ = load_models([model])
    read = through_pipeline("census", files, preprocess)
    answers = {key: [label, NO_DIGIT] for key, label, _ in files}
    for key, why in read.skipped:
        answers[key][1] = f"{NO_DIGIT}: {why}"
    if len(read):
        for key, digit in zip(read.ids, predictor.predict_proba(read.images).argmax(1), strict=True):
            answers[key][1] = int(digit)
    return answers


def compare(before: dict[str, list], after: dict[str, list]) -> dict:
    """The answers that changed between two censuses, over the files both read."""
    common = sorted(set(before) & set(after))
    changed = [(k, before[k][0], before[k][1], after[k][1]) for k in common if before[k][1] != after[k][1]]
    right = [sum(d[k][1] == d[k][0] for k in common) for d in (before, after)]
    return {"files": len(common), "right_before": right[0], "right_after": right[1],
            "fixed": sum(new == y for _, y, _, new in changed), "broken": sum(old == y for _, y, old, _ in changed),
            "changed": [{"file": k, "label": y, "before": old, "after": new} for k, y, old, new in changed]}


def read_census(path: Path) -> dict[str, list]:
    """The answers of an earlier census.json."""
    try:
        return json.loads(path.read_text())["answers"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"--against {path} is not a census.json this tool wrote ({type(e).__name__}: {e}).") from e


def parse_settings(pairs: list[str]) -> dict:
    """``["stroke_gap=0", ...]`` -> {"stroke_gap": 0}: values read as YAML (numbers, true/false, lists)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--preprocess takes key=value (as stroke_gap=0), not {pair!r}.")
        out[key.strip()] = yaml.safe_load(value)
    from mnist_gen.preprocess import as_config

    as_config(out)  # an unknown setting is named now, not after rendering
    return out


def census(argv: list[str] | None = None) -> dict:
    """The census ``main`` runs: its result, as written to census.json."""
    from mnist_gen.evalsets.framing import SOURCES

    p = argparse.ArgumentParser(prog="python -m mnist_gen.cli.census", description=__doc__.split("\n\n")[0])
    p.add_argument("--every", type=int, default=20, help="read every n-th digit of each array source (default: 20)")
    p.add_argument("--sources", nargs="+", choices=list(SOURCES), help="only these sources (default: all)")
    p.add_argument("--model", default="default", help="model file, run directory or bundled name (default: default)")
    p.add_argument("--preprocess", nargs="*", default=[], metavar="KEY=VALUE", help="preprocessing settings changed")
    p.add_argument("--against", type=Path, help="an earlier census.json: list the answers that changed")
    p.add_argument("--keep-files", action="store_true", help="keep the rendered files beside census.json")
    args = p.parse_args(argv)
    if args.every < 1:
        raise UserError(f"--every must be 1 or more, not {args.every}.")
    before = read_census(args.against) if args.against else None  # a bad file is said before the work
    settings = parse_settings(args.preprocess)
    sources, left_out = [], {}
    for source in args.sources or list(SOURCES):
        why = unreadable(source)
        if why is None:
            sources.append(source)
        else:
            left_out[source] = why
            print(f"census: leaving out {source}: {why}", file=sys.stderr)
    if not sources:
        raise UserError("None of the census's sources can be read here: " + " ".join(left_out.values()))
    out = paths.PROJECT_ROOT / "outputs" / "census" / time.strftime("%Y-%m-%d_%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = out / "files" if args.keep_files else Path(tmp)
        # feedback: the whole census takes minutes (8–12 on 2 cores at --every 20)
        print(f"rendering 1 in {args.every} digits of every framing and check ...", flush=True)
        files = write_files(args.every, folder, sources)
        print(f"reading {len(files)} files through the pipeline with {args.model} ...", flush=True)
        answers = read_files(files, args.model, settings)
    from mnist_gen.preprocess import PIPELINE_VERSION

    result = {"pipeline_version": PIPELINE_VERSION, "model": args.model, "every": args.every,
              "sources": sources, "left_out": left_out, "preprocess": settings,
              "right": sum(a == y for y, a in answers.values()), "files": len(answers), "answers": answers}
    print(f"census: {result['right']} of {result['files']} files read right (pipeline version {PIPELINE_VERSION})")
    if before is not None:
        result["against"] = {"census": str(args.against), **compare(before, answers)}
        c = result["against"]
        for ch in c["changed"]:
            print(f"  {ch['file']} (a {ch['label']}): {ch['before']} -> {ch['after']}")
        print(f"{len(c['changed'])} answers changed of {c['files']}: {c['fixed']} fixed, {c['broken']} broken; "
              f"right {c['right_before']} -> {c['right_after']}")
    write_atomic(out / "census.json", to_json(result))
    print(f"written to {out / 'census.json'}")
    return result


def main(argv: list[str] | None = None) -> int:
    def run(args) -> int:
        census(args)
        return 0

    return run_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
