"""``python -m mnist_gen.cli.bundle``: rebuild the bundled models (``mnist_gen/bundled``) from runs.

    python -m mnist_gen.cli.bundle --study runs/study --robust runs/robust runs/robust_files

* ``--study DIR``: the five study networks, seed 0 (``DIR/<model>/seed0``), as ``study/<model>``;
* ``--robust DIR [DIR ...]``: of the networks under them trained by a robust recipe
  (``robust``, ``robust_files``; each recipe's network a candidate of its own), the best for
  real handwriting by mean accuracy (over its seeds) on the selection sets ``SELECTION_SETS``:
  the study's photos and USPS in every framing; UCI digits stay held out. Within one standard
  error of the best mean, the network with the fewest parameters (``best_robust``). Its seed-0
  run becomes ``<recipe>/<model>``; all its seeds together (``SeedEnsemble``: the mean of their
  probabilities) become ``<recipe>/<model>_seeds``, the default (``index.json``).

Each bundled model is exported afresh from the runs' weights (``model.safetensors`` +
``model.onnx``) and gets ``card.json``: recipe, command, data, seed(s), parameters, accuracy on
every set the run was scored on (an ensemble is scored afresh on the same sets), the pipeline
versions that read those sets' files, and the sha256 of both files.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mnist_gen.errors import UserError, run_main
from mnist_gen.evaluation.aggregate import load_runs
from mnist_gen.evaluation.score import evaluate_sets
from mnist_gen.io import sha256_file, write_json
from mnist_gen.models.bundled import BUNDLE_DIR, CARD
from mnist_gen.models.export import export_all
from mnist_gen.models.networks import build_network
from mnist_gen.models.predictors import NetworkPredictor, load_predictor

STUDY_NETWORKS = ("mlp_64_16", "mlp_64_32", "cnn_32", "cnn_32_16", "cnn_32_16x3")
#: Real handwriting the best model is chosen on (UCI digits are kept out: held out while tuning).
SELECTION_SETS = ("seed_photos", "photos_*", "usps", "usps_*")


def selection_score(eval_sets: dict) -> float | None:
    names = [n for n in eval_sets if any(fnmatch.fnmatch(n, p) for p in SELECTION_SETS)]
    accs = [eval_sets[n]["accuracy"] for n in names if isinstance(eval_sets[n].get("accuracy"), float | int)]
    return float(np.mean(accs)) if accs else None


def command(results: dict) -> str:
    recipe = results.get("recipe", "study")
    experiment = "" if recipe == "study" else f"experiment={recipe} "
    return f"python train.py {experiment}model={results['model']} seed={results['seed']}"


def _network(run_dir: Path):
    weights = next((run_dir / n for n in ("model.safetensors", "model.ckpt") if (run_dir / n).is_file()), None)
    if weights is None:
        raise UserError(f"No network weights (model.safetensors or model.ckpt) in {run_dir}.")
    return load_predictor(weights)


def _export(net, hparams: dict, name: str, card: dict) -> Path:
    """``net`` into ``BUNDLE_DIR/name`` (safetensors + ONNX) with ``card`` and the files' sha256."""
    out = BUNDLE_DIR / name
    if out.exists():
        shutil.rmtree(out)
    files = export_all(net, hparams, out)
    (out / "SHA256SUMS").unlink(missing_ok=True)  # the card carries the sums
    write_json(out / CARD, {"name": name, **card, "bundled": date.today().isoformat(),
                            "sha256": {f.name: sha256_file(f) for f in files}})
    return out


def _card(results: dict, **fields) -> dict:
    return {
        "model": results["model"],
        "recipe": results.get("recipe", "study"),
        "seed": results["seed"],
        "command": command(results),
        "data": f"MNIST training images ({results['data']['n_train']:,}; the last 6,000 validate), "
                f"augment={results['config'].get('augment', {}).get('name', 'none')}",
        "epochs": results.get("epochs"),
        "params": results.get("num_params"),
        "input": "pixels: float32 (N, 1, 28, 28), raw 0..255, bright ink on black (as MNIST; to_mnist makes it)",
        "output": "probabilities: float32 (N, 10)",
        "accuracy": {k: v.get("accuracy") for k, v in sorted(results["eval_sets"].items())},
        "pipeline_versions": pipeline_versions(results["eval_sets"]),
        "selection_score": selection_score(results["eval_sets"]),
        **fields,
    }


def pipeline_versions(eval_sets: dict) -> list[int]:
    """The ``PIPELINE_VERSION``s that read the files behind a card's accuracies (none for
    scores written before the sets recorded it)."""
    return sorted({v["pipeline_version"] for v in eval_sets.values() if isinstance(v.get("pipeline_version"), int)})


def bundle_run(run_dir: Path, name: str) -> Path:
    """Export one run into ``BUNDLE_DIR/name`` with its card."""
    results = json.loads((run_dir / "results.json").read_text())
    predictor = _network(run_dir)
    hparams = {"name": results["model"], "arch": results["config"]["model"]["arch"],
               "arch_kwargs": results["config"]["model"]["arch_kwargs"], "mean": predictor.mean, "std": predictor.std,
               "recipe": results.get("recipe", "study"), "seed": results["seed"]}
    return _export(predictor.net, hparams, name, _card(results))


