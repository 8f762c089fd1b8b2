"""RandomFlip, RandomRotation, RandomZoom (csrc/augment.h): the resampling against
tf.raw_ops.ImageProjectiveTransformV3 and the matrices against Keras's for the same drawn
parameters, the parameters' distributions, thread independence, training-only behaviour, both
engines bit for bit with Dropout, config and save/load round trips, bad arguments."""
import numpy as np
import pytest
from helpers import (
    assert_augment_thread_independent,
    assert_augmenting_engines_agree,
    assert_configs_match_keras,
    assert_configs_round_trip,
    assert_own_seed_on_layer_engine,
    assert_raises_each,
    fit_augmenting,
)

import cnnfast as cf
from cnnfast import backend, layers
from cnnfast.layers.base import reset_names

FILLS = ("reflect", "wrap", "constant", "nearest")
INTERPS = ("bilinear", "nearest")


def images(b=6, h=9, w=7, c=3, seed=0):
    return np.random.default_rng(seed).random((b, h, w, c), dtype=np.float32)


def drawn(layer, b, h, w, seed):
    """(params, transforms) the kernel draws for `layer` on b images of h x w."""
    spec = layer.spec()
    p = np.empty((b, 1 if spec.kind == backend.AugmentKind.rotation else 2), np.float32)
    t = None if spec.kind == backend.AugmentKind.flip else np.empty((b, 8), np.float32)
    backend.augment_params(p, t, spec, h, w, seed)
    return p, t


@pytest.mark.tf
@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("interp", INTERPS)
def test_resampling_matches_tf_projective_transform(tf_keras, fill, interp):
    tf, _ = tf_keras
    x = images()
    for layer in (layers.RandomRotation(0.3), layers.RandomZoom((-0.5, 0.4), (-0.3, 0.6))):
        _, t = drawn(layer, x.shape[0], 9, 7, 123)
        out = np.empty_like(x)
        backend.projective_transform(out, x, t, fill, interp, 0.5)
        ref = tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=t, output_shape=[9, 7], fill_value=0.5,
            interpolation=interp.upper(), fill_mode=fill.upper()).numpy()
        np.testing.assert_array_equal(out, ref)


@pytest.mark.tf
def test_matrices_and_forward_match_keras_for_the_drawn_parameters(tf_keras):
    tf, keras = tf_keras
    x = images(b=5, h=10, w=8)
    rot = layers.RandomRotation((-0.2, 0.3), fill_mode="constant", fill_value=0.25)
    p, t = drawn(rot, 5, 10, 8, 7)
    kr = keras.layers.RandomRotation((-0.2, 0.3))
    z = tf.zeros([5])
    ref = kr._compute_affine_matrix(center_x=0.5, center_y=0.5, angle=tf.constant(p[:, 0]),
                                    translate_x=z, translate_y=z, scale=tf.ones([5]),
                                    shear_x=z, shear_y=z, height=10, width=8).numpy()
    np.testing.assert_allclose(t, ref, rtol=0, atol=2e-6)  # cos/sin of TF vs libm: 1 ulp
    kz = keras.layers.RandomZoom(0.3, 0.2)
    zoom = layers.RandomZoom(0.3, 0.2)
    p, t = drawn(zoom, 5, 10, 8, 7)
    ref = kz._get_zoom_matrix(tf.constant(p[:, ::-1].copy()), 10, 8).numpy()
    np.testing.assert_allclose(t, ref, rtol=0, atol=1e-6)
    # the whole forward = Keras's affine_transform on the same matrix
    out = np.empty_like(x)
    backend.augment_forward(out, x, rot.spec(), 7)
    _, t = drawn(rot, 5, 10, 8, 7)
    ref = keras.ops.image.affine_transform(x, t, fill_mode="constant", fill_value=0.25)
    np.testing.assert_array_equal(out, np.asarray(ref))


def test_flip_reverses_exactly():
    x = images(b=64)
    for mode, axes in (("horizontal", (2,)), ("vertical", (1,)),
                       ("horizontal_and_vertical", (2, 1))):
        layer = layers.RandomFlip(mode)
        p, _ = drawn(layer, 64, 9, 7, 5)
        out = np.empty_like(x)
        backend.augment_forward(out, x, layer.spec(), 5)
        for b in range(64):
            ref = x[b]
            for ax in axes:
                flip = p[b, 0] if ax == 2 else p[b, 1]
                ref = np.flip(ref, ax - 1) if flip else ref
            np.testing.assert_array_equal(out[b], ref)
        if mode == "horizontal":
            assert not p[:, 1].any()
        if mode == "horizontal_and_vertical":  # Keras: one draw flips both axes
            np.testing.assert_array_equal(p[:, 0], p[:, 1])


