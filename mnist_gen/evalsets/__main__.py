"""``python -m mnist_gen.evalsets``: every evaluation set, its size, and whether its data is here."""

from rich.table import Table

from mnist_gen.console import console
from mnist_gen.evalsets import describe_sets


def main() -> None:
    table = Table(title="Evaluation sets (eval_sets=[...] in train.py / evaluate.py; patterns like usps_* allowed)")
    for col in ("name", "digits", "data", "what it is"):
        table.add_column(col)
    for r in describe_sets():
        data = "bundled" if r["data"] == "bundled" else ("present" if r["present"] else f"missing: {r['data']}")
        table.add_row(r["name"], "–" if r["size"] is None else f"{r['size']:,}", data, r["about"])
    console.print(table)


if __name__ == "__main__":
    main()
