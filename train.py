"""Train one of the study's models: ``python train.py model=cnn_32_16x3 trainer.accelerator=gpu``.

Grid: ``python train.py --multirun model=mlp_64_16,cnn_32 seed=0,1,2``. See README.
"""

import logging
import sys

import hydra
from omegaconf import DictConfig

import mnist_gen.preprocess.config  # noqa: F401  (registers the preprocess group's schema and defaults)
from mnist_gen.errors import UserError


@hydra.main(version_base="1.3", config_path="mnist_gen/configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from mnist_gen.cli.train import run

    try:
        results = run(cfg)
    except UserError as e:
        logging.getLogger("train").error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    # A float for Hydra sweepers (e.g. Optuna): the mean over seeds when one job trains several.
    runs = results if isinstance(results, list) else [results]
    return sum(r["test_accuracy"] for r in runs) / len(runs)


if __name__ == "__main__":
    main()
