"""ImageDataGenerator's channel_shift_range, brightness_range, zca_whitening / zca_epsilon,
interpolation orders 2-5, data_format='channels_first' and preprocessing_function, against
Keras's own legacy ImageDataGenerator (keras/src/legacy/preprocessing/image.py; marked `tf`):
the draws with a seed, the transform given its parameters, fit's statistics and the ZCA matrix,
standardize, and flow's batches rebuilt from their parameters; the draws' distributions; the
arguments still unsupported."""
import numpy as np
import pytest

from cnnfast.keras.preprocessing.image import ImageDataGenerator
from cnnfast.utils.image_data_generator import NumpyArrayIterator

pytestmark = pytest.mark.filterwarnings("ignore:This ImageDataGenerator specifies")


def images(n=20, h=7, w=6, c=3, seed=0, lo=0.0, hi=255.0):
    r = np.random.default_rng(seed)
    return (lo + r.random((n, h, w, c), dtype=np.float32) * (hi - lo)).astype(np.float32)


def _keras(tf, **kw):
    return tf.keras.preprocessing.image.ImageDataGenerator(**kw)


@pytest.mark.tf
def test_channel_shift_and_brightness_draws_and_transform_match_keras(tf_keras):
    tf, _ = tf_keras
    pytest.importorskip("PIL")
    pytest.importorskip("scipy")
    kw = dict(rotation_range=20, width_shift_range=0.1, horizontal_flip=True, vertical_flip=True,
              channel_shift_range=40.0, brightness_range=(0.4, 1.6), fill_mode="reflect")
    ours, theirs = ImageDataGenerator(**kw), _keras(tf, **kw)
    for lo, hi in ((0.0, 255.0), (-1.0, 1.0), (0.0, 900.0)):  # Keras's local rescaling too
        x = images(n=8, lo=lo, hi=hi, seed=int(hi))
        for i in range(8):
            p = ours.get_random_transform(x[i].shape, seed=7 + i)
            assert p == theirs.get_random_transform(x[i].shape, seed=7 + i)
            assert p["channel_shift_intensity"] is not None and p["brightness"] is not None
            a, b = ours.apply_transform(x[i], p), theirs.apply_transform(x[i].copy(), p)
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    # each alone, with and without the affine part; 1-channel images (Pillow's 'L')
    x = images(n=3, c=1)
    for p in ({"channel_shift_intensity": 33.5}, {"brightness": 0.7},
              {"channel_shift_intensity": -80.0, "flip_horizontal": True, "theta": 10.0},
              {"brightness": 1.3, "flip_vertical": True, "zx": 0.8}):
        for i in range(3):
            np.testing.assert_array_equal(ours.apply_transform(x[i], p),
                                          theirs.apply_transform(x[i].copy(), p))


@pytest.mark.tf
def test_flow_batches_with_shift_and_brightness_match_keras_given_the_draws(tf_keras):
    """Each image of a flow() batch is Keras's apply_transform + standardize of the parameters
    drawn for it (the iterator's own stream; Keras's draws cannot be reproduced)."""
    tf, _ = tf_keras
    pytest.importorskip("PIL")
    kw = dict(shear_range=10, zoom_range=0.2, channel_shift_range=25.0,
              brightness_range=[0.5, 1.5], rescale=1 / 255.0, samplewise_center=True,
              preprocessing_function=lambda a: a * 0.5 + 10.0)
    ours, theirs = ImageDataGenerator(**kw), _keras(tf, **kw)
    x = images(n=10)
    it = ours.flow(x, batch_size=4, shuffle=False, seed=3)
    for idx in range(len(it)):
        batch = it[idx]
        rs = it._stream(0, 1, idx)
        for i, j in enumerate(range(4 * idx, min(4 * idx + 4, 10))):
            p = ours._draw(x[j].shape, rs)
            ref = theirs.standardize(theirs.apply_transform(x[j].copy(), p))
            np.testing.assert_array_equal(batch[i], ref.astype(np.float32))


