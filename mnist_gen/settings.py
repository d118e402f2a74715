"""The packaged configs (``mnist_gen/configs``) read outside a Hydra app, through Hydra itself.

``predict.py``, the demo and the benchmark are not Hydra apps, yet they use the same presets
(``preprocess/naive``, ``model/cnn_32``, ``augment/robust``): composing them here applies the
same defaults lists and schemas as ``train.py`` does, instead of opening YAML files by path.
"""

from __future__ import annotations

import re

from mnist_gen.errors import UserError
from mnist_gen.paths import CONFIG_DIR


def options(group: str) -> list[str]:
    """The preset names of a config group (``configs/<group>/*.yaml``; schema entries excluded)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def compose_group(group: str, name: str) -> dict:
    """The composed config ``<group>/<name>`` as a plain dict; an unknown name is a ``UserError``."""
    valid = options(group)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", str(name)) or name not in valid:
        raise UserError(f"{group} {name!r} is unknown; choose one of {', '.join(valid)} "
                        f"(the files in {CONFIG_DIR / group}).")
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    import mnist_gen.preprocess.config  # noqa: F401  (the preprocess group's schema)

    if GlobalHydra.instance().is_initialized():  # inside a Hydra app: its search path is this one
        cfg = compose(config_name=f"{group}/{name}")
    else:
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            cfg = compose(config_name=f"{group}/{name}")
    return OmegaConf.to_container(cfg[group], resolve=True)
