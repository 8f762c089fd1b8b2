"""The legacy ImageDataGenerator (cnnfast/utils/image_data_generator.py over csrc affine_warp)
and the image file helpers (cnnfast/images.py): the warp against scipy, the transform, the draws
and standardize against Keras's own ImageDataGenerator, flow's batches, subsets and epochs, the
iterator in fit/evaluate/predict, thread independence, save_to_dir, load_img / img_to_array /
array_to_img / save_img against Keras, bad arguments."""
import os

import numpy as np
import pytest

import cnnfast as cf
from cnnfast import _core, backend, layers
from cnnfast.keras.preprocessing import image as kimage
from cnnfast.keras.preprocessing.image import ImageDataGenerator
from cnnfast.layers.base import reset_names

FILLS = ("reflect", "wrap", "constant", "nearest")


def images(n=20, h=11, w=9, c=3, seed=0):
    return (np.random.default_rng(seed).random((n, h, w, c), dtype=np.float32) * 255)


def test_affine_warp_matches_scipy():
    nd = pytest.importorskip("scipy.ndimage")
    r = np.random.default_rng(1)
    x = images(n=25, h=9, w=7, c=2)
    for mode in FILLS:
        for order in (0, 1):
            m = np.zeros((25, 6))
            for b in range(25):
                th, z = r.uniform(-1, 1), r.uniform(0.5, 1.6, 2)
                m[b] = [np.cos(th) * z[0], -np.sin(th), r.uniform(-12, 12),
                        np.sin(th), np.cos(th) * z[1], r.uniform(-12, 12)]
            out = np.empty_like(x)
            backend.affine_warp(out, x, m, np.ones(25, np.uint8), mode, order, -3.0)
            for b in range(25):
                for k in range(2):
                    ref = nd.affine_transform(x[b, :, :, k], m[b].reshape(2, 3)[:, :2],
                                              m[b].reshape(2, 3)[:, 2], order=order,
                                              mode=mode, cval=-3.0)
                    np.testing.assert_array_equal(out[b, :, :, k], ref)


@pytest.mark.tf
@pytest.mark.parametrize("fill", FILLS)
def test_draws_and_transform_match_keras(tf_keras, fill):
    tf, _ = tf_keras
    pytest.importorskip("scipy")
    kw = dict(rotation_range=30, width_shift_range=0.2, height_shift_range=3, shear_range=15,
              zoom_range=(0.7, 1.2), horizontal_flip=True, vertical_flip=True, fill_mode=fill,
              cval=7.0)
    ours, theirs = ImageDataGenerator(**kw), tf.keras.preprocessing.image.ImageDataGenerator(**kw)
    x = images(n=12)
    for i in range(12):
        p = ours.get_random_transform(x[i].shape, seed=100 + i)
        q = theirs.get_random_transform(x[i].shape, seed=100 + i)
        assert p == q  # the same draws from NumPy's global generator
        # the transform given the parameters: bit for bit (scipy's double arithmetic)
        np.testing.assert_array_equal(ours.apply_transform(x[i], p),
                                      theirs.apply_transform(x[i].copy(), p))
    for order in (0, 1):
        g = ImageDataGenerator(fill_mode=fill, interpolation_order=order)
        k = tf.keras.preprocessing.image.ImageDataGenerator(fill_mode=fill,
                                                         interpolation_order=order)
        p = {"theta": 12.5, "tx": -2.25, "ty": 1.5, "shear": 8.0, "zx": 0.8, "zy": 1.3}
        np.testing.assert_array_equal(g.apply_transform(x[0], p),
                                      k.apply_transform(x[0].copy(), p))
        np.testing.assert_array_equal(
            kimage.apply_affine_transform(x[1], 20, 1.5, -2, 5, 1.1, 0.9, 0, 1, 2, fill, 2.0,
                                          order),
            tf.keras.preprocessing.image.apply_affine_transform(x[1].copy(), 20, 1.5, -2, 5, 1.1,
                                                             0.9, 0, 1, 2, fill, 2.0, order))
    # no transform at all: the image untouched (Keras skips scipy)
    np.testing.assert_array_equal(ImageDataGenerator().apply_transform(x[2], {}), x[2])


@pytest.mark.tf
def test_standardize_and_fit_match_keras(tf_keras):
    tf, _ = tf_keras
    x = images(n=30, h=6, w=5, c=3)
    for kw in (dict(rescale=1 / 255.0), dict(samplewise_center=True,
                                              samplewise_std_normalization=True),
               dict(featurewise_center=True, featurewise_std_normalization=True,
                    rescale=1 / 255.0),
               dict(preprocessing_function=lambda a: a * 2 - 1, rescale=0.5)):
        ours, theirs = ImageDataGenerator(**kw), tf.keras.preprocessing.image.ImageDataGenerator(
            **kw)
        ours.fit(x)
        theirs.fit(x)
        if ours.mean is not None:
            np.testing.assert_array_equal(ours.mean, theirs.mean)
            np.testing.assert_array_equal(ours.std, theirs.std)
        for i in range(3):
            np.testing.assert_array_equal(ours.standardize(x[i].copy()),
                                          theirs.standardize(x[i].copy()))