def test_draw_distributions():
    g = ImageDataGenerator(channel_shift_range=30.0, brightness_range=(0.2, 0.9))
    rs = np.random.RandomState(5)
    draws = [g._draw((8, 8, 3), rs) for _ in range(4000)]
    s = np.array([d["channel_shift_intensity"] for d in draws])
    b = np.array([d["brightness"] for d in draws])
    assert s.min() >= -30 and s.max() <= 30 and b.min() >= 0.2 and b.max() <= 0.9
    # uniform: mean and standard deviation within 4 standard errors of range/sqrt(12)
    for v, lo, hi in ((s, -30, 30), (b, 0.2, 0.9)):
        sd = (hi - lo) / np.sqrt(12)
        assert abs(v.mean() - (lo + hi) / 2) < 4 * sd / np.sqrt(len(v))
        assert abs(v.std() - sd) < 0.05 * sd
        hist = np.histogram(v, bins=10, range=(lo, hi))[0]
        assert hist.min() > 300 and hist.max() < 500  # 400 expected per bin
    plain = ImageDataGenerator()._draw((8, 8, 3), rs)
    assert plain["channel_shift_intensity"] is None and plain["brightness"] is None


@pytest.mark.tf
@pytest.mark.parametrize("eps", [1e-6, 0.1])
def test_zca_matrix_and_standardize_match_keras(tf_keras, eps):
    tf, _ = tf_keras
    x = images(n=40, h=4, w=3, c=1, seed=9)
    kw = dict(zca_whitening=True, zca_epsilon=eps, rescale=1 / 255.0)
    ours, theirs = ImageDataGenerator(**kw), _keras(tf, **kw)
    assert ours.featurewise_center  # zca_whitening turns it on, as Keras
    ours.fit(x)
    theirs.fit(x)
    np.testing.assert_array_equal(ours.mean, theirs.mean)
    assert ours.zca_whitening_matrix.dtype == theirs.zca_whitening_matrix.dtype
    np.testing.assert_array_equal(ours.zca_whitening_matrix, theirs.zca_whitening_matrix)
    for i in range(4):
        a, b = ours.standardize(x[i].copy()), theirs.standardize(x[i].copy())
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_zca_whitens():
    """The ZCA formula: U diag(sqrt(n) / (s + eps)) U^T of the centred data's SVD, so the
    whitened data has (nearly) the identity as covariance and the matrix is symmetric."""
    x = images(n=200, h=3, w=6, c=1, seed=4) / 255.0
    g = ImageDataGenerator(zca_whitening=True, zca_epsilon=1e-9)
    g.fit(x)
    m = g.zca_whitening_matrix
    np.testing.assert_allclose(m, m.T, atol=1e-9)
    flat = (x - g.mean).reshape(200, -1).astype(np.float64)
    u, s, _ = np.linalg.svd(flat.T, full_matrices=False)
    np.testing.assert_allclose(m, (u * (np.sqrt(200) / (s + 1e-9))) @ u.T, rtol=2e-3,
                               atol=2e-3)  # float32 vs float64 SVD of the same data
    white = np.stack([g.standardize(xi.copy()) for xi in x]).reshape(200, -1)
    np.testing.assert_allclose(white.T @ white / 200, np.eye(18), atol=2e-3)
    # before fit: a warning, the image unchanged apart from the (unfitted) centring
    with pytest.warns(UserWarning, match="zca_whitening"):
        ImageDataGenerator(zca_whitening=True).standardize(x[0].copy())


@pytest.mark.tf
@pytest.mark.parametrize("order", [2, 3, 5])
def test_spline_orders_match_keras(tf_keras, order):
    tf, _ = tf_keras
    pytest.importorskip("scipy")
    x = images(n=2)
    for fill in ("reflect", "constant", "nearest", "wrap"):
        ours = ImageDataGenerator(interpolation_order=order, fill_mode=fill, cval=3.0)
        theirs = _keras(tf, interpolation_order=order, fill_mode=fill, cval=3.0)
        p = {"theta": 17.0, "tx": 1.5, "shear": 4.0, "zy": 1.2, "flip_horizontal": True}
        np.testing.assert_array_equal(ours.apply_transform(x[0], p),
                                      theirs.apply_transform(x[0].copy(), p))
    flow = ImageDataGenerator(interpolation_order=order, rotation_range=30).flow(
        x, batch_size=2, seed=1)
    assert flow[0].shape == x.shape and np.isfinite(flow[0]).all()


