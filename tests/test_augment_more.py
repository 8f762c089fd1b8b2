"""RandomTranslation, RandomContrast, RandomCrop (csrc/augment.h): the transform given the drawn
parameters against NumPy and Keras's own code, the parameters' distributions, thread
independence, training-only behaviour (RandomCrop: Keras's centred crop otherwise), both engines
bit for bit, the Net op, config and save/load round trips, bad arguments."""
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
from cnnfast import _core, backend, layers
from cnnfast.layers.base import reset_names

FILLS = ("reflect", "wrap", "constant", "nearest")


def images(b=6, h=9, w=7, c=3, seed=0, scale=1.0):
    return np.random.default_rng(seed).random((b, h, w, c), dtype=np.float32) * scale


def drawn(layer, b, h, w, seed):
    spec = layer.spec()
    p = np.empty((b, 1 if spec.kind == backend.AugmentKind.contrast else 2), np.float32)
    t = np.empty((b, 8), np.float32)
    backend.augment_params(p, t, spec, h, w, seed)
    return p, t


def contrast_ref(x, f, lo, hi):
    """Keras's _adjust_contrast: the mean over rows, then over columns, per image and channel."""
    m = x.astype(np.float64).mean(axis=1, keepdims=True).astype(np.float32)
    m = m.astype(np.float64).mean(axis=2, keepdims=True).astype(np.float32)
    return np.clip((x - m) * f.reshape(-1, 1, 1, 1) + m, lo, hi)


def smart_window(H, W, h, w):
    ch = max(min(H, int(float(W * h) / w)), 1)
    cw = max(min(W, int(float(H * w) / h)), 1)
    return int(float(H - ch) / 2), int(float(W - cw) / 2), ch, cw


def resize_ref(img, oh, ow):
    """tf.image.resize bilinear (half-pixel centres) in float32, TF's lerp order."""
    B, H, W, C = img.shape

    def weights(out, size):
        s = np.float32(size) / np.float32(out)
        inn = (np.arange(out, dtype=np.float32) + np.float32(0.5)) * s - np.float32(0.5)
        f = np.floor(inn)
        return (np.maximum(f, 0).astype(int), np.minimum(np.ceil(inn), size - 1).astype(int),
                (inn - f).astype(np.float32))

    ylo, yhi, yl = weights(oh, H)
    xlo, xhi, xl = weights(ow, W)
    xl = xl[None, None, :, None]
    tl, tr = img[:, ylo][:, :, xlo], img[:, ylo][:, :, xhi]
    bl, br = img[:, yhi][:, :, xlo], img[:, yhi][:, :, xhi]
    top = tl + (tr - tl) * xl
    bot = bl + (br - bl) * xl
    return top + (bot - top) * yl[None, :, None, None]


# ---- the transforms given the drawn parameters ----

def test_translation_matrix_and_forward_vs_numpy():
    x = images(b=5, h=10, w=8)
    layer = layers.RandomTranslation((-0.3, 0.2), 0.4, fill_mode="constant", fill_value=0.5,
                                     interpolation="nearest")
    p, t = drawn(layer, 5, 10, 8, 7)
    ref = np.zeros((5, 8), np.float32)
    ref[:, 0] = ref[:, 4] = 1
    ref[:, 2], ref[:, 5] = -p[:, 1], -p[:, 0]
    np.testing.assert_array_equal(t, ref)
    out = np.empty_like(x)
    backend.augment_forward(out, x, layer.spec(), 7)
    # nearest with integer-free shifts: output (y, x) reads input (round(y - dy), round(x - dx))
    for b in range(5):
        for yy in range(10):
            for xx in range(8):
                iy, ix = yy - p[b, 0], xx - p[b, 1]
                ry, rx = int(np.round(iy)), int(np.round(ix))
                want = x[b, ry, rx] if 0 <= ry < 10 and 0 <= rx < 8 else 0.5
                # TF rounds half away from zero; np.round rounds half to even: skip exact halves
                if abs(iy - np.floor(iy) - 0.5) > 1e-6 and abs(ix - np.floor(ix) - 0.5) > 1e-6:
                    np.testing.assert_array_equal(out[b, yy, xx], want)


