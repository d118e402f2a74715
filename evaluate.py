"""Score saved models on evaluation sets, or aggregate runs into the study's table. See README."""

import logging
import sys

import hydra
from omegaconf import DictConfig

import mnist_gen.preprocess.config  # noqa: F401  (registers the preprocess group's schema and defaults)
from mnist_gen.errors import UserError


@hydra.main(version_base="1.3", config_path="mnist_gen/configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from mnist_gen.cli.evaluate import run

    try:
        run(cfg)
    except UserError as e:
        logging.getLogger("evaluate").error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
