"""The layout draws the pipeline: dependencies point one way, no cycles, no private names across modules."""

from __future__ import annotations

import ast
from pathlib import Path

from mnist_gen import paths

PACKAGE = paths.PACKAGE_DIR
#: Stages in pipeline order. A module may import its own stage and the ones before it, never later ones.
LAYERS = [
    {"mnist_gen", "mnist_gen.errors", "mnist_gen.paths", "mnist_gen.io", "mnist_gen.console"},
    # preprocess first: the one input pipeline is also how training digits are read back from
    # small files (data/refiled.py), and it needs nothing from data
    {"mnist_gen.preprocess"},
    {"mnist_gen.data"},
    {"mnist_gen.settings"},
    {"mnist_gen.evalsets"},
    {"mnist_gen.models"},
    {"mnist_gen.training"},
    {"mnist_gen.evaluation"},
    {"mnist_gen.reporting"},
    {"mnist_gen.app"},
    {"mnist_gen.cli"},
]


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    best = None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    assert best is not None, f"{module} belongs to no layer; add it to LAYERS"
    return best[0]


def _imports():
    for path in sorted(PACKAGE.rglob("*.py")):
        mod = _module(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mnist_gen") and not node.level:
                yield mod, node.module, [a.name for a in node.names], node.lineno
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("mnist_gen"):
                        yield mod, a.name, [], node.lineno


def test_dependencies_point_down_the_pipeline():
    bad = []
    for mod, target, names, line in _imports():
        # `from mnist_gen.x import y` may name a submodule y; judge by the deepest module named.
        targets = [target] + [f"{target}.{n}" for n in names if (PACKAGE.parent / f"{target}.{n}".replace(".", "/")).exists()]
        for t in targets:
            if _layer(t) > _layer(mod):
                bad.append(f"{mod}:{line} imports {t}")
    assert not bad, "imports against the pipeline order:\n" + "\n".join(bad)


def test_no_private_name_crosses_a_module():
    bad = [f"{mod}:{line} imports {n} from {target}" for mod, target, names, line in _imports()
           for n in names if n.startswith("_") and target != mod]
    assert not bad, "\n".join(bad)


def test_nothing_imports_an_entry_module():
    bad = [f"{mod}:{line} imports {target}" for mod, target, names, line in _imports()
           if (target.startswith("mnist_gen.cli") or any(f"{target}.{n}".startswith("mnist_gen.cli.") for n in names))
           and not mod.startswith("mnist_gen.cli")]
    assert not bad, "\n".join(bad)


def test_modules_stay_short():
    long = {_module(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"modules over 500 lines: {long}"
