"""The fused Conv2D + MaxPool2D inference pass at the model level (docs/fused_inference.md):
predict and evaluate give the same bits with and without it (CNNFAST_FUSED_INFERENCE=0), and a
train step after a fused predict on the same Net is the step it would have been without."""
import numpy as np
import pytest

import cnnfast as cf
from cnnfast import _core
from cnnfast.keras import layers


def tutorial_cnn(seed=0, activity=None):
    """bench/models.py 'cnn' on a smaller input; activity: the first conv's activity
    regularizer."""
    cf.utils.set_random_seed(seed)
    m = cf.keras.Sequential([
        cf.keras.Input((14, 13, 1)),
        layers.Conv2D(32, 3, padding="same", activation="relu", activity_regularizer=activity),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def data(n, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, 14, 13, 1), dtype=np.float32), rng.integers(0, 10, n)


def native_net(model):
    return model._engine_cache["native"].net


@pytest.mark.parametrize("batch", [1, 32, 77])
def test_predict_and_evaluate_equal_the_unfused_bits(batch, monkeypatch):
    x, y = data(203)
    fused, plain = tutorial_cnn(), tutorial_cnn()
    plain.set_weights(fused.get_weights())
    p_fused = fused.predict(x, batch_size=batch, verbose=0)
    e_fused = fused.evaluate(x, y, batch_size=batch, verbose=0)
    if _core.gemm_isa() != "generic":
        assert native_net(fused).fused_ops == [0]  # the first conv (9 taps) and its pool
    monkeypatch.setenv("CNNFAST_FUSED_INFERENCE", "0")
    p_plain = plain.predict(x, batch_size=batch, verbose=0)
    e_plain = plain.evaluate(x, y, batch_size=batch, verbose=0)
    assert native_net(plain).fused_ops == []
    np.testing.assert_array_equal(p_fused, p_plain)
    assert e_fused == e_plain
    # and what the per-layer engine computes, within the fp32 tolerance of its own kernels
    monkeypatch.setenv("CNNFAST_EXECUTOR", "0")
    np.testing.assert_allclose(plain.predict(x, batch_size=batch, verbose=0), p_fused,
                               rtol=1e-5, atol=1e-6)


def test_a_train_step_after_a_fused_predict_is_unchanged():
    """Training runs unfused on the same Net (backward needs the conv output): a predict first
    leaves nothing behind that changes the step."""
    x, y = data(64)
    a, b = tutorial_cnn(), tutorial_cnn()
    b.set_weights(a.get_weights())
    a.predict(x, batch_size=64, verbose=0)
    ha = a.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    hb = b.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0).history
    assert native_net(a) is not None
    assert ha == hb
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))


def test_the_switch_is_read_when_the_net_is_built(monkeypatch):
    monkeypatch.setenv("CNNFAST_FUSED_INFERENCE", "0")
    m = tutorial_cnn()
    m.predict(data(4)[0], verbose=0)
    assert native_net(m).fused_ops == []


def test_an_activity_regularizer_keeps_the_pair_unfused(monkeypatch):
    """Its penalty reads the conv's output, which the fused pass never forms: evaluate's loss
    keeps the penalty, the same bits as with fusion switched off."""
    x, y = data(40)
    models = [tutorial_cnn(activity=cf.keras.regularizers.L2(1e-3)) for _ in range(2)]
    models[1].set_weights(models[0].get_weights())
    got = models[0].evaluate(x, y, batch_size=16, verbose=0)
    assert native_net(models[0]).fused_ops == []
    monkeypatch.setenv("CNNFAST_FUSED_INFERENCE", "0")
    assert models[1].evaluate(x, y, batch_size=16, verbose=0) == got
    # and the penalty is in it: without the regularizer the loss is smaller
    plain = tutorial_cnn()
    plain.set_weights(models[0].get_weights())
    assert plain.evaluate(x, y, batch_size=16, verbose=0)[0] < got[0]