@pytest.mark.tf
def test_flow_without_augmentation_matches_keras(tf_keras):
    tf, _ = tf_keras
    x, y = images(n=50, h=6, w=5, c=1), np.arange(50) % 4
    kw = dict(rescale=1 / 255.0, validation_split=0.3)
    for subset in (None, "training", "validation"):
        ours = ImageDataGenerator(**kw).flow(x, y, batch_size=8, shuffle=False, subset=subset)
        theirs = tf.keras.preprocessing.image.ImageDataGenerator(**kw).flow(
            x, y, batch_size=8, shuffle=False, subset=subset)
        assert len(ours) == len(theirs)
        for i in range(len(ours)):
            a, b = ours[i], theirs[i]
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])


def test_flow_batches_epochs_and_next():
    x, y = images(n=37, h=8, w=8, c=1), np.arange(37) % 3
    g = ImageDataGenerator(rotation_range=25, zoom_range=0.2, horizontal_flip=True)
    it = g.flow(x, y, batch_size=10, seed=4)
    assert len(it) == 4
    b0 = it[0]
    np.testing.assert_array_equal(it[0][0], b0[0])  # a batch is a function of (seed, epoch, i)
    assert b0[0].shape == (10, 8, 8, 1) and it[3][0].shape == (7, 8, 8, 1)
    seen = np.concatenate([it[i][1] for i in range(4)])
    assert sorted(seen) == sorted(y)  # a permutation of the rows
    # the batch is the warp of its rows with the draws of its stream
    rows = it.index_array[:10]
    rs = it._stream(0, 1, 0)
    params = [g._draw((8, 8, 1), rs) for _ in range(10)]
    for j, p in enumerate(params):
        np.testing.assert_array_equal(b0[0][j], g.apply_transform(x[rows[j]], p))
    np.testing.assert_array_equal(b0[1], y[rows])
    it.on_epoch_end()  # a new permutation, new draws
    assert not np.array_equal(it[0][0], b0[0])
    again = g.flow(x, y, batch_size=10, seed=4)
    np.testing.assert_array_equal(again[0][0], b0[0])
    # next() cycles: 4 batches a pass, the last one short
    sizes = [next(again)[0].shape[0] for _ in range(8)]
    assert sizes == [10, 10, 10, 7] * 2
    # without y: x only
    assert g.flow(x, batch_size=5)[0].shape == (5, 8, 8, 1)


def test_draw_statistics():
    g = ImageDataGenerator(rotation_range=40, width_shift_range=0.25, shear_range=10,
                           zoom_range=(0.8, 1.1), horizontal_flip=True)
    rs = np.random.RandomState(0)
    ps = [g._draw((20, 16, 1), rs) for _ in range(6000)]
    theta = np.array([p["theta"] for p in ps])
    ty = np.array([p["ty"] for p in ps])
    zx = np.array([p["zx"] for p in ps])
    flips = np.array([p["flip_horizontal"] for p in ps])
    assert -40 <= theta.min() < -39.5 and 39.5 < theta.max() <= 40 and abs(theta.mean()) < 1.0
    assert -4 <= ty.min() < -3.9 and 3.9 < ty.max() <= 4  # 0.25 * 16 columns
    assert all(p["tx"] == 0 for p in ps) and all(p["flip_vertical"] == 0 for p in ps)
    assert 0.8 <= zx.min() and zx.max() <= 1.1 and abs(zx.mean() - 0.95) < 0.005
    assert abs(flips.mean() - 0.5) < 0.03
    # an int shift range: Keras's discrete pixel choices {-(k-1), ..., k-1} times a sign
    g2 = ImageDataGenerator(height_shift_range=3)
    tx = {g2._draw((20, 16, 1), rs)["tx"] for _ in range(500)}
    assert tx == {-2, -1, 0, 1, 2}


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
def test_batches_independent_of_threads_and_workers(threads):
    x, y = images(n=64, h=12, w=12, c=3), np.arange(64) % 2
    g = ImageDataGenerator(rotation_range=30, width_shift_range=0.1, fill_mode="reflect")
    outs = []
    for n in (1, threads):
        _core.set_num_threads(n)
        it = g.flow(x, y, batch_size=16, seed=9)
        outs.append(np.concatenate([it[i][0] for i in range(len(it))]))
    _core.set_num_threads(threads)
    np.testing.assert_array_equal(outs[0], outs[1])


