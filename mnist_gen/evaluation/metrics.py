"""The one metrics path: torchmetrics for every model and every evaluation set.

``classification_report`` returns the same dict as scikit-learn's
``classification_report(..., output_dict=True, labels=range(10), zero_division=0)`` (plus the
confusion matrix), so results from networks and classical models, and from MNIST and photos,
are computed and stored the same way. Conventions, chosen once:

* All ``num_classes`` classes are always reported, including a digit absent from a small
  handwriting set; macro averages therefore run over all classes (sklearn with ``labels=``),
  not only over the classes that happen to occur.
* Undefined ratios (a class never predicted, or never present) count as 0.0, as sklearn's
  ``zero_division=0``.
* An empty evaluation set gives ``None`` (JSON ``null``) where a rate is undefined, never a
  made-up 0.0 that would read as a terrible model.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import binomtest
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

# Keras' backend epsilon: its categorical cross-entropy clips probabilities to [eps, 1 - eps].
NLL_EPS = 1e-7
_SCORES = ("precision", "recall", "f1-score")


def _as_labels(y, name: str, num_classes: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(y)).reshape(-1)
    if t.is_floating_point():
        if not torch.all(t == t.round()):
            raise ValueError(f"{name} must hold integer class labels, got non-integer values")
    t = t.to(torch.int64)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(
            f"{name} must hold labels in 0..{num_classes - 1}, got {int(t.min())}..{int(t.max())}"
        )
    return t


def _f32(x) -> float:
    """A torchmetrics float32 result as the shortest decimal that round-trips it (0.06, not 0.0599999986)."""
    return float(str(np.float32(x)))


def classification_report(y_true, y_pred, num_classes: int = 10) -> dict:
    """Per-class precision/recall/F1/support, accuracy, macro and weighted averages, confusion matrix.

    Computed with torchmetrics; shaped like sklearn's ``output_dict=True``: keys ``"0"``..``"9"``
    → ``{"precision", "recall", "f1-score", "support"}``, ``"accuracy"``, ``"macro avg"``,
    ``"weighted avg"``, plus ``"confusion_matrix"`` (rows = true class, columns = predicted).
    With no samples, every score is 0.0, supports are 0 and ``"accuracy"`` is ``None``.
    """
    target = _as_labels(y_true, "y_true", num_classes)
    preds = _as_labels(y_pred, "y_pred", num_classes)
    if target.shape != preds.shape:
        raise ValueError(f"y_true has {target.numel()} labels but y_pred has {preds.numel()}")
    n = int(target.numel())

    if n == 0:
        per_class = {k: torch.zeros(num_classes, dtype=torch.float64) for k in _SCORES}
        cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        accuracy = None
    else:
        # average=None gives the per-class vectors; the averages are taken below over all
        # classes, because torchmetrics' own "macro" skips classes absent from both inputs.
        kw = dict(num_classes=num_classes, average="none", zero_division=0)
        per_class = {
            "precision": multiclass_precision(preds, target, **kw).double(),
            "recall": multiclass_recall(preds, target, **kw).double(),
            "f1-score": multiclass_f1_score(preds, target, **kw).double(),
        }
        cm = multiclass_confusion_matrix(preds, target, num_classes=num_classes)
        accuracy = multiclass_accuracy(preds, target, num_classes=num_classes, average="micro")

    support = cm.sum(dim=1)
    report: dict = {}
    for c in range(num_classes):
        report[str(c)] = {k: _f32(per_class[k][c]) for k in _SCORES} | {"support": int(support[c])}
    report["accuracy"] = None if accuracy is None else _f32(accuracy)
    report["macro avg"] = {k: _f32(per_class[k].mean()) for k in _SCORES} | {"support": n}
    weights = support.double()
    report["weighted avg"] = {
        k: (_f32((per_class[k] * weights).sum() / weights.sum()) if n else 0.0) for k in _SCORES
    } | {"support": n}
    report["confusion_matrix"] = cm.tolist()
    return report


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (scipy's ``binomtest``).

    Chosen over the normal approximation because handwriting sets are small and accuracies
    near 1: Wilson stays inside [0, 1] and is not degenerate at k = n. ``n = 0`` carries no
    information and returns the whole range ``(0.0, 1.0)`` (JSON-safe, unlike NaN).
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    # k = 0 and k = n have exact end points (0 and 1); say so rather than 1e-16 off.
    return (0.0 if k == 0 else float(ci.low)), (1.0 if k == n else float(ci.high))


def evaluate_predictions(y_true, proba, num_classes: int = 10) -> dict:
    """The summary stored in ``results.json`` for one model on one evaluation set.

    ``{"accuracy", "n", "correct", "ci95": [lo, hi], "loss", "per_class_recall", "report"}``.
    ``loss`` is the mean negative log-likelihood of the true class with probabilities clipped
    to ``[1e-7, 1]``, as Keras' categorical cross-entropy. ``per_class_recall[c]`` is ``None``
    for a digit the set does not contain (the report itself keeps sklearn's 0.0 there).
    With ``n = 0``: accuracy and loss are ``None`` and ``ci95`` is ``[0.0, 1.0]``.
    """
    proba = np.asarray(proba, dtype=np.float64)
    target = _as_labels(y_true, "y_true", num_classes).numpy()
    if proba.ndim != 2 or proba.shape != (len(target), num_classes):
        raise ValueError(f"proba must be ({len(target)}, {num_classes}), got {proba.shape}")
    n = len(target)
    pred = proba.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    correct = int((pred == target).sum())
    lo, hi = wilson_interval(correct, n)
    report = classification_report(target, pred, num_classes)
    if n:
        p_true = np.clip(proba[np.arange(n), target], NLL_EPS, 1.0)
        loss = float(-np.log(p_true).mean())
    else:
        loss = None
    return {
        "accuracy": correct / n if n else None,
        "n": n,
        "correct": correct,
        "ci95": [lo, hi],
        "loss": loss,
        "per_class_recall": {
            str(c): (report[str(c)]["recall"] if report[str(c)]["support"] else None)
            for c in range(num_classes)
        },
        "report": report,
    }


def evaluate(predictor, evalset) -> tuple[dict, np.ndarray]:
    """Run ``predictor`` on ``evalset`` and summarise; returns ``(summary, proba)``.

    An empty set is not sent to the predictor (some models reject zero-length batches);
    it yields the ``n = 0`` summary and a ``(0, 10)`` proba.
    """
    num_classes = 10
    if len(evalset) == 0:
        proba = np.zeros((0, num_classes), dtype=np.float64)
    else:
        proba = np.asarray(predictor.predict_proba(evalset.images))
        if proba.shape != (len(evalset), num_classes):
            raise ValueError(
                f"model {predictor.name} returned probabilities of shape {proba.shape} "
                f"for {len(evalset)} digits of {evalset.name}; expected ({len(evalset)}, {num_classes})"
            )
    summary = evaluate_predictions(evalset.labels, proba, num_classes)
    return count_missed(summary, getattr(evalset, "missed", []), num_classes), proba


def count_missed(summary: dict, missed, num_classes: int = 10) -> dict:
    """Fold digits the pipeline read nothing from into the summary, as errors.

    ``n``, ``accuracy``, ``ci95`` and ``per_class_recall`` then count every digit-bearing item
    (what a user who gave those files would see); ``no_digit`` says how many of them, per class
    in ``no_digit_per_class``. The classification report and the loss stay over the digits read.
    """
    missed = [int(m) for m in missed]
    summary["no_digit"] = len(missed)
    if not missed:
        return summary
    per_class = np.bincount(missed, minlength=num_classes)
    summary["no_digit_per_class"] = {str(c): int(per_class[c]) for c in range(num_classes)}
    n = summary["n"] + len(missed)
    summary["n"] = n
    summary["accuracy"] = summary["correct"] / n
    summary["ci95"] = list(wilson_interval(summary["correct"], n))
    rep = summary["report"]
    for c in range(num_classes):
        support = rep[str(c)]["support"] + int(per_class[c])
        hits = rep["confusion_matrix"][c][c]
        summary["per_class_recall"][str(c)] = hits / support if support else None
    return summary