def test_image_kernels_refuse_an_out_that_overlaps_inp():
    # Not only out is inp: out a view of inp's memory shifted by one pixel (a different pointer,
    # all but that pixel shared) is refused too, by every image kernel; an out right after inp
    # in the same buffer (no byte shared) is accepted and gives what separate arrays give.
    x = images(b=2, h=5, w=4, c=1)
    t = np.tile(np.array([1, 0, 0.5, 0, 1, -0.5, 0, 0], np.float32), (2, 1))
    buf = np.zeros(2 * x.size + 1, np.float32)
    inp = buf[:x.size].reshape(x.shape)
    inp[...] = x
    rot = layers.RandomRotation(0.2).spec()
    calls = {
        "projective_transform": lambda o, i: backend.projective_transform(
            o, i, t, "constant", "bilinear", 0.0),
        "augment_forward": lambda o, i: backend.augment_forward(o, i, rot, 3),
        "augment_inference": lambda o, i: backend.augment_inference(o, i, rot),
        "resize_bilinear": lambda o, i: backend.resize_bilinear(o, i),
        "crop_resize": lambda o, i: backend.crop_resize(o, i, 1, 1),
        "affine_warp": lambda o, i: backend.affine_warp(
            o, i, np.tile(np.array([1, 0, 0.5, 0, 1, 0], np.float64), (2, 1)),
            np.ones(2, np.uint8), "nearest", 1, 0.0),
    }
    for name, call in calls.items():
        for shift in (0, 1, x.size - 1):
            out = buf[shift:shift + x.size].reshape(x.shape)
            with pytest.raises(ValueError, match=rf"{name}: out \(2, 5, 4, 1\) must not alias "
                                                 rf"inp \(2, 5, 4, 1\) \(their memory overlaps\)"):
                call(out, inp)
        apart = buf[x.size:2 * x.size].reshape(x.shape)
        call(apart, inp)
        want = np.empty_like(x)
        call(want, x.copy())
        np.testing.assert_array_equal(apart, want, err_msg=name)
        np.testing.assert_array_equal(inp, x, err_msg=name)  # inp left as it was


def test_parameter_distributions():
    n = 20000
    p, _ = drawn(layers.RandomFlip(), n, 4, 4, 11)
    assert abs(p[:, 0].mean() - 0.5) < 0.02
    p, _ = drawn(layers.RandomRotation((-0.1, 0.3)), n, 4, 4, 12)
    a = p[:, 0]
    lo, hi = -36.0, 108.0  # degrees
    assert lo <= a.min() < lo + 0.5 and hi - 0.5 < a.max() < hi
    assert abs(a.mean() - (lo + hi) / 2) < 1.5 and abs(a.std() - (hi - lo) / 12**0.5) < 1.0
    hist, _ = np.histogram(a, bins=10, range=(lo, hi))
    assert hist.min() > 0.9 * n / 10 and hist.max() < 1.1 * n / 10
    p, _ = drawn(layers.RandomZoom(0.2), n, 4, 4, 13)
    assert np.array_equal(p[:, 0], p[:, 1])  # no width_factor: the aspect ratio is kept
    assert 0.8 <= p.min() < 0.81 and 1.19 < p.max() < 1.2
    p, _ = drawn(layers.RandomZoom((-0.3, 0.1), (0.2, 0.5)), n, 4, 4, 13)
    assert 0.7 <= p[:, 0].min() and p[:, 0].max() < 1.1 and abs(p[:, 0].mean() - 0.9) < 0.01
    assert 1.2 <= p[:, 1].min() and p[:, 1].max() < 1.5 and abs(p[:, 1].mean() - 1.35) < 0.01
    assert abs(np.corrcoef(p[:, 0], p[:, 1])[0, 1]) < 0.03


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
def test_forward_independent_of_threads(threads):
    x = images(b=33, h=28, w=28, c=1)
    for layer in (layers.RandomFlip(), layers.RandomRotation(0.1), layers.RandomZoom(0.1)):
        assert_augment_thread_independent(layer, x, threads)


