"""The study's classical models, KNN and SVM, behind the same ``Predictor`` interface as the networks.

Representation (the study's): raw uint8 digits -> float64 pixels / 255, flattened to 784.

* ``knn``: ``KNeighborsClassifier(n_neighbors=3)``; ``predict_proba`` is the estimator's own
  (neighbour vote fractions, multiples of 1/3).
* ``svm``: ``make_pipeline(StandardScaler(), SVC(gamma='scale'))``. ``predict_proba`` returns
  **scores, not calibrated probabilities**: softmax of the one-vs-rest decision function
  (votes of the 45 one-vs-one classifiers plus a confidence term in (-1/3, 1/3)). We do not use
  ``probability=True``: Platt scaling costs about 5x the fit and its argmax can disagree with
  ``predict``, which would change the study's accuracy.

For both, ``predict`` is ``argmax(predict_proba)`` and equals the estimator's ``predict`` exactly.

Files are written with skops (no pickle). ``load`` refuses, before anything is instantiated, any
type skops does not trust by default unless this module writes it (``ALLOWED_TYPES``), so a
user-supplied ``.skops`` file cannot execute code or smuggle in other objects.
"""

from __future__ import annotations

import io
import json
import logging
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import skops.io as sio
from scipy.special import softmax
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from mnist_gen.console import console
from mnist_gen.errors import UserError
from mnist_gen.io import write_atomic

log = logging.getLogger(__name__)

KINDS = ("knn", "svm")
NUM_CLASSES = 10
FORMAT = "mnist_gen.classical"
FORMAT_VERSION = 1

# Every (module.class) a file written by ``ClassicalModel.save`` may contain. Anything else in a
# file's schema is refused before skops instantiates a single object.
ALLOWED_TYPES = frozenset({
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int",
    "builtins.float", "builtins.bool", "builtins.NoneType",
    "numpy.ndarray", "numpy.dtype", "numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32",
    "numpy.intc", "numpy.uint8", "numpy.bool_",
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.svm._classes.SVC",
})


def _default_estimator(kind: str) -> Any:
    if kind == "knn":
        return KNeighborsClassifier()
    return SVC(gamma="scale")


def _check_params(kind: str, params: dict) -> None:
    valid = _default_estimator(kind).get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise UserError(f"Unknown {kind} parameter(s) {', '.join(unknown)} in model.params; "
                        f"valid: {', '.join(sorted(valid))}.")
    if kind == "svm" and params.get("decision_function_shape", "ovr") != "ovr":
        raise UserError("model.params.decision_function_shape must be 'ovr' (scores are one-vs-rest).")


