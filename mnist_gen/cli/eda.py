"""``python -m mnist_gen.cli.eda``: exploratory data analysis (``mnist_gen/reporting/eda``; config ``configs/eda.yaml``)."""

import logging
import sys

import hydra
from omegaconf import DictConfig

import mnist_gen.preprocess.config  # noqa: F401  (registers the preprocess group's schema and defaults)
from mnist_gen.errors import UserError

log = logging.getLogger("eda")


@hydra.main(version_base="1.3", config_path="../configs", config_name="eda")
def main(cfg: DictConfig) -> None:
    from mnist_gen.reporting.eda.run import run

    try:
        run(cfg)
    except UserError as e:
        log.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