def cnn():
    reset_names()
    cf.utils.set_random_seed(2)
    m = cf.Sequential([layers.Input((10, 10, 1)), layers.Conv2D(4, 3, activation="relu"),
                       layers.Flatten(), layers.Dense(3, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_flow_in_fit_evaluate_predict(tmp_path):
    x, y = images(n=60, h=10, w=10, c=1), np.arange(60) % 3
    g = ImageDataGenerator(rescale=1 / 255.0, rotation_range=10, validation_split=0.25)
    runs = []
    for workers in (1, 2):
        m = cnn()
        train = g.flow(x, y, batch_size=16, seed=1, subset="training")
        train.workers = workers
        h = m.fit(train, epochs=2, verbose=0,
                  validation_data=g.flow(x, y, batch_size=16, seed=2, subset="validation"))
        runs.append((h.history, m.get_weights()))
    assert runs[0][0] == runs[1][0] and len(runs[0][0]["val_loss"]) == 2
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
    # no augmentation, no shuffle: exactly the arrays' numbers
    plain = ImageDataGenerator(rescale=1 / 255.0)
    ev = m.evaluate(plain.flow(x, y, batch_size=16, shuffle=False), verbose=0)
    assert ev == m.evaluate(x * np.float32(1 / 255.0), y, batch_size=16, verbose=0)
    np.testing.assert_array_equal(m.predict(plain.flow(x, batch_size=16, shuffle=False),
                                            verbose=0),
                                  m.predict(x * np.float32(1 / 255.0), verbose=0))
    m.fit(g.flow(x, y, batch_size=16), steps_per_epoch=2, epochs=1, verbose=0)
    # save_to_dir writes each augmented image
    g.flow(x[:5], y[:5], batch_size=5, save_to_dir=str(tmp_path), save_prefix="aug")[0]
    files = os.listdir(tmp_path)
    assert len(files) == 5 and all(f.startswith("aug_") and f.endswith(".png") for f in files)


def test_import_switch_paths():
    import cnnfast as tf
    assert tf.keras.preprocessing.image.ImageDataGenerator is ImageDataGenerator
    from cnnfast.keras.utils import array_to_img, img_to_array, load_img, save_img  # noqa: F401
    assert tf.keras.utils.load_img is kimage.load_img
    assert isinstance(ImageDataGenerator().flow(images(n=2)), cf.keras.utils.PyDataset)
    with pytest.raises(AttributeError, match="cnnfast does not implement"):
        tf.keras.preprocessing.image.DataFrameIterator  # noqa: B018


@pytest.mark.tf
def test_image_files_match_keras(tf_keras, tmp_path):
    tf, keras = tf_keras
    from PIL import Image
    r = np.random.default_rng(3)
    rgb = r.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    rgba = r.integers(0, 256, (13, 17, 4), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(tmp_path / "rgb.png")
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb[:, :, 0], "L").save(tmp_path / "gray.png")
    for name in ("rgb.png", "rgba.png", "gray.png"):
        path = str(tmp_path / name)
        for mode in ("grayscale", "rgb", "rgba"):
            for kw in ({}, dict(target_size=(8, 11)),
                       dict(target_size=(20, 9), interpolation="bilinear"),
                       dict(target_size=(8, 11), interpolation="lanczos",
                            keep_aspect_ratio=True)):
                a = kimage.img_to_array(kimage.load_img(path, color_mode=mode, **kw))
                b = keras.utils.img_to_array(keras.utils.load_img(path, color_mode=mode, **kw))
                assert a.dtype == b.dtype == np.float32
                np.testing.assert_array_equal(a, b)
    for arr in (rgb.astype(np.float32) / 3 - 20, rgba.astype(np.float32),
                rgb[:, :, :1].astype(np.float32) * 4):
        for scale in (True, False):
            if not scale and arr.max() > 255:
                continue
            a, b = kimage.array_to_img(arr, scale=scale), keras.utils.array_to_img(arr,
                                                                                    scale=scale)
            assert a.mode == b.mode and a.size == b.size
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    kimage.save_img(str(tmp_path / "ours.png"), rgb.astype(np.float32))
    keras.utils.save_img(str(tmp_path / "theirs.png"), rgb.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "ours.png")),
                                  np.asarray(Image.open(tmp_path / "theirs.png")))
    with pytest.warns(UserWarning, match="RGBA"):
        kimage.save_img(str(tmp_path / "x.jpg"), rgba.astype(np.float32))
    # smart_resize: bit-exact with Keras's (bilinear)
    x = rgb.astype(np.float32)
    np.testing.assert_array_equal(kimage.smart_resize(x, (7, 7)),
                                  np.asarray(tf.keras.preprocessing.image.smart_resize(x, (7, 7))))


def image_tree(root):
    """root/<class>/... PNGs of mixed sizes and modes, a nested folder, a non-image file."""
    from PIL import Image
    r = np.random.default_rng(5)
    for k, cls in enumerate(("cat", "dog", "emu")):
        d = root / cls
        (d / "sub").mkdir(parents=True)
        for i in range(4 + k):
            h, w = int(r.integers(6, 15)), int(r.integers(6, 15))
            mode = ("RGB", "L", "RGBA")[i % 3]
            shape = (h, w) if mode == "L" else (h, w, len(mode))
            Image.fromarray(r.integers(0, 256, shape, dtype=np.uint8), mode).save(
                (d / "sub" if i == 0 else d) / f"im{i}.png")
        (d / "notes.txt").write_text("not an image")
    (root / "stray.png").write_bytes(b"")  # files at the top are not classes


@pytest.mark.tf
def test_flow_from_directory_matches_keras(tf_keras, tmp_path):
    tf, _ = tf_keras
    image_tree(tmp_path)
    for kw in (dict(target_size=(8, 10), class_mode="categorical"),
               dict(target_size=(9, 7), color_mode="grayscale", class_mode="sparse",
                    interpolation="bilinear", subset="training"),
               dict(target_size=(6, 6), color_mode="rgba", class_mode="binary",
                    subset="validation", keep_aspect_ratio=True),
               dict(target_size=(5, 5), class_mode=None, classes=["emu", "cat"])):
        g = dict(rescale=1 / 255.0, validation_split=0.4)
        ours = ImageDataGenerator(**g).flow_from_directory(str(tmp_path), batch_size=4,
                                                           shuffle=False, **kw)
        theirs = tf.keras.preprocessing.image.ImageDataGenerator(**g).flow_from_directory(
            str(tmp_path), batch_size=4, shuffle=False, **kw)
        assert ours.filenames == theirs.filenames and ours.class_indices == theirs.class_indices
        np.testing.assert_array_equal(ours.classes, theirs.classes)
        assert len(ours) == len(theirs) > 0
        for i in range(len(ours)):
            a, b = ours[i], theirs[i]
            if kw["class_mode"] is None:
                np.testing.assert_array_equal(a, b)
                continue
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
            assert a[1].dtype == b[1].dtype


def test_flow_from_directory_trains(tmp_path):
    image_tree(tmp_path)
    it = ImageDataGenerator(rescale=1 / 255.0, rotation_range=15).flow_from_directory(
        str(tmp_path), target_size=(10, 10), color_mode="grayscale", class_mode="sparse",
        batch_size=5, seed=3)
    assert it.samples == 15 and it.num_classes == 3
    m = cnn()
    h = m.fit(it, epochs=2, verbose=0)
    assert len(h.history["loss"]) == 2
    assert m.predict(it, verbose=0).shape == (15, 3)
    with pytest.raises(ValueError, match="class_mode"):
        ImageDataGenerator().flow_from_directory(str(tmp_path), class_mode="onehot")
    with pytest.raises(ValueError, match="color mode"):
        ImageDataGenerator().flow_from_directory(str(tmp_path), color_mode="cmyk")


def test_bad_arguments():
    # (zca_whitening, brightness_range, channel_shift_range, channels_first and interpolation
    # orders 2-5 are supported: tests/test_image_data_generator_more.py)
    for kw, name in ((dict(dtype="float64"), "dtype"),
                     (dict(brightness_range=(0.5, 1.5), data_format="channels_first"),
                      "brightness_range")):
        with pytest.raises(NotImplementedError, match=name):
            ImageDataGenerator(**kw)
    with pytest.raises(ValueError, match="fill_mode"):
        ImageDataGenerator(fill_mode="mirror")
    with pytest.raises(ValueError, match="zoom_range"):
        ImageDataGenerator(zoom_range=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="validation_split"):
        ImageDataGenerator(validation_split=1.5)
    with pytest.raises(NotImplementedError, match="flow_from_dataframe"):
        ImageDataGenerator().flow_from_dataframe(None)
    g = ImageDataGenerator(validation_split=0.5)
    x = images(n=10)
    with pytest.raises(ValueError, match="rank 4"):
        g.flow(x[0])
    with pytest.raises(ValueError, match="same length"):
        g.flow(x, np.arange(3))
    with pytest.raises(ValueError, match="subset"):
        g.flow(x, subset="test")
    with pytest.raises(ValueError, match="different number of classes"):
        g.flow(x, np.repeat([0, 1], 5), subset="training")
    with pytest.raises(ValueError, match="length 1"):
        g.flow(x, batch_size=10)[1]
    with pytest.raises(ValueError, match="affine_warp"):
        backend.affine_warp(np.empty((1, 3, 3, 1), np.float32), np.empty((1, 3, 3, 1),
                                                                         np.float32),
                            np.zeros((2, 6)), np.ones(1, np.uint8), "reflect", 1, 0.0)
    with pytest.raises(TypeError, match="path should be path-like"):
        kimage.load_img(3)