def _pixels(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float64 (N, 784) in [0, 1], the study's representation."""
    a = np.asarray(images)
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        raise UserError(f"Classical models take integer pixel values 0..255 (uint8), got dtype {a.dtype}.")
    if a.ndim < 1 or a[:1].size not in (0, 784) or a.size % 784:
        raise UserError(f"Classical models take (N, 28, 28) digits, got shape {a.shape}.")
    return a.reshape(-1, 784).astype(np.float64) / 255.0


def _libsvm_scores(dec: np.ndarray, break_ties: bool) -> np.ndarray:
    """One-vs-rest scores whose argmax is exactly SVC.predict.

    ``dec`` is sklearn's ovr decision function: votes + confidence in (-1/3, 1/3), so the votes
    are ``rint(dec)``. libsvm's ``predict`` (used unless break_ties) gives a vote tie to the
    lowest class index, while the confidence term may rank another tied class first; on those
    rows the two classes' scores are swapped, so the scores keep their values and argmax == predict.
    """
    dec = np.array(dec, dtype=np.float64, copy=True)
    if break_ties:
        return dec
    votes = np.rint(dec)
    winner = np.argmax(votes, axis=1)  # first index among the tied maxima, as libsvm
    top = np.argmax(dec, axis=1)
    rows = np.nonzero(winner != top)[0]
    dec[rows, winner[rows]], dec[rows, top[rows]] = dec[rows, top[rows]], dec[rows, winner[rows]]
    return dec


class ClassicalModel:
    """KNN or SVM on flattened pixels/255, answering the ``Predictor`` protocol.

    ``max_train_samples`` (None = all) fits on a fixed stratified subset (``data.splits.training_subset``, class
    proportions kept) for quick runs; the study's numbers need None.
    """

    def __init__(self, name: str, kind: str, params: dict | None = None, max_train_samples: int | None = None):
        if kind not in KINDS:
            raise UserError(f"Classical model kind must be one of {', '.join(KINDS)}, got {kind!r}.")
        self.name, self.kind = name, kind
        self.params = dict(params or {})
        _check_params(kind, self.params)
        if max_train_samples is not None and (isinstance(max_train_samples, bool)
                                              or not isinstance(max_train_samples, int) or max_train_samples < 1):
            raise UserError(f"model.max_train_samples must be a positive integer or null, got {max_train_samples!r}.")
        self.max_train_samples = max_train_samples
        self.estimator_: Any = None
        self.fit_time_s: float | None = None
        self.n_train: int | None = None

    # -- learning -------------------------------------------------------------------------------
    def _make_estimator(self):
        if self.kind == "knn":
            return KNeighborsClassifier(**self.params)
        # StandardScaler then RBF SVC, gamma='scale' (sklearn's default, stated for the reader).
        return make_pipeline(StandardScaler(), SVC(**{"gamma": "scale", **self.params}))

    def _subset(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from mnist_gen.data.splits import training_subset

        idx = training_subset(y, self.max_train_samples)
        return x[idx], y[idx]

    def fit(self, images: np.ndarray, labels: np.ndarray, progress: bool = True) -> ClassicalModel:
        x = _pixels(images)
        y = np.asarray(labels).astype(np.int64).reshape(-1)
        if len(y) != len(x):
            raise UserError(f"fit got {len(x)} images but {len(y)} labels.")
        x, y = self._subset(x, y)
        est = self._make_estimator()
        what = f"Fitting {self.name} ({self.kind}) on {len(y):,} images"
        log.info("%s", what)
        t0 = time.perf_counter()
        if progress:
            # sklearn has no progress callback (the SVM takes minutes): a spinner with elapsed time.
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                          console=console, transient=True) as bar:
                bar.add_task(what, total=None)
                est.fit(x, y)
        else:
            est.fit(x, y)
        self.fit_time_s = time.perf_counter() - t0
        self.estimator_, self.n_train = est, len(y)
        log.info("Fitted %s in %.1f s", self.name, self.fit_time_s)
        if progress:
            console.print(f"Fitted {self.name} on {len(y):,} images in {self.fit_time_s:.1f} s")
        return self

    # -- answering ------------------------------------------------------------------------------
    def _fitted(self):
        if self.estimator_ is None:
            raise UserError(f"Model {self.name} is not fitted; call fit() or load a saved model first.")
        return self.estimator_

    def decision_scores(self, images: np.ndarray) -> np.ndarray:
        """(N, 10) raw scores: KNN vote fractions; SVM one-vs-rest decision values (argmax == predict)."""
        est = self._fitted()
        x = _pixels(images)
        if len(x) == 0:
            return np.zeros((0, NUM_CLASSES))
        if self.kind == "knn":
            return est.predict_proba(x)
        return _libsvm_scores(est.decision_function(x), est[-1].break_ties)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, 10): KNN neighbour fractions; SVM softmax of decision scores (not calibrated)."""
        scores = self.decision_scores(images)
        return scores if self.kind == "knn" else softmax(scores, axis=1)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.argmax(self.decision_scores(images), axis=1)

    @property
    def num_params(self) -> int | None:
        """Learned numbers, honestly counted (the study's table lists none for these models).

        KNN: None; it learns nothing, it stores the training set. SVM: dual coefficients plus
        intercepts of the 45 one-vs-one classifiers (the support vectors are training samples,
        stored, not learned, as for KNN).
        """
        if self.kind == "knn" or self.estimator_ is None:
            return None
        svc = self.estimator_[-1]
        return int(svc.dual_coef_.size + svc.intercept_.size)

    # -- persistence ----------------------------------------------------------------------------
    def metadata(self) -> dict:
        return {"name": self.name, "kind": self.kind, "params": self.params,
                "max_train_samples": self.max_train_samples, "fit_time_s": self.fit_time_s,
                "n_train": self.n_train, "sklearn_version": sklearn.__version__}

    def save(self, path: str | Path) -> Path:
        """Write one skops file atomically."""
        data = sio.dumps({"format": FORMAT, "version": FORMAT_VERSION,
                          "meta": json.dumps(self.metadata()), "estimator": self._fitted()})
        return write_atomic(path, data)

    @classmethod
    def load(cls, path: str | Path, data: bytes | None = None) -> ClassicalModel:
        """Read a ``.skops`` file written by ``save``; refuse anything else with one sentence.

        Before skops instantiates anything: the zip's declared sizes are checked (a small
        file must not expand to gigabytes) and every type skops does not trust by default
        must be one this module writes (``ALLOWED_TYPES``). After: the estimator must be the
        kind the file says, fitted on 784 pixels, and answer a test digit.
        """
        path = Path(path)
        try:
            data = path.read_bytes() if data is None else data
            _check_zip(data)
            untrusted = sio.get_untrusted_types(data=data)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise UserError(f"Cannot read {path} as a mnist_gen classical model (.skops): "
                            f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from e
        refused = sorted(set(untrusted) - ALLOWED_TYPES)
        if refused:
            raise UserError(f"Refusing to load {path}: it contains types this project never writes "
                            f"({', '.join(refused[:5])}); only load .skops files written by mnist_gen.")
        try:
            obj = sio.loads(data, trusted=untrusted)
            if not (isinstance(obj, dict) and obj.get("format") == FORMAT):
                raise ValueError("not a mnist_gen classical model file")
            if obj.get("version") != FORMAT_VERSION:
                raise ValueError(f"format version {obj.get('version')!r}, expected {FORMAT_VERSION}")
            meta, est = json.loads(obj["meta"]), obj["estimator"]
            if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
                raise ValueError("its metadata has no model name")
            model = cls(meta["name"], meta["kind"], meta["params"], meta.get("max_train_samples"))
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure to read the file is the user's bad file
            raise UserError(f"Cannot load {path} as a mnist_gen classical model: "
                            f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from e
        expected = (isinstance(est, KNeighborsClassifier) if model.kind == "knn" else
                    isinstance(est, Pipeline) and [type(s) for _, s in est.steps] == [StandardScaler, SVC])
        if not expected:
            raise UserError(f"Refusing to load {path}: its estimator does not match its kind {model.kind!r}.")
        model.estimator_, model.fit_time_s, model.n_train = est, meta.get("fit_time_s"), meta.get("n_train")
        _check_fitted(model, path)
        return model
    def __repr__(self) -> str:
        return f"ClassicalModel(name={self.name!r}, kind={self.kind!r}, params={self.params!r})"


MAX_UNZIPPED_BYTES = 3 << 30  # the KNN file holds its training set; a bomb claims more
MAX_SCHEMA_BYTES = 64 << 20


def _check_zip(data: bytes) -> None:
    """Refuse a zip whose members would expand beyond what this project ever writes."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        infos = z.infolist()
        total = sum(i.file_size for i in infos)
        schema = sum(i.file_size for i in infos if i.filename == "schema.json")
    if total > MAX_UNZIPPED_BYTES or schema > MAX_SCHEMA_BYTES:
        raise ValueError(f"it would expand to {total / 1e9:.1f} GB (schema {schema / 1e6:.0f} MB), far beyond "
                         "a model this project writes.")