@pytest.mark.tf
@pytest.mark.parametrize("fill", FILLS)
def test_translation_matches_keras_for_the_drawn_parameters(tf_keras, fill):
    tf, keras = tf_keras
    x = images(b=5, h=10, w=8)
    layer = layers.RandomTranslation(0.3, (-0.2, 0.5), fill_mode=fill, fill_value=0.25)
    p, t = drawn(layer, 5, 10, 8, 11)
    kl = keras.layers.RandomTranslation(0.3, (-0.2, 0.5), fill_mode=fill, fill_value=0.25)
    # Keras's translations are (dx, dy) per image
    ref_t = kl._get_translation_matrix(tf.constant(p[:, ::-1].copy())).numpy()
    np.testing.assert_array_equal(t, ref_t)
    out = np.empty_like(x)
    backend.augment_forward(out, x, layer.spec(), 11)
    ref = kl.transform_images(tf.constant(x), {"translations": tf.constant(p[:, ::-1].copy()),
                                               "input_shape": x.shape}, training=True)
    np.testing.assert_array_equal(out, np.asarray(ref))


def test_contrast_vs_numpy():
    x = images(b=7, h=9, w=11, c=3, scale=255.0)
    layer = layers.RandomContrast((0.4, 0.9))
    p, _ = drawn(layer, 7, 9, 11, 3)
    out = np.empty_like(x)
    backend.augment_forward(out, x, layer.spec(), 3)
    ref = contrast_ref(x, p[:, 0], 0.0, 255.0)
    # the means are summed in double here and in the kernel, rounded to float32 after each
    # stage in both: measured max abs difference 0 (bound 1 ulp of 255)
    np.testing.assert_allclose(out, ref, rtol=0, atol=3e-5)
    assert (out >= 0).all() and (out <= 255).all() and (out == 255).any()
    small = layers.RandomContrast(0.5, value_range=(0.2, 0.7))
    p, _ = drawn(small, 7, 9, 11, 4)
    backend.augment_forward(out, x / 255, small.spec(), 4)
    np.testing.assert_allclose(out, contrast_ref(x / 255, p[:, 0], 0.2, 0.7), rtol=0, atol=1e-6)


@pytest.mark.tf
def test_contrast_matches_keras_for_the_drawn_factors(tf_keras):
    tf, keras = tf_keras
    x = images(b=6, h=12, w=10, c=3, scale=255.0)
    layer = layers.RandomContrast((0.3, 0.6))
    p, _ = drawn(layer, 6, 12, 10, 5)
    out = np.empty_like(x)
    backend.augment_forward(out, x, layer.spec(), 5)
    kl = keras.layers.RandomContrast((0.3, 0.6))
    ref = kl.transform_images(tf.constant(x),
                              {"contrast_factor": tf.constant(p.reshape(-1, 1, 1, 1))},
                              training=True)
    # TF's float32 reduce_mean vs the double sums here: measured max abs 3.1e-05 on 0..255
    np.testing.assert_allclose(out, np.asarray(ref), rtol=0, atol=1e-4)


@pytest.mark.parametrize("hw", [(5, 4), (9, 7), (1, 1)])
def test_crop_training_window_is_a_slice_shared_by_the_batch(hw):
    h, w = hw
    x = images(b=4, h=10, w=8)
    layer = layers.RandomCrop(h, w)
    for seed in range(20):
        p, _ = drawn(layer, 4, 10, 8, seed)
        assert (p == p[0]).all()  # one window per batch, as Keras
        h0, w0 = int(p[0, 0]), int(p[0, 1])
        out = np.empty((4, h, w, 3), np.float32)
        backend.augment_forward(out, x, layer.spec(), seed)
        np.testing.assert_array_equal(out, x[:, h0:h0 + h, w0:w0 + w])


