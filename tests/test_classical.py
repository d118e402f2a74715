"""KNN and SVM behind the Predictor interface: wrappers on small subsets, safe loading, and the
study's exact KNN result on the seed_holdout split (the full SVM fit is kept out of CI)."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest
import skops.io as sio
import yaml
from sklearn.metrics import classification_report as sk_report
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC

from mnist_gen import paths
from mnist_gen.data.splits import seed_holdout_split
from mnist_gen.errors import UserError
from mnist_gen.models.classical import FORMAT, ClassicalModel, _libsvm_scores, build_classical
from mnist_gen.models.predictors import Predictor

SMALL = 2000
N_TEST = 1000


def _config(name: str) -> dict:
    return yaml.safe_load((paths.CONFIG_DIR / "model" / f"{name}.yaml").read_text())


def _pixels(images):
    return images.reshape(len(images), -1) / 255.0


@pytest.fixture(scope="module")
def split(mnist):
    return seed_holdout_split(mnist)


@pytest.fixture(scope="module", params=["knn", "svm"])
def small(request, split):
    cfg = {**_config(request.param), "max_train_samples": SMALL}
    return build_classical(cfg).fit(split.x_train, split.y_train, progress=False)


# -- configs ------------------------------------------------------------------------------------


def test_configs_build_the_study_estimators(split):
    knn, svm = _config("knn"), _config("svm")
    for cfg in (knn, svm):
        assert cfg["kind"] == "classical" and {"name", "study", "params"} <= set(cfg)
    assert knn["study"]["mnist_accuracy"] == 0.9712857142857143
    assert svm["study"]["mnist_accuracy"] == 0.963
    x, y = split.x_train[:300], split.y_train[:300]
    k = build_classical(knn).fit(x, y, progress=False).estimator_
    assert isinstance(k, KNeighborsClassifier) and k.n_neighbors == 3
    s = build_classical(svm).fit(x, y, progress=False).estimator_
    assert isinstance(s, Pipeline) and [type(step) for _, step in s.steps] == [StandardScaler, SVC]
    assert s[-1].gamma == "scale" and s[-1].kernel == "rbf" and s[-1].probability in (False, "deprecated")  # no Platt scaling


@pytest.mark.parametrize("cfg, match", [
    ({"name": "x", "estimator": "tree"}, "kind must be one of"),
    ({"name": "x", "estimator": "knn", "params": {"n_neighbours": 3}}, "n_neighbours"),
    ({"name": "x", "estimator": "svm", "params": {"decision_function_shape": "ovo"}}, "ovr"),
    ({"name": "x", "estimator": "svm", "max_train_samples": 0}, "max_train_samples"),
    ({"name": "x"}, "missing 'estimator'"),
])
def test_bad_configs_are_one_clear_user_error(cfg, match):
    with pytest.raises(UserError, match=match):
        build_classical(cfg)


def test_float_images_are_refused_not_silently_rescaled(split):
    with pytest.raises(UserError, match="uint8"):
        ClassicalModel("knn", "knn", {"n_neighbors": 3}).fit(split.x_train[:100] / 255.0, split.y_train[:100])


def test_max_train_samples_is_a_fixed_stratified_subset(split):
    a = ClassicalModel("knn", "knn", {"n_neighbors": 3}, max_train_samples=500).fit(
        split.x_train, split.y_train, progress=False)
    b = ClassicalModel("knn", "knn", {"n_neighbors": 3}, max_train_samples=500).fit(
        split.x_train, split.y_train, progress=False)
    assert a.n_train == 500 and np.array_equal(a.estimator_._fit_X, b.estimator_._fit_X)
    counts = np.bincount(a.estimator_._y, minlength=10)
    expected = 500 * np.bincount(split.y_train, minlength=10) / len(split.y_train)
    assert np.all(np.abs(counts - expected) <= 1)


# -- the wrappers on a 2,000-image subset ----------------------------------------------------


def test_predict_proba_shape_and_sums(small, split):
    assert isinstance(small, Predictor) and small.n_train == SMALL
    proba = small.predict_proba(split.x_test[:N_TEST])
    assert proba.shape == (N_TEST, 10) and proba.dtype.kind == "f"
    assert np.all(proba >= 0) and np.allclose(proba.sum(axis=1), 1.0)
    assert small.predict_proba(split.x_test[:0]).shape == (0, 10)
    acc = (proba.argmax(axis=1) == split.y_test[:N_TEST]).mean()
    assert acc > 0.85  # 2,000 training images: a sane model, not a constant


def test_argmax_equals_predict_and_the_estimators_predict(small, split):
    x = split.x_test[:N_TEST]
    pred = small.predict(x)
    assert np.array_equal(pred, small.predict_proba(x).argmax(axis=1))
    assert np.array_equal(pred, small.estimator_.predict(_pixels(x)))


def test_svm_scores_follow_libsvm_vote_ties(split):
    """sklearn's ovr decision function breaks vote ties by confidence, libsvm's predict by lowest
    class; on this subset the naive argmax disagrees with predict on some rows, ours never does."""
    svm = build_classical({**_config("svm"), "max_train_samples": SMALL}).fit(split.x_train, split.y_train, progress=False)
    x = split.x_test[:N_TEST]
    naive = svm.estimator_.decision_function(_pixels(x)).argmax(axis=1)
    truth = svm.estimator_.predict(_pixels(x))
    assert (naive != truth).sum() > 0  # the case exists, so this test can fail
    assert np.array_equal(svm.predict_proba(x).argmax(axis=1), truth)
    assert svm.num_params == svm.estimator_[-1].dual_coef_.size + 45


def test_libsvm_scores_unit():
    dec = np.array([[2.1, 2.3, 0.0] + [0.0] * 7,    # tie on 2 votes: libsvm picks class 0
                    [1.0, 2.2, 0.1] + [0.0] * 7])   # no tie: unchanged
    out = _libsvm_scores(dec, break_ties=False)
    assert out.argmax(axis=1).tolist() == [0, 1]
    assert sorted(out[0]) == sorted(dec[0]) and np.array_equal(out[1], dec[1])
    assert np.array_equal(_libsvm_scores(dec, break_ties=True), dec)


def test_knn_num_params_is_none(split):
    assert ClassicalModel("knn", "knn", {"n_neighbors": 3}).fit(split.x_train[:50], split.y_train[:50],
                                                                progress=False).num_params is None


# -- persistence --------------------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_outputs(small, split, tmp_path):
    from mnist_gen.models.predictors import load_predictor

    path = small.save(tmp_path / "model.skops")
    assert sorted(os.listdir(tmp_path)) == ["model.skops"]  # atomic write leaves no temp file
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # ordinary file mode, not a private temp file's
    x = split.x_test[:N_TEST]
    for loaded in (ClassicalModel.load(path), load_predictor(tmp_path)):
        assert isinstance(loaded, ClassicalModel) and loaded.name == small.name and loaded.kind == small.kind
        assert loaded.params == small.params and loaded.n_train == SMALL and loaded.fit_time_s == small.fit_time_s
        assert np.array_equal(loaded.predict_proba(x), small.predict_proba(x))


def _tamper_schema(src: bytes, old: str, new: str) -> bytes:
    zin, out = zipfile.ZipFile(io.BytesIO(src)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "schema.json":
                assert old.encode() in data
                data = data.replace(old.encode(), new.encode())
            zout.writestr(item, data)
    return out.getvalue()


def test_tampered_file_with_a_foreign_type_is_refused(small, tmp_path):
    good = small.save(tmp_path / "good.skops").read_bytes()
    cls = "KNeighborsClassifier" if small.kind == "knn" else "SVC"
    bad = tmp_path / "bad.skops"
    bad.write_bytes(_tamper_schema(good, f'"__class__": "{cls}"', '"__class__": "system"'))
    with pytest.raises(UserError, match="Refusing to load .*bad.skops"):
        ClassicalModel.load(bad)


def test_unknown_type_is_refused_before_anything_is_built(tmp_path):
    # A well-formed skops file whose estimator would call os.system: never instantiated.
    path = tmp_path / "evil.skops"
    sio.dump({"format": FORMAT, "version": 1, "meta": json.dumps({"name": "x", "kind": "knn", "params": {}}),
              "estimator": FunctionTransformer(os.system)}, path)
    with pytest.raises(UserError, match=r"Refusing to load .*evil\.skops.*posix\.system"):
        ClassicalModel.load(path)


def test_wrong_estimator_for_kind_and_foreign_files_are_refused(split, tmp_path):
    knn = ClassicalModel("knn", "knn", {"n_neighbors": 3}).fit(split.x_train[:100], split.y_train[:100], progress=False)
    path = tmp_path / "swapped.skops"
    sio.dump({"format": FORMAT, "version": 1, "meta": json.dumps({"name": "svm", "kind": "svm", "params": {}}),
              "estimator": knn.estimator_}, path)
    with pytest.raises(UserError, match="does not match its kind"):
        ClassicalModel.load(path)
    other = tmp_path / "other.skops"
    sio.dump({"weights": np.zeros(3)}, other)
    with pytest.raises(UserError, match="other.skops"):
        ClassicalModel.load(other)
    junk = tmp_path / "junk.skops"
    junk.write_bytes(b"\x80\x04not a zip")
    with pytest.raises(UserError, match="junk.skops"):
        ClassicalModel.load(junk)
    with pytest.raises(UserError, match="missing.skops"):
        ClassicalModel.load(tmp_path / "missing.skops")


# -- the study's KNN, exactly -------------------------------------------------------------------

STUDY_KNN_SUPPORT = [1343, 1600, 1380, 1433, 1295, 1273, 1396, 1503, 1357, 1420]
STUDY_KNN_4DP = {  # the study's per-class table (4 decimals), reproduced by sklearn on this split
    "precision": [0.9759, 0.9590, 0.9737, 0.9658, 0.9720, 0.9755, 0.9829, 0.9664, 0.9883, 0.9583],
    "recall": [0.9940, 0.9944, 0.9659, 0.9644, 0.9637, 0.9694, 0.9907, 0.9760, 0.9352, 0.9549],
    "f1-score": [0.9849, 0.9764, 0.9698, 0.9651, 0.9678, 0.9724, 0.9868, 0.9712, 0.9610, 0.9566],
}


def test_knn_reproduces_the_study_exactly_on_seed_holdout(split):
    from mnist_gen.evaluation.metrics import classification_report

    knn = build_classical(_config("knn")).fit(split.x_train, split.y_train, progress=False)
    pred = knn.predict(split.x_test)
    assert (pred == split.y_test).mean() == 0.9712857142857143
    sk = sk_report(split.y_test, pred, output_dict=True, labels=range(10), zero_division=0)
    assert sk["accuracy"] == 0.9712857142857143
    assert [sk[str(c)]["support"] for c in range(10)] == STUDY_KNN_SUPPORT
    for key, values in STUDY_KNN_4DP.items():
        assert [round(sk[str(c)][key], 4) for c in range(10)] == values, key
    ours = classification_report(split.y_test, pred)  # the project's one metrics path
    assert ours["accuracy"] == pytest.approx(sk["accuracy"], abs=1e-6)
    for c in map(str, range(10)):
        assert ours[c]["support"] == sk[c]["support"]
        for key in STUDY_KNN_4DP:
            assert ours[c][key] == pytest.approx(sk[c][key], abs=1e-6)