def _check_fitted(model: ClassicalModel, path: Path) -> None:
    """A fitted estimator of the right shape that answers: else one sentence (never a traceback later)."""
    est = model.estimator_
    try:
        n_in = est.n_features_in_ if model.kind == "knn" else est[-1].n_features_in_
        if n_in != 784:
            raise ValueError(f"it was fitted on {n_in} features, not 784 pixels")
        if model.kind == "knn":
            k, n = est.n_neighbors, est.n_samples_fit_
            if not isinstance(k, int | np.integer) or not 1 <= k <= n:
                raise ValueError(f"n_neighbors={k!r} for {n} training digits")
        proba = model.predict_proba(np.zeros((1, 28, 28), np.uint8))
        if proba.shape != (1, NUM_CLASSES) or not np.isfinite(proba).all():
            raise ValueError("it answers no finite probabilities for 10 classes")
    except Exception as e:  # noqa: BLE001 - a malformed estimator is the user's bad file
        raise UserError(f"Refusing to load {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}.") from e


def build_classical(cfg: dict) -> ClassicalModel:
    """A ``ClassicalModel`` from a model config (configs/model/knn.yaml, svm.yaml)."""
    for key in ("name", "estimator"):
        if key not in cfg:
            raise UserError(f"Classical model config is missing '{key}' (see configs/model/knn.yaml).")
    params = cfg.get("params") or {}
    if not isinstance(params, dict):
        raise UserError(f"model.params must be a mapping, got {params!r}.")
    return ClassicalModel(cfg["name"], cfg["estimator"], dict(params), cfg.get("max_train_samples"))