def test_resize_bilinear_vs_numpy():
    x = images(b=2, h=7, w=5, c=2)
    for oh, ow in ((3, 9), (7, 5), (14, 2), (1, 1)):
        out = np.empty((2, oh, ow, 2), np.float32)
        backend.resize_bilinear(out, x)
        np.testing.assert_array_equal(out, resize_ref(x, oh, ow))


@pytest.mark.parametrize("interp", ("bilinear", "nearest"))
def test_fill_pixel_follows_each_calls_fill_value_and_channels(interp):
    # The pixel read outside the image lives in scratch the kernel reuses from call to call:
    # each call must see its own fill_value, for its own channel count (more, fewer, more).
    for c, fill in ((5, 2.0), (2, -1.0), (7, 0.25), (1, 3.5)):
        x = images(b=3, h=4, w=6, c=c)
        # output column x reads input column x + 3 (an integer shift: the bilinear weights of
        # the neighbour are 0, so the values are exact)
        t = np.tile(np.array([1, 0, 3, 0, 1, 0, 0, 0], np.float32), (3, 1))
        out = np.empty_like(x)
        backend.projective_transform(out, x, t, "constant", interp, fill)
        np.testing.assert_array_equal(out[:, :, :3], x[:, :, 3:])
        np.testing.assert_array_equal(out[:, :, 3:], np.full((3, 4, 3, c), fill, np.float32))


@pytest.mark.tf
def test_resize_and_crop_match_tf(tf_keras):
    tf, keras = tf_keras
    x = images(b=3, h=7, w=10, c=2)
    for oh, ow in ((3, 9), (12, 4), (7, 10)):
        out = np.empty((3, oh, ow, 2), np.float32)
        backend.resize_bilinear(out, x)
        ref = tf.image.resize(x, (oh, ow), method="bilinear").numpy()
        np.testing.assert_array_equal(out, ref)
    for h, w in ((4, 4), (12, 5), (7, 12), (9, 3), (5, 10)):
        # inference: Keras's documented rule, its smart_resize (the centred window of the
        # crop's aspect ratio, resized)
        out = np.empty((3, h, w, 2), np.float32)
        backend.augment_inference(out, x, layers.RandomCrop(h, w).spec())
        ref = keras.preprocessing.image.smart_resize(x, (h, w))
        np.testing.assert_array_equal(out, np.asarray(ref))
        # training on an image not larger in both axes: Keras 3's deterministic fallback
        kl = keras.layers.RandomCrop(h, w)
        if not (7 > h and 10 > w):
            backend.augment_forward(out, x, layers.RandomCrop(h, w).spec(), 1)
            ref = kl(x, training=True)
            np.testing.assert_array_equal(out, np.asarray(ref))


@pytest.mark.tf
def test_crop_start_rule_matches_keras(tf_keras):
    _, keras = tf_keras
    for H, W, h, w in ((6, 8, 8, 4), (10, 8, 4, 8), (5, 5, 5, 5), (3, 9, 6, 6)):
        x = np.zeros((1, H, W, 1), np.float32)
        kl = keras.layers.RandomCrop(h, w)
        k0 = [int(v) for v in kl.get_random_transformation(x, training=True)]
        p, _ = drawn(layers.RandomCrop(h, w), 1, H, W, 0)
        assert [int(v) for v in p[0]] == k0, (H, W, h, w)


# ---- the draws ----