def aug_model(seed=None):
    reset_names()
    cf.utils.set_random_seed(3)
    return cf.Sequential([
        layers.Input((12, 12, 1)),
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.1, fill_mode="nearest"),
        layers.RandomZoom(0.1, interpolation="nearest"),
        layers.Conv2D(4, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(3, activation="softmax"),
    ])


def data(n=50):
    r = np.random.default_rng(0)
    return r.random((n, 12, 12, 1), np.float32), r.integers(0, 3, n)


def run(native, seed=None):
    x, y = data()
    return fit_augmenting(aug_model(seed), x, y, native)


def test_both_engines_bit_for_bit_with_dropout():
    assert_augmenting_engines_agree(run)


def test_own_seed_runs_on_the_layer_engine_and_augments():
    assert_own_seed_on_layer_engine(run)  # the layer's own generator restarts with the model


def test_training_only():
    x = images(b=4, h=12, w=12, c=1)
    for layer in (layers.RandomFlip(), layers.RandomRotation(0.2), layers.RandomZoom(0.2)):
        np.testing.assert_array_equal(layer(x), x)
        assert not np.array_equal(layer(x, training=True), x)
    m = aug_model()
    no_aug = cf.Sequential([layers.Input((12, 12, 1))] + m.layers[3:])
    np.testing.assert_array_equal(m.predict(x, verbose=0), no_aug.predict(x, verbose=0))
    assert not np.array_equal(m(x, training=True), m(x))


def test_summary_config_and_save_load(tmp_path):
    m = aug_model()
    lines = []
    m.summary(print_fn=lines.append)
    assert any("RandomRotation" in s for s in lines)
    assert sum(lw.size for layer in m.layers[:3] for lw in layer.weights_list) == 0
    assert_configs_round_trip(m.layers[:3])
    c = layers.RandomZoom((-0.2, 0.1), 0.3, fill_mode="wrap", fill_value=1.5,
                          seed=4).get_config()
    assert (c["height_factor"], c["width_factor"], c["fill_mode"], c["fill_value"],
            c["seed"]) == ((-0.2, 0.1), 0.3, "wrap", 1.5, 4)
    assert layers.RandomRotation(-0.3).get_config()["factor"] == (-0.3, 0.3)
    m.compile("adam", "sparse_categorical_crossentropy")
    path = tmp_path / "aug.cnnfast"
    m.save(str(path))
    m2 = cf.models.load_model(str(path))
    assert [type(layer).__name__ for layer in m2.layers[:3]] == \
        ["RandomFlip", "RandomRotation", "RandomZoom"]
    assert m2.layers[1].fill_mode == "nearest" and m2.layers[2].interpolation == "nearest"
    x, _ = data(8)
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))


@pytest.mark.tf
def test_configs_match_keras(tf_keras):
    _, keras = tf_keras
    assert_configs_match_keras([
        (layers.RandomRotation((0.3, -0.1)), keras.layers.RandomRotation((0.3, -0.1))),
        (layers.RandomRotation(0.2), keras.layers.RandomRotation(0.2)),
        (layers.RandomFlip("vertical"), keras.layers.RandomFlip("vertical")),
        (layers.RandomZoom(0.2, (-0.1, 0.3)), keras.layers.RandomZoom(0.2, (-0.1, 0.3))),
    ])


def test_bad_arguments():
    assert_raises_each([
        (NotImplementedError, "fill_mode", lambda: layers.RandomRotation(0.1, fill_mode="mirror")),
        (NotImplementedError, "interpolation",
         lambda: layers.RandomZoom(0.1, interpolation="bicubic")),
        (NotImplementedError, "channels_first",
         lambda: layers.RandomFlip(data_format="channels_first")),
        (ValueError, "factor", lambda: layers.RandomRotation(1.5)),
        (ValueError, "height_factor", lambda: layers.RandomZoom(-1.0)),
        (ValueError, "mode", lambda: layers.RandomFlip("diagonal")),
        (ValueError, "images", lambda: cf.Sequential([layers.Input((10,)), layers.RandomFlip()])),
        (NotImplementedError, "gradient",
         lambda: layers.RandomFlip().backward(np.zeros((1, 2, 2, 1), np.float32),
                                              need_dinp=True)),
    ])
    # an augmentation above a layer with weights: the Net refuses it, the LayerEngine raises
    reset_names()
    m = cf.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(2, 3), layers.RandomFlip(),
                       layers.Flatten(), layers.Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises((NotImplementedError, ValueError), match="augmentation|gradient"):
        m.fit(np.zeros((4, 8, 8, 1), np.float32), np.zeros(4, int), verbose=0)