@pytest.mark.tf
def test_channels_first_matches_keras(tf_keras):
    tf, _ = tf_keras
    pytest.importorskip("scipy")
    x = images(n=12, h=7, w=5, c=3).transpose(0, 3, 1, 2).copy()  # (n, c, h, w)
    kw = dict(data_format="channels_first", rotation_range=25, width_shift_range=0.2,
              height_shift_range=0.3, channel_shift_range=20.0, horizontal_flip=True,
              featurewise_center=True, featurewise_std_normalization=True, fill_mode="wrap")
    ours, theirs = ImageDataGenerator(**kw), _keras(tf, **kw)
    assert (ours.channel_axis, ours.row_axis, ours.col_axis) == (1, 2, 3)
    ours.fit(x)
    theirs.fit(x)
    assert ours.mean.shape == (3, 1, 1)
    np.testing.assert_array_equal(ours.mean, theirs.mean)
    np.testing.assert_array_equal(ours.std, theirs.std)
    for i in range(6):
        p = ours.get_random_transform(x[i].shape, seed=50 + i)
        assert p == theirs.get_random_transform(x[i].shape, seed=50 + i)
        a = ours.standardize(ours.apply_transform(x[i], p))
        b = theirs.standardize(theirs.apply_transform(x[i].copy(), p))
        np.testing.assert_array_equal(a, b)
    # flow: the channels-last batches of the same stream, transposed
    last = ImageDataGenerator(**dict(kw, data_format="channels_last"))
    last.fit(x.transpose(0, 2, 3, 1))
    a = ours.flow(x, batch_size=5, seed=2)[1]
    b = last.flow(x.transpose(0, 2, 3, 1), batch_size=5, seed=2)[1]
    assert a.shape == (5, 3, 7, 5)
    np.testing.assert_allclose(a, b.transpose(0, 3, 1, 2), rtol=1e-6, atol=1e-6)


@pytest.mark.tf
def test_zca_channels_first_matches_keras(tf_keras):
    tf, _ = tf_keras
    x = images(n=30, h=3, w=4, c=1, seed=2).transpose(0, 3, 1, 2).copy()
    kw = dict(data_format="channels_first", zca_whitening=True)
    ours, theirs = ImageDataGenerator(**kw), _keras(tf, **kw)
    ours.fit(x)
    theirs.fit(x)
    np.testing.assert_array_equal(ours.zca_whitening_matrix, theirs.zca_whitening_matrix)
    np.testing.assert_array_equal(ours.standardize(x[0].copy()), theirs.standardize(x[0].copy()))


def test_still_unsupported_arguments(tmp_path):
    with pytest.raises(NotImplementedError, match="dtype"):
        ImageDataGenerator(dtype="float16")
    with pytest.raises(NotImplementedError, match="brightness_range"):
        ImageDataGenerator(brightness_range=(0.5, 1.5), data_format="channels_first")
    with pytest.raises(NotImplementedError, match="data_format"):
        ImageDataGenerator(data_format="channels_first").flow_from_directory(str(tmp_path))
    with pytest.raises(NotImplementedError, match="data_format"):
        NumpyArrayIterator(images(n=2), None, ImageDataGenerator(),
                           data_format="channels_first")
    with pytest.raises(ValueError, match="data_format"):
        ImageDataGenerator(data_format="nchw")
    with pytest.raises(ValueError, match="brightness_range"):
        ImageDataGenerator(brightness_range=0.5)
    with pytest.raises(ValueError, match="interpolation_order"):
        ImageDataGenerator(interpolation_order=6)
