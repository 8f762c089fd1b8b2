"""keras.metrics.AUC and the confusion counts (cnnfast/metrics.py, docs/keras_semantics.md#auc):
against a float64 NumPy reference written from the definitions (thresholds compared one by
one), against tf.keras 2.21 standalone (several batches, sample and label weights, every curve
and summation method, values on the thresholds) and in fit/evaluate with copied weights, by
string 'auc' in compile, and the arguments it refuses."""
import numpy as np
import pytest
import tf_oracle

import cnnfast as cf
from cnnfast import layers
from cnnfast.layers.base import reset_names

EPS = 1e-7


def _thresholds(num_thresholds=200, thresholds=None):
    inner = sorted(thresholds) if thresholds is not None else \
        [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    return np.array([-EPS] + list(inner) + [1 + EPS])


def _counts(y, p, w, th):
    """(4, T, labels) float64 tp, fp, tn, fn: p > t against y != 0, each element weighted."""
    pos, neg = (y != 0) * w, (y == 0) * w
    above = p[None] > th[:, None, None]  # (T, n, labels)
    tp = (above * pos).sum(1)
    fp = (above * neg).sum(1)
    return np.stack([tp, fp, neg.sum(0) - fp, pos.sum(0) - tp])


def _dnn(a, b):
    return np.where(b != 0, a / np.where(b != 0, b, 1), 0.0)


def reference_auc(y, p, sample_weight=None, curve="ROC", summation="interpolation",
                  multi_label=False, label_weights=None, from_logits=False, **th):
    """AUC from the definitions, float64 (y, p of shape (n, labels))."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    if from_logits:
        p = 1 / (1 + np.exp(-p))
    w = np.ones_like(p) if sample_weight is None else \
        np.broadcast_to(np.asarray(sample_weight, np.float64)[:, None], p.shape)
    if label_weights is not None and not multi_label:
        w = w * np.asarray(label_weights, np.float64)
    if not multi_label:
        y, p, w = y.reshape(-1, 1), p.reshape(-1, 1), w.reshape(-1, 1)
    tp, fp, tn, fn = _counts(y, p, w, _thresholds(**th))
    if curve == "PR" and summation == "interpolation":
        P = tp + fp
        dtp = tp[:-1] - tp[1:]
        slope = _dnn(dtp, np.maximum(P[:-1] - P[1:], 0))
        intercept = tp[1:] - slope * P[1:]
        ok = (P[:-1] > 0) & (P[1:] > 0)
        ratio = np.where(ok, _dnn(P[:-1], P[1:]), 1.0)
        by_label = _dnn(slope * (dtp + intercept * np.log(ratio)), tp[1:] + fn[1:]).sum(0)
    else:
        if curve == "ROC":
            x, yy = _dnn(fp, fp + tn), _dnn(tp, tp + fn)
        else:
            x, yy = _dnn(tp, tp + fn), _dnn(tp, tp + fp)
        h = {"interpolation": (yy[:-1] + yy[1:]) / 2, "minoring": np.minimum(yy[:-1], yy[1:]),
             "majoring": np.maximum(yy[:-1], yy[1:])}[summation]
        by_label = ((x[:-1] - x[1:]) * h).sum(0)
    if not multi_label:
        return by_label[0]
    if label_weights is None:
        return by_label.mean()
    lw = np.asarray(label_weights, np.float64)
    return (by_label * lw).sum() / lw.sum()


def _data(n=300, k=3, seed=0, logits=False):
    r = np.random.default_rng(seed)
    y = (r.random((n, k)) < 0.4).astype(np.float32)
    # scores correlated with the labels, so the curves are not trivial
    p = np.clip(0.35 * y + 0.65 * r.random((n, k)), 0, 1).astype(np.float32)
    if logits:
        p = (4 * (p - 0.5)).astype(np.float32)
    w = (r.random(n) * 2).astype(np.float32)
    return y, p, w


CASES = [
    {},
    {"curve": "PR"},
    {"summation_method": "minoring"},
    {"summation_method": "majoring"},
    {"curve": "PR", "summation_method": "minoring"},
    {"curve": "PR", "summation_method": "majoring"},
    {"num_thresholds": 7},
    {"num_thresholds": 2},
    {"multi_label": True},
    {"multi_label": True, "curve": "PR"},
    {"multi_label": True, "label_weights": [0.5, 2.0, 1.0]},
    {"label_weights": [0.5, 2.0, 1.0]},
    {"from_logits": True},
    {"thresholds": [0.1, 0.25, 0.7, 0.9]},          # uneven: compared one by one
    {"thresholds": [0.25, 0.5, 0.75]},              # even: Keras's bucket form
]


def _ref_kwargs(cfg):
    out = {"curve": cfg.get("curve", "ROC"), "summation": cfg.get("summation_method",
                                                                   "interpolation"),
           "multi_label": cfg.get("multi_label", False),
           "label_weights": cfg.get("label_weights"), "from_logits": cfg.get("from_logits",
                                                                            False)}
    if "thresholds" in cfg:
        out["thresholds"] = cfg["thresholds"]
    elif "num_thresholds" in cfg:
        out["num_thresholds"] = cfg["num_thresholds"]
    return out


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("cfg", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items())
                         or "default")
def test_auc_vs_numpy(cfg, weighted):
    y, p, w = _data(logits=cfg.get("from_logits", False))
    m = cf.metrics.AUC(**cfg)
    for s in (slice(0, 120), slice(120, 300)):   # the state accumulates over batches
        m.update_state(y[s], p[s], w[s] if weighted else None)
    want = reference_auc(y, p, w if weighted else None, **_ref_kwargs(cfg))
    # float32 state and arithmetic against a float64 reference: measured <= 3e-7
    np.testing.assert_allclose(m.result(), want, atol=2e-6)
    m.reset_state()
    assert m.result() == 0.0
    m.update_state(y[:50], p[:50])
    np.testing.assert_allclose(m.result(), reference_auc(y[:50], p[:50], **_ref_kwargs(cfg)),
                               atol=2e-6)


def test_perfect_and_random_scores():
    y = np.array([0, 0, 1, 1], np.float32)
    assert cf.metrics.AUC()(y, np.array([0.1, 0.2, 0.8, 0.9])) == pytest.approx(1.0)
    # Keras's docstring example
    m = cf.metrics.AUC(num_thresholds=3)
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    assert m.result() == pytest.approx(0.75)
    m.reset_state()
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], sample_weight=[1, 0, 0, 1])
    assert m.result() == pytest.approx(1.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="curve"):
        cf.metrics.AUC(curve="XY")
    with pytest.raises(ValueError, match="summation"):
        cf.metrics.AUC(summation_method="simpson")
    with pytest.raises(ValueError, match="num_thresholds"):
        cf.metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="num_labels"):
        cf.metrics.AUC(num_labels=3)
    with pytest.raises(NotImplementedError, match="dtype"):
        cf.metrics.AUC(dtype="float64")
    with pytest.raises(ValueError, match="rank 2"):
        cf.metrics.AUC(multi_label=True).update_state(np.zeros(4), np.zeros(4))
    m = cf.metrics.AUC(multi_label=True)
    m.update_state(np.zeros((4, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="labels"):
        m.update_state(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="does not match"):
        cf.metrics.AUC().update_state(np.zeros((4, 2)), np.zeros((4, 3)))


# ---- tf.keras -----------------------------------------------------------------------------
def _keras_auc(keras, cfg, batches):
    km = keras.metrics.AUC(**cfg)
    for args in batches:
        km.update_state(*[a for a in args if a is not None])
    return float(km.result())


@pytest.mark.tf
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("cfg", CASES + [{"curve": "PRGAIN"}, {"num_thresholds": 50,
                                                              "curve": "PR"}],
                         ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_auc_matches_keras(tf_keras, cfg, weighted):
    tf, keras = tf_keras
    y, p, w = _data(logits=cfg.get("from_logits", False), seed=1)
    batches = [(y[s], p[s], w[s] if weighted else None)
               for s in (slice(0, 100), slice(100, 230), slice(230, 300))]
    m = cf.metrics.AUC(**cfg)
    for args in batches:
        m.update_state(*args)
    want = _keras_auc(keras, cfg, batches)
    tf_oracle.check("AUC", m.result(), want, atol=1e-6, rtol=1e-5)


@pytest.mark.tf
@pytest.mark.parametrize("cfg", [{"num_thresholds": 11}, {"num_thresholds": 11, "curve": "PR"},
                                 {"thresholds": [0.2, 0.4, 0.6, 0.8]},
                                 {"thresholds": [0.1, 0.3, 0.35, 0.8]}])
def test_scores_on_the_thresholds_match_keras(tf_keras, cfg):
    """Scores exactly on a threshold (p > t is false there), at 0 and 1, and outside [0, 1]:
    the bucket form's edges (ceil(p * (T - 1)) - 1, clipped) as Keras computes them."""
    tf, keras = tf_keras
    th = np.array(cfg.get("thresholds", np.arange(1, 10) / 10), np.float32)
    p = np.concatenate([th, [0.0, 1.0, -0.5, 1.5, 0.05, 0.95], th + 1e-7,
                        th - 1e-7]).astype(np.float32)
    r = np.random.default_rng(5)
    y = (r.random(p.shape) < 0.5).astype(np.float32)
    y[:3] = [1, 0, 1]
    m = cf.metrics.AUC(**cfg)
    m.update_state(y, p)
    km = keras.metrics.AUC(**cfg)
    km.update_state(y, p)
    counts = m._state.counts
    for got, var in zip(counts, (km.true_positives, km.false_positives, km.true_negatives,
                                 km.false_negatives)):
        np.testing.assert_array_equal(got, np.asarray(var))
    tf_oracle.check("AUC on thresholds", m.result(), float(km.result()), atol=1e-7, rtol=0)


@pytest.mark.tf
@pytest.mark.parametrize("cls", ["TruePositives", "FalsePositives", "TrueNegatives",
                                 "FalseNegatives", "Precision", "Recall"])
@pytest.mark.parametrize("thresholds", [None, 0.3, [0.2, 0.5, 0.8]])
def test_confusion_counts_match_keras(tf_keras, cls, thresholds):
    tf, keras = tf_keras
    if cls in ("Precision", "Recall") and isinstance(thresholds, list):
        thresholds = [0.3]  # cnnfast's Precision/Recall take one threshold
    y, p, w = _data(n=64, seed=2)
    m = getattr(cf.metrics, cls)(thresholds=thresholds)
    km = getattr(keras.metrics, cls)(thresholds=thresholds)
    for s in (slice(0, 30), slice(30, 64)):
        m.update_state(y[s], p[s], w[s])
        km.update_state(y[s], p[s], w[s])
    np.testing.assert_allclose(np.asarray(m.result(), np.float64),
                               np.asarray(km.result(), np.float64), rtol=1e-6)


def _binary_pair(keras, metrics, weighted_metrics=None):
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    km = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu"),
                           keras.layers.Dense(1, activation="sigmoid")])
    reset_names()
    cm = cf.Sequential([layers.Input((6,)), layers.Dense(5, activation="relu"),
                        layers.Dense(1, activation="sigmoid")])
    cm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy",
               metrics=metrics(keras), weighted_metrics=weighted_metrics and
               weighted_metrics(keras), jit_compile=False)
    cm.compile(optimizer=cf.optimizers.SGD(0.1), loss="binary_crossentropy",
               metrics=metrics(cf), weighted_metrics=weighted_metrics and weighted_metrics(cf))
    return km, cm