def test_parameter_distributions():
    n = 20000
    p, _ = drawn(layers.RandomTranslation((-0.1, 0.3), 0.2), n, 10, 20, 5)
    dy, dx = p[:, 0], p[:, 1]
    assert -1.0 <= dy.min() < -0.99 and 2.99 < dy.max() < 3.0
    assert -4.0 <= dx.min() < -3.99 and 3.99 < dx.max() < 4.0
    assert abs(dy.mean() - 1.0) < 0.03 and abs(dx.mean()) < 0.05
    assert abs(dx.std() - 8 / 12**0.5) < 0.05
    hist, _ = np.histogram(dy, bins=10, range=(-1, 3))
    assert hist.min() > 0.9 * n / 10 and hist.max() < 1.1 * n / 10
    assert abs(np.corrcoef(dy, dx)[0, 1]) < 0.03
    p, _ = drawn(layers.RandomContrast(0.5), n, 4, 4, 6)  # Keras 3: [1, 1.5]
    assert 1.0 <= p.min() < 1.001 and 1.499 < p.max() < 1.5 and abs(p.mean() - 1.25) < 0.005
    p, _ = drawn(layers.RandomContrast((0.2, 0.3)), n, 4, 4, 6)  # [0.8, 1.3]
    assert 0.8 <= p.min() < 0.801 and 1.299 < p.max() < 1.3 and abs(p.mean() - 1.05) < 0.005
    # crop starts: uniform over the 0..H-h positions, one per batch (one draw per seed)
    starts = []
    for seed in range(6000):
        q, _ = drawn(layers.RandomCrop(7, 5), 1, 10, 8, seed)
        starts.append(q[0])
    starts = np.array(starts, int)
    for col, m in ((0, 4), (1, 4)):
        counts = np.bincount(starts[:, col], minlength=m)
        assert len(counts) == m and counts.min() > 0.9 * 6000 / m, counts
    assert abs(np.corrcoef(starts[:, 0], starts[:, 1])[0, 1]) < 0.05


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
def test_forward_independent_of_threads(threads):
    x = images(b=33, h=28, w=28, c=1, scale=255.0)
    for layer in (layers.RandomTranslation(0.1, 0.1), layers.RandomContrast(0.3),
                  layers.RandomCrop(24, 24), layers.RandomCrop(30, 20)):
        assert_augment_thread_independent(layer, x, threads)


# ---- in models ----