def bundle_ensemble(run_dirs: list[Path], name: str) -> Path:
    """The seeds of one network (``run_dirs``, seed 0 first) as one ``SeedEnsemble`` in ``BUNDLE_DIR/name``.

    Its card's accuracies are measured afresh, on every set the seed-0 run was scored on (the
    cached sets: minutes, not hours).
    """
    results = [json.loads((d / "results.json").read_text()) for d in run_dirs]
    members = [_network(d) for d in run_dirs]
    norm = {(m.mean, m.std) for m in members}
    if len(norm) != 1 or len({r["model"] for r in results}) != 1:
        raise UserError(f"The runs {', '.join(map(str, run_dirs))} are not seeds of one network with one "
                        "normalisation; an ensemble needs them to be.")
    first, (mean, std) = results[0], norm.pop()
    arch_kwargs = {"members": len(members), "member_arch": first["config"]["model"]["arch"],
                   "member_kwargs": first["config"]["model"]["arch_kwargs"]}
    net = build_network("ensemble", **arch_kwargs)
    for slot, member in zip(net.members, members, strict=True):
        slot.load_state_dict(member.net.state_dict())
    seeds = [r["seed"] for r in results]
    hparams = {"name": f"{first['model']}_seeds", "arch": "ensemble", "arch_kwargs": arch_kwargs, "mean": mean,
               "std": std, "recipe": first.get("recipe", "study"), "seeds": seeds}
    scores = evaluate_sets(NetworkPredictor(net, mean, std, hparams["name"]), sorted(first["eval_sets"]))
    summaries = {k: s.summary for k, s in scores.items()}
    card = _card(first, seeds=seeds, params=sum(r.get("num_params") or 0 for r in results),
                 command=" && ".join(command(r) for r in results) + " && python -m mnist_gen.cli.bundle --robust <runs>",
                 accuracy={k: v.get("accuracy") for k, v in sorted(summaries.items())},
                 pipeline_versions=pipeline_versions(summaries),
                 selection_score=selection_score(summaries))
    del card["seed"]  # "seeds" says which
    return _export(net, hparams, name, card)


def best_robust(*roots: Path) -> tuple[str, float, list[Path]]:
    """(``<recipe>/<model>``, mean selection score over its seeds, its runs with seed 0 first) of
    the best network trained by a recipe other than the study's (``robust``, ``robust_files``).

    The one-standard-error rule (Hastie, Tibshirani & Friedman, ESL §7.10): the best mean sets
    the bar, and of the networks whose mean comes within one standard error (over seeds) of it,
    the one with the fewest parameters is chosen. Differences below the seed-to-seed noise say
    nothing about which network reads handwriting better; without the rule the default would
    flip between networks on re-scoring alone (cnn_robust over cnn_32_16x3 by 0.02 points when
    the standard error was 0.05).
    """
    by_model: dict[str, list] = {}
    for r in (r for root in roots for r in load_runs(root)):
        if r.get("recipe", "study") != "study" and r.get("kind") == "network":
            by_model.setdefault(f"{r['recipe']}/{r['model']}", []).append(r)
    scored = []
    for model, runs in by_model.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        scores = [s for r in runs if (s := selection_score(r["eval_sets"])) is not None]
        if scores and runs[0]["seed"] == 0:
            se = float(np.std(scores, ddof=1) / np.sqrt(len(scores))) if len(scores) > 1 else 0.0
            scored.append(_Candidate(float(np.mean(scores)), se, runs[0].get("num_params") or 0, model,
                                     [Path(r["_dir"]) for r in runs]))
    if not scored:
        raise UserError(f"No robust-recipe network runs with seed 0 and real-handwriting scores under "
                        f"{', '.join(map(str, roots))}.")
    top = max(scored, key=lambda c: c.mean)
    within = [c for c in scored if c.mean >= top.mean - top.se]
    best = min(within, key=lambda c: (c.params, -c.mean))
    return best.model, best.mean, best.run_dirs


class _Candidate(NamedTuple):
    mean: float  # selection score, mean over seeds
    se: float  # its standard error over seeds (0 for one seed)
    params: int
    model: str  # <recipe>/<model>
    run_dirs: list[Path]  # its runs, seed 0 first


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mnist_gen.cli.bundle", description=__doc__.split("\n\n")[0])
    p.add_argument("--study", metavar="DIR", help="folder holding <model>/seed0 study-recipe runs")
    p.add_argument("--robust", metavar="DIR", nargs="+",
                   help="folder(s) of robust-recipe runs (any robust recipe); the best network becomes the default")
    return p


def run(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not args.study and not args.robust:
        raise UserError("Nothing to bundle: give --study DIR and/or --robust DIR.")
    index = json.loads((BUNDLE_DIR / "index.json").read_text()) if (BUNDLE_DIR / "index.json").is_file() else {}
    models = set(index.get("models", []))
    if args.study:
        for model in STUDY_NETWORKS:
            run_dir = Path(args.study) / model / "seed0"
            if not (run_dir / "results.json").is_file():
                raise UserError(f"No finished study run at {run_dir}; train it with `python train.py model={model} seed=0`.")
            print(f"bundled {bundle_run(run_dir, f'study/{model}')}")
            models.add(f"study/{model}")
    if args.robust:
        model, score, run_dirs = best_robust(*map(Path, args.robust))
        out = bundle_run(run_dirs[0], model)
        print(f"bundled {out} (best for real handwriting: {100 * score:.2f} % mean on {', '.join(SELECTION_SETS)})")
        models.add(model)
        if len(run_dirs) > 1:  # the default: every seed of the best network, answering together
            out = bundle_ensemble(run_dirs, f"{model}_seeds")
            print(f"bundled {out} (its {len(run_dirs)} seeds as one ensemble; the default)")
            models.add(f"{model}_seeds")
            index["default"] = f"{model}_seeds"
        else:
            index["default"] = model
    index["models"] = sorted(models)
    write_json(BUNDLE_DIR / "index.json", index)
    return 0


def main(argv=None) -> int:
    return run_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