def _binary_data(n=96, seed=4):
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.7 * r.standard_normal(n) > 0).astype(np.float32)
    return x, y, (r.random(n) * 2).astype(np.float32)


@pytest.mark.tf
def test_auc_in_fit_and_evaluate_matches_keras(tf_keras):
    tf, keras = tf_keras
    x, y, w = _binary_data()
    km, cm = _binary_pair(
        keras, lambda k: ["auc", k.metrics.AUC(curve="PR", name="pr"), "accuracy"],
        lambda k: [k.metrics.AUC(name="wauc", num_thresholds=50)])
    kw = dict(batch_size=16, epochs=2, shuffle=False, verbose=0, sample_weight=w,
              validation_data=(x[:40], y[:40], w[:40]))
    hk, hc = km.fit(x, y, **kw).history, cm.fit(x, y, **kw).history
    assert sorted(hc) == sorted(hk)
    for key in hk:
        # 2 SGD epochs with copied weights: the outputs differ by ~1e-7, which moves a score
        # across a threshold rarely; measured AUC differences 0 (loss: ~2e-7 relative)
        np.testing.assert_allclose(hc[key], hk[key], rtol=1e-5, atol=1e-6, err_msg=key)
    ek = km.evaluate(x, y, sample_weight=w, batch_size=32, verbose=0, return_dict=True)
    ec = cm.evaluate(x, y, sample_weight=w, batch_size=32, verbose=0, return_dict=True)
    assert sorted(ec) == sorted(ek)
    for key in ek:
        tf_oracle.check(f"AUC evaluate {key}", ec[key], ek[key], atol=1e-6, rtol=1e-5)


def test_auc_compiled_by_string_in_fit_and_evaluate():
    """'auc' in compile is AUC(name='auc'); the epoch's value is the AUC of the model's
    outputs over every batch of the pass (the state is not averaged over batches)."""
    x, y, w = _binary_data()
    reset_names()
    cf.utils.set_random_seed(0)
    m = cf.Sequential([layers.Input((6,)), layers.Dense(1, activation="sigmoid")])
    m.compile("adam", "binary_crossentropy", metrics=["auc"], weighted_metrics=["auc"])
    assert isinstance(m._metrics[0], cf.metrics.AUC) and m._metrics[0].name == "auc"
    h = m.fit(x, y, batch_size=16, epochs=2, verbose=0, sample_weight=w).history
    assert sorted(h) == ["auc", "loss", "weighted_auc"]
    got = m.evaluate(x, y, batch_size=10, sample_weight=w, verbose=0, return_dict=True)
    pred = m.predict(x, verbose=0)
    np.testing.assert_allclose(got["auc"], reference_auc(y[:, None], pred), atol=2e-6)
    np.testing.assert_allclose(got["weighted_auc"], reference_auc(y[:, None], pred, w),
                               atol=2e-6)
    assert got["auc"] != got["weighted_auc"]