def aug_model(seed=None):
    reset_names()
    cf.utils.set_random_seed(3)
    return cf.Sequential([
        layers.Input((14, 13, 1)),
        layers.RandomCrop(12, 12, seed=seed),
        layers.RandomTranslation(0.1, 0.2, fill_mode="nearest"),
        layers.RandomContrast(0.3, value_range=(0, 1)),
        layers.Conv2D(4, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(3, activation="softmax"),
    ])


def data(n=50):
    r = np.random.default_rng(0)
    return r.random((n, 14, 13, 1), np.float32), r.integers(0, 3, n)


def run(native, seed=None):
    x, y = data()
    return fit_augmenting(aug_model(seed), x, y, native)


def test_both_engines_bit_for_bit_with_dropout():
    m1, m2 = assert_augmenting_engines_agree(run)
    x, _ = data(9)
    np.testing.assert_array_equal(m1.predict(x, verbose=0), m2.predict(x, verbose=0))


def test_own_seed_runs_on_the_layer_engine():
    assert_own_seed_on_layer_engine(run)


def test_inference_rules():
    x = images(b=4, h=14, w=13, c=1)
    for layer in (layers.RandomTranslation(0.2, 0.2), layers.RandomContrast(0.5, (0, 1))):
        np.testing.assert_array_equal(layer(x), x)
        assert not np.array_equal(layer(x, training=True), x)
    crop = layers.RandomCrop(12, 12)
    h0, w0, ch, cw = smart_window(14, 13, 12, 12)
    ref = np.empty((4, 12, 12, 1), np.float32)
    backend.resize_bilinear(ref, np.ascontiguousarray(x[:, h0:h0 + ch, w0:w0 + cw]))
    np.testing.assert_array_equal(crop(x), ref)
    m = aug_model()
    centred = cf.Sequential([layers.Input((14, 13, 1)), layers.RandomCrop(12, 12)] + m.layers[3:])
    np.testing.assert_array_equal(m.predict(x, verbose=0), centred.predict(x, verbose=0))
    assert not np.array_equal(m(x, training=True), m(x))


def test_summary_config_and_save_load(tmp_path):
    m = aug_model()
    lines = []
    m.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "RandomCrop" in text and "(None, 12, 12, 1)" in text and "RandomContrast" in text
    assert_configs_round_trip(m.layers[:3])
    c = layers.RandomTranslation((-0.2, 0.1), 0.3, fill_mode="wrap", fill_value=1.5,
                                 seed=4).get_config()
    assert (c["height_factor"], c["width_factor"], c["fill_mode"], c["fill_value"],
            c["seed"]) == ((-0.2, 0.1), 0.3, "wrap", 1.5, 4)
    assert layers.RandomContrast(0.4).get_config()["factor"] == (0.0, 0.4)
    m.compile("adam", "sparse_categorical_crossentropy")
    path = tmp_path / "aug.cnnfast"
    m.save(str(path))
    m2 = cf.models.load_model(str(path))
    assert [type(layer).__name__ for layer in m2.layers[:3]] == \
        ["RandomCrop", "RandomTranslation", "RandomContrast"]
    assert m2.layers[1].fill_mode == "nearest" and m2.layers[2].value_range == (0, 1)
    x, _ = data(8)
    np.testing.assert_array_equal(m.predict(x, verbose=0), m2.predict(x, verbose=0))


@pytest.mark.tf
def test_configs_match_keras(tf_keras):
    _, keras = tf_keras
    assert_configs_match_keras([
        (layers.RandomTranslation((0.3, -0.1), 0.2),
         keras.layers.RandomTranslation((0.3, -0.1), 0.2)),
        (layers.RandomContrast(0.2), keras.layers.RandomContrast(0.2)),
        (layers.RandomContrast((0.1, 0.4), (0, 1)),
         keras.layers.RandomContrast((0.1, 0.4), (0, 1))),
        (layers.RandomCrop(5, 6, seed=2), keras.layers.RandomCrop(5, 6, seed=2)),
    ])


def test_bad_arguments():
    assert_raises_each([
        (ValueError, "height_factor", lambda: layers.RandomTranslation(1.5, 0.1)),
        (ValueError, "width_factor", lambda: layers.RandomTranslation(0.1, (-0.2, 1.2))),
        (NotImplementedError, "fill_mode",
         lambda: layers.RandomTranslation(0.1, 0.1, fill_mode="mirror")),
        (ValueError, "factor", lambda: layers.RandomContrast(1.5)),
        (ValueError, "value_range", lambda: layers.RandomContrast(0.1, value_range=(1, 0))),
        (ValueError, "height", lambda: layers.RandomCrop(0, 3)),
        (ValueError, "width", lambda: layers.RandomCrop(3, 2.5)),
        (NotImplementedError, "channels_first",
         lambda: layers.RandomCrop(3, 3, data_format="channels_first")),
        (ValueError, "images",
         lambda: cf.Sequential([layers.Input((10,)), layers.RandomCrop(2, 2)])),
        (ValueError, "augment_forward",
         lambda: backend.augment_forward(np.empty((1, 4, 4, 1), np.float32),
                                         np.empty((1, 6, 6, 1), np.float32),
                                         layers.RandomCrop(3, 3).spec(), 0)),
        (ValueError, "crop_resize",
         lambda: backend.crop_resize(np.empty((1, 2, 2, 1), np.float32),
                                     np.empty((1, 4, 4, 1), np.float32), 4, 0)),
    ])


def test_augment_kinds_keep_their_numbers():
    # the kinds are appended, never renumbered (saved Net specs and the C++ switch rely on it)
    assert {k: int(v) for k, v in backend.AugmentKind.__members__.items()} == \
        {"flip": 0, "rotation": 1, "zoom": 2, "translation": 3, "contrast": 4, "crop": 5}
    assert int(_core.OpKind.augment) == 8
