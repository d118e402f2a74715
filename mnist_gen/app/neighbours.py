"""The MNIST training digits nearest to what the models were given: shown beside the prediction."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from mnist_gen import paths
from mnist_gen.app.images import png_data_uri
from mnist_gen.errors import UserError

N_NEIGHBOURS = 8  # neighbours shown; a KNN model's own k voters come first
REFERENCE_SIZE = 10_000  # MNIST training digits searched when no KNN model is loaded
REFERENCE_SEED = 0  # the same fixed subset on every start


class Neighbours:
    """The MNIST training digits nearest to the 28×28 input (Euclidean on pixels/255, KNN's metric).

    With a KNN model among the loaded ones, its own fitted estimator answers: these are exactly the
    digits it voted with (its ``n_neighbors`` first), drawn from exactly what it was trained on.
    Without one, a fixed subset of ``REFERENCE_SIZE`` MNIST training digits is searched; it loads
    in a background thread so the page is up at once.
    """

    def __init__(self, models: list[tuple[str, object]], data_dir: Path | None, k: int = N_NEIGHBOURS):
        self.k = k
        self.voters: int | None = None
        self.source = ""
        self.note: str | None = None
        self._estimator = None
        self._ready = threading.Event()
        for name, model in models:
            est = getattr(model, "estimator_", None)
            if getattr(model, "kind", None) == "knn" and est is not None and hasattr(est, "kneighbors"):
                try:
                    self._fit_x, self._fit_labels = est._fit_X, est.classes_[est._y]  # sklearn's fitted data
                except (AttributeError, IndexError):
                    continue
                self._estimator, self.voters = est, int(est.n_neighbors)
                self.source = (f"{name}'s own training digits ({len(self._fit_x):,}); "
                               f"its {self.voters} nearest vote")
                self._ready.set()
                return
        self._thread = threading.Thread(target=self._build_reference, args=(data_dir,), daemon=True)
        self._thread.start()

    def _build_reference(self, data_dir: Path | None) -> None:
        try:
            from sklearn.neighbors import NearestNeighbors

            from mnist_gen.data.mnist import load_mnist

            mnist = load_mnist(data_dir or paths.data_dir(), fetch=False)  # never download from the app
            x, y = mnist["x_train"], mnist["y_train"]
            idx = np.sort(np.random.default_rng(REFERENCE_SEED).choice(len(y), min(REFERENCE_SIZE, len(y)),
                                                                       replace=False))
            self._fit_x = x[idx].reshape(len(idx), -1).astype(np.float32) / 255.0
            self._fit_labels = y[idx]
            self._estimator = NearestNeighbors(algorithm="brute").fit(self._fit_x)
            self.source = f"a fixed subset of {len(idx):,} MNIST training digits (no KNN model loaded)"
        except UserError as e:
            self.note = f"Nearest neighbours unavailable: {e}"
        except Exception as e:  # noqa: BLE001 - the demo works without neighbours
            self.note = f"Nearest neighbours unavailable ({type(e).__name__}: {str(e)[:200]})."
        finally:
            self._ready.set()

    def state(self) -> dict:
        if not self._ready.is_set():
            return {"status": "loading", "source": "", "note": "Loading MNIST for the nearest neighbours…"}
        if self._estimator is None:
            return {"status": "unavailable", "source": "", "note": self.note}
        return {"status": "ready", "source": self.source, "note": None}

    def query(self, digit: np.ndarray, wait_s: float = 120.0) -> dict:
        self._ready.wait(wait_s)
        out = {**self.state(), "voters": self.voters, "items": []}
        if out["status"] != "ready":
            return out
        x = digit.reshape(1, -1).astype(self._fit_x.dtype) / 255.0
        dist, idx = self._estimator.kneighbors(x, n_neighbors=min(self.k, len(self._fit_x)))
        for d, i in zip(dist[0], idx[0], strict=True):
            img = np.clip(np.rint(self._fit_x[i].reshape(28, 28) * 255.0), 0, 255).astype(np.uint8)
            out["items"].append({"png": png_data_uri(img), "label": int(self._fit_labels[i]),
                                 "distance": round(float(d), 4)})
        return out
