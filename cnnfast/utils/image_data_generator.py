"""The legacy keras.preprocessing.image.ImageDataGenerator and its NumpyArrayIterator
(keras/src/legacy/preprocessing/image.py; docs/keras_semantics.md#imagedatagenerator).

The random parameters of each image are drawn as Keras draws them (the same calls in the same
order); the transform given them is Keras's: its matrix (rotation, shift, shear, zoom, about the
centre) in float64 exactly as Keras builds it, then scipy.ndimage.affine_transform's resampling,
done in C++ for the whole batch (csrc/augment.h affine_warp, bit-exact with scipy), then the
flips, then Keras's per-image channel shift and brightness (Pillow's ImageEnhance, as Keras),
then `standardize` (zca_whitening included). Interpolation orders 2 to 5 run scipy's own
affine_transform per channel, as Keras does. Keras draws from NumPy's global generator; the
iterator here draws each batch from its own generator seeded by (seed, epoch, batch index),
so a batch does not depend on the order or the thread batches are read in.
"""
from __future__ import annotations

import math
import os
import threading
import warnings

import numpy as np

from .. import backend
from .py_dataset import PyDataset

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")


class ImageDataGenerator:
    """Batches of augmented images from arrays (keras.preprocessing.image.ImageDataGenerator).

    Supported: featurewise_center / featurewise_std_normalization (with .fit(x)),
    samplewise_center / samplewise_std_normalization, rotation_range (degrees),
    width_shift_range / height_shift_range (a fraction of the size when < 1, else pixels; an
    int or a list: Keras's discrete choices), shear_range (degrees), zoom_range (a number z:
    [1 - z, 1 + z]; or [lower, upper]), fill_mode ('nearest', 'constant', 'reflect', 'wrap'),
    cval, horizontal_flip, vertical_flip, rescale, preprocessing_function (run on each image
    after the augmentation, as Keras), validation_split (flow(subset=...)), zca_whitening and
    zca_epsilon (with .fit(x)), channel_shift_range, brightness_range (Pillow, the images
    extra, as Keras), interpolation_order 0 to 5 (2 to 5 through scipy, as Keras),
    data_format 'channels_last' or 'channels_first' (flow() only), dtype float32. Not
    supported (NotImplementedError naming the argument): another dtype, brightness_range with
    channels_first, flow_from_directory with channels_first, flow_from_dataframe.
    flow_from_directory reads with Pillow (the images extra).
    """

    def __init__(self, featurewise_center=False, samplewise_center=False,
                 featurewise_std_normalization=False, samplewise_std_normalization=False,
                 zca_whitening=False, zca_epsilon=1e-6, rotation_range=0, width_shift_range=0.0,
                 height_shift_range=0.0, brightness_range=None, shear_range=0.0, zoom_range=0.0,
                 channel_shift_range=0.0, fill_mode="nearest", cval=0.0, horizontal_flip=False,
                 vertical_flip=False, rescale=None, preprocessing_function=None,
                 data_format=None, validation_split=0.0, interpolation_order=1, dtype=None):
        if data_format is None:
            data_format = "channels_last"
        if data_format not in {"channels_last", "channels_first"}:
            raise ValueError('`data_format` should be `"channels_last"` (channel after row and '
                             'column) or `"channels_first"` (channel before row and column). '
                             f"Received: {data_format}")
        if dtype not in (None, "float32", np.float32):
            raise NotImplementedError(f"ImageDataGenerator: argument dtype={dtype!r} is not "
                                      "supported (float32 only)")
        if isinstance(interpolation_order, bool) or interpolation_order not in range(6):
            raise ValueError(f"ImageDataGenerator: interpolation_order must be an int from 0 "
                             f"to 5 (a spline order), got {interpolation_order!r}")
        if interpolation_order > 1:
            try:
                import scipy.ndimage  # noqa: F401
            except ImportError:
                raise NotImplementedError(
                    f"ImageDataGenerator: argument interpolation_order={interpolation_order} "
                    "needs scipy (orders 0 and 1 run without it)") from None
        if brightness_range is not None:
            if not isinstance(brightness_range, (tuple, list)) or len(brightness_range) != 2:
                raise ValueError("`brightness_range should be tuple or list of two floats. "
                                 f"Received: {brightness_range}")
            if data_format == "channels_first":
                raise NotImplementedError(
                    "ImageDataGenerator: argument brightness_range with "
                    "data_format='channels_first' is not supported (Keras converts such an "
                    "image as if it were channels_last)")
        if fill_mode not in _FILL_MODES:
            raise ValueError(f"ImageDataGenerator: fill_mode must be one of {_FILL_MODES}, got "
                             f"{fill_mode!r}")
        self.featurewise_center = featurewise_center
        self.samplewise_center = samplewise_center
        self.featurewise_std_normalization = featurewise_std_normalization
        self.samplewise_std_normalization = samplewise_std_normalization
        self.zca_whitening, self.zca_epsilon = zca_whitening, zca_epsilon
        self.rotation_range = rotation_range
        self.width_shift_range = width_shift_range
        self.height_shift_range = height_shift_range
        self.shear_range = shear_range
        self.channel_shift_range = channel_shift_range
        self.brightness_range = brightness_range
        self.fill_mode, self.cval = fill_mode, cval
        self.horizontal_flip, self.vertical_flip = horizontal_flip, vertical_flip
        self.rescale = rescale
        self.preprocessing_function = preprocessing_function
        self.dtype = "float32"
        self.interpolation_order = interpolation_order
        self.data_format = data_format
        self.channel_axis, self.row_axis, self.col_axis = \
            (1, 2, 3) if data_format == "channels_first" else (3, 1, 2)
        if validation_split and not 0 < validation_split < 1:
            raise ValueError("`validation_split` must be strictly between 0 and 1. "
                             f" Received: {validation_split}")
        self._validation_split = validation_split
        self.mean = self.std = self.zca_whitening_matrix = None
        if isinstance(zoom_range, (float, int)):
            self.zoom_range = [1 - zoom_range, 1 + zoom_range]
        elif len(zoom_range) == 2 and all(isinstance(v, (float, int)) for v in zoom_range):
            self.zoom_range = [zoom_range[0], zoom_range[1]]
        else:
            raise ValueError("`zoom_range` should be a float or a tuple or list of two floats. "
                             f"Received: {zoom_range}")
        if zca_whitening:
            if not featurewise_center:
                self.featurewise_center = True
                warnings.warn("This ImageDataGenerator specifies `zca_whitening`, which "
                              "overrides setting of `featurewise_center`.", stacklevel=2)
            if featurewise_std_normalization:
                self.featurewise_std_normalization = False
                warnings.warn("This ImageDataGenerator specifies `zca_whitening` which "
                              "overrides setting of`featurewise_std_normalization`.",
                              stacklevel=2)
        if featurewise_std_normalization and not featurewise_center:
            self.featurewise_center = True
            warnings.warn("This ImageDataGenerator specifies `featurewise_std_normalization`, "
                          "which overrides setting of `featurewise_center`.", stacklevel=2)
        if samplewise_std_normalization and not samplewise_center:
            self.samplewise_center = True
            warnings.warn("This ImageDataGenerator specifies `samplewise_std_normalization`, "
                          "which overrides setting of `samplewise_center`.", stacklevel=2)

    # ---- sources ----
    def flow(self, x, y=None, batch_size=32, shuffle=True, sample_weight=None, seed=None,
             save_to_dir=None, save_prefix="", save_format="png", ignore_class_split=False,
             subset=None):
        """A NumpyArrayIterator (a keras.utils.PyDataset) of augmented batches of x (and y)."""
        return NumpyArrayIterator(x, y, self, batch_size=batch_size, shuffle=shuffle,
                                  sample_weight=sample_weight, seed=seed,
                                  save_to_dir=save_to_dir, save_prefix=save_prefix,
                                  save_format=save_format,
                                  ignore_class_split=ignore_class_split, subset=subset)

    def flow_from_directory(self, directory, target_size=(256, 256), color_mode="rgb",
                            classes=None, class_mode="categorical", batch_size=32, shuffle=True,
                            seed=None, save_to_dir=None, save_prefix="", save_format="png",
                            follow_links=False, subset=None, interpolation="nearest",
                            keep_aspect_ratio=False):
        """A DirectoryIterator over directory/<class>/<image> (Pillow, the images extra)."""
        return DirectoryIterator(directory, self, target_size=target_size,
                                 color_mode=color_mode, classes=classes, class_mode=class_mode,
                                 batch_size=batch_size, shuffle=shuffle, seed=seed,
                                 save_to_dir=save_to_dir, save_prefix=save_prefix,
                                 save_format=save_format, follow_links=follow_links,
                                 subset=subset, interpolation=interpolation,
                                 keep_aspect_ratio=keep_aspect_ratio)

    def flow_from_dataframe(self, *args, **kwargs):
        raise NotImplementedError("ImageDataGenerator.flow_from_dataframe is not implemented by "
                                  "cnnfast")

    # ---- per image ----
    def standardize(self, x):
        """Keras's standardize on one image (in place where Keras works in place)."""
        if self.preprocessing_function:
            x = self.preprocessing_function(x)
        if self.rescale:
            x *= self.rescale
        if self.samplewise_center:
            x -= np.mean(x, keepdims=True)
        if self.samplewise_std_normalization:
            x /= np.std(x, keepdims=True) + 1e-6
        if self.featurewise_center:
            if self.mean is not None:
                x -= self.mean
            else:
                warnings.warn("This ImageDataGenerator specifies `featurewise_center`, but it "
                              "hasn't been fit on any training data. Fit it first by calling "
                              "`.fit(numpy_data)`.", stacklevel=2)
        if self.featurewise_std_normalization:
            if self.std is not None:
                x /= self.std + 1e-6
            else:
                warnings.warn("This ImageDataGenerator specifies "
                              "`featurewise_std_normalization`, but it hasn't been fit on any "
                              "training data. Fit it first by calling `.fit(numpy_data)`.",
                              stacklevel=2)
        if self.zca_whitening:
            if self.zca_whitening_matrix is not None:
                flat_x = x.reshape(-1, math.prod(x.shape[-3:]))
                white_x = flat_x @ self.zca_whitening_matrix
                x = np.reshape(white_x, x.shape)
            else:
                warnings.warn("This ImageDataGenerator specifies `zca_whitening`, but it "
                              "hasn't been fit on any training data. Fit it first by calling "
                              "`.fit(numpy_data)`.", stacklevel=2)
        return x

    def _draw(self, img_shape, rs):
        """Keras's get_random_transform drawing from `rs` (np.random or a RandomState);
        img_shape is one image's, in the generator's data_format."""
        rows, cols = self.row_axis - 1, self.col_axis - 1
        theta = rs.uniform(-self.rotation_range, self.rotation_range) \
            if self.rotation_range else 0
        shifts = []
        for rng_, axis in ((self.height_shift_range, rows), (self.width_shift_range, cols)):
            if rng_:
                try:  # a 1-D array-like or an int: Keras's discrete choice
                    t = rs.choice(rng_)
                    t *= rs.choice([-1, 1])
                except ValueError:  # a float
                    t = rs.uniform(-rng_, rng_)
                if np.max(rng_) < 1:
                    t *= img_shape[axis]
            else:
                t = 0
            shifts.append(t)
        shear = rs.uniform(-self.shear_range, self.shear_range) if self.shear_range else 0
        if self.zoom_range[0] == 1 and self.zoom_range[1] == 1:
            zx, zy = 1, 1
        else:
            zx, zy = rs.uniform(self.zoom_range[0], self.zoom_range[1], 2)
        flip_h = (rs.random() < 0.5) * self.horizontal_flip
        flip_v = (rs.random() < 0.5) * self.vertical_flip
        shift = rs.uniform(-self.channel_shift_range, self.channel_shift_range) \
            if self.channel_shift_range != 0 else None
        bright = rs.uniform(self.brightness_range[0], self.brightness_range[1]) \
            if self.brightness_range is not None else None
        return {"theta": theta, "tx": shifts[0], "ty": shifts[1], "shear": shear, "zx": zx,
                "zy": zy, "flip_horizontal": flip_h, "flip_vertical": flip_v,
                "channel_shift_intensity": shift, "brightness": bright}

    def get_random_transform(self, img_shape, seed=None):
        """The parameters for one image of shape img_shape, drawn from NumPy's global
        generator (seeded with `seed` when given), exactly as Keras draws them."""
        if seed is not None:
            np.random.seed(seed)
        return self._draw(img_shape, np.random)

    def _warp_params(self, params, h, w):
        """(matrix (6,), flags) of one image for affine_warp."""
        m = affine_matrix(params.get("theta", 0), params.get("tx", 0), params.get("ty", 0),
                          params.get("shear", 0), params.get("zx", 1), params.get("zy", 1), h, w)
        flags = (1 if m is not None else 0) | (2 if params.get("flip_horizontal", False) else 0) \
            | (4 if params.get("flip_vertical", False) else 0)
        return (m if m is not None else np.zeros(6)), flags

    def _warp_batch(self, xb, params):
        """The affine transforms and flips of a float32 batch in the generator's layout."""
        if self.data_format == "channels_first":
            xb = np.ascontiguousarray(xb.transpose(0, 2, 3, 1))
            return self._warp_nhwc(xb, params).transpose(0, 3, 1, 2).copy()
        return self._warp_nhwc(xb, params)

    def _warp_nhwc(self, xb, params):
        n, h, w = xb.shape[:3]
        mats, flags = np.zeros((n, 6)), np.zeros(n, np.uint8)
        for i, p in enumerate(params):
            mats[i], flags[i] = self._warp_params(p, h, w)
        out = np.empty_like(xb)
        order = self.interpolation_order
        if order <= 1:
            backend.affine_warp(out, xb, mats, flags, self.fill_mode, order, float(self.cval))
            return out
        # spline orders 2..5: scipy's affine_transform on each channel, as Keras calls it
        import scipy.ndimage
        for i in range(n):
            img = xb[i]
            if flags[i] & 1:
                m = mats[i]
                img = np.stack([scipy.ndimage.affine_transform(
                    img[:, :, c], m[[0, 1, 3, 4]].reshape(2, 2), m[[2, 5]], order=order,
                    mode=self.fill_mode, cval=self.cval) for c in range(img.shape[2])], axis=2)
            if flags[i] & 2:
                img = img[:, ::-1]
            if flags[i] & 4:
                img = img[::-1]
            out[i] = img
        return out

    def _shift_and_brightness(self, x, params):
        """Keras's apply_transform after the affine transform and flips: the channel shift
        (pointwise with the image's min and max, so it commutes with the flips) and the
        brightness, on one image, in the dtypes Keras's NumPy arithmetic gives."""
        intensity = params.get("channel_shift_intensity")
        if intensity is not None:
            x = apply_channel_shift(x, intensity, self.channel_axis - 1)
        brightness = params.get("brightness")
        if brightness is not None:
            x = apply_brightness_shift(x, brightness, False)
        return x

    def _transform_and_standardize(self, xb, params):
        """A float32 batch through apply_transform and standardize, image by image as
        Keras's iterators do (each image kept in the dtype Keras computes it in until it is
        written into the float32 batch)."""
        batch_x = self._warp_batch(xb, params)
        for i in range(batch_x.shape[0]):
            batch_x[i] = self.standardize(self._shift_and_brightness(batch_x[i], params[i]))
        return batch_x

    def apply_transform(self, x, transform_parameters):
        """One image (in the generator's data_format) through the parameters (Keras's keys:
        theta, tx, ty, shear, zx, zy, flip_horizontal, flip_vertical,
        channel_shift_intensity, brightness); float32 out (float64 after a channel shift,
        as Keras's NumPy arithmetic gives)."""
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError("Input arrays must be multi-channel 2D images.")
        xb = np.ascontiguousarray(x[None], dtype=np.float32)
        return self._shift_and_brightness(self._warp_batch(xb, [transform_parameters])[0],
                                          transform_parameters)

    def random_transform(self, x, seed=None):
        return self.apply_transform(x, self.get_random_transform(np.shape(x), seed))

    def fit(self, x, augment=False, rounds=1, seed=None):
        """The featurewise statistics (per-channel mean and std) of x (N, H, W, C), after
        rescale (and `rounds` augmented copies when augment), as Keras."""
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 4:
            raise ValueError("Input to `.fit()` should have rank 4. Got array with shape: "
                             + str(x.shape))
        ca = self.channel_axis
        if x.shape[ca] not in {1, 3, 4}:
            warnings.warn("Expected input to be images (as Numpy array) following the data "
                          f'format convention "{self.data_format}" (channels on axis {ca}), '
                          f"i.e. expected either 1, 3 or 4 channels on axis {ca}. However, it "
                          f"was passed an array with shape {x.shape} ({x.shape[ca]} channels).",
                          stacklevel=2)
        if seed is not None:
            np.random.seed(seed)
        x = np.copy(x)
        if self.rescale:
            x *= self.rescale
        if augment:
            ax = np.zeros((rounds * x.shape[0],) + x.shape[1:], dtype=self.dtype)
            for r in range(rounds):
                params = [self._draw(x.shape[1:], np.random) for _ in range(x.shape[0])]
                warped = self._warp_batch(np.ascontiguousarray(x), params)
                for i in range(x.shape[0]):
                    ax[i + r * x.shape[0]] = self._shift_and_brightness(warped[i], params[i])
            x = ax
        shape = [1, 1, 1]
        shape[ca - 1] = x.shape[ca]
        if self.featurewise_center:
            self.mean = np.mean(x, axis=(0, self.row_axis, self.col_axis)).reshape(shape)
            x -= self.mean
        if self.featurewise_std_normalization:
            self.std = np.std(x, axis=(0, self.row_axis, self.col_axis)).reshape(shape)
            x /= self.std + 1e-6
        if self.zca_whitening:
            n = len(x)
            flat_x = np.reshape(x, (n, -1))
            u, s, _ = np.linalg.svd(flat_x.T, full_matrices=False)
            s_inv = np.sqrt(n) / (s + self.zca_epsilon)
            self.zca_whitening_matrix = (u * s_inv).dot(u.T)


def affine_matrix(theta, tx, ty, shear, zx, zy, h, w):
    """The (6,) row/column matrix scipy applies for Keras's apply_affine_transform on an
    (h, w, channels) image, built with Keras's float64 operations in its order, or None when
    the parameters are the identity (Keras then leaves the image untouched)."""
    m = None
    if theta != 0:
        t = np.deg2rad(theta)
        m = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    if tx != 0 or ty != 0:
        s = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
        m = s if m is None else np.dot(m, s)
    if shear != 0:
        sh = np.deg2rad(shear)
        s = np.array([[1, -np.sin(sh), 0], [0, np.cos(sh), 0], [0, 0, 1]])
        m = s if m is None else np.dot(m, s)
    if zx != 1 or zy != 1:
        s = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
        m = s if m is None else np.dot(m, s)
    if m is None:
        return None
    ox, oy = float(h) / 2 - 0.5, float(w) / 2 - 0.5
    offset = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]])
    reset = np.array([[1, 0, -ox], [0, 1, -oy], [0, 0, 1]])
    m = np.dot(np.dot(offset, m), reset)
    # Keras swaps the first two axes of the matrix for channels-last images (col > row)
    m[:, [0, 1]] = m[:, [1, 0]]
    m[[0, 1]] = m[[1, 0]]
    return np.array([m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2]], np.float64)


def apply_channel_shift(x, intensity, channel_axis=0):
    """keras.preprocessing.image.apply_channel_shift: every channel plus `intensity`, clipped
    to the image's min and max."""
    x = np.rollaxis(x, channel_axis, 0)
    min_x, max_x = np.min(x), np.max(x)
    x = np.stack([np.clip(c + intensity, min_x, max_x) for c in x], axis=0)
    return np.rollaxis(x, 0, channel_axis + 1)


def apply_brightness_shift(x, brightness, scale=True):
    """keras.preprocessing.image.apply_brightness_shift on a channels-last image: Pillow's
    ImageEnhance.Brightness on the image converted to 8 bits (scaled to 0..255 first when
    `scale` or when its values leave 0..255, and scaled back after)."""
    from PIL import ImageEnhance

    from ..images import array_to_img, img_to_array
    x_min, x_max = np.min(x), np.max(x)
    local_scale = (x_min < 0) or (x_max > 255)
    img = array_to_img(x, scale=local_scale or scale)
    x = img_to_array(ImageEnhance.Brightness(img).enhance(brightness))
    if not scale and local_scale:
        x = x / 255 * (x_max - x_min) + x_min
    return x


class Iterator(PyDataset):
    """Keras's legacy image Iterator, a PyDataset: len() batches, [i] the i-th batch of this
    epoch, next() cycles through them (reshuffled each pass), on_epoch_end() reshuffles.
    Subclasses implement _batch(index_array, rs) (rs: the batch's RandomState)."""

    white_list_formats = ("png", "jpg", "jpeg", "bmp", "ppm", "tif", "tiff")

    def __init__(self, n, batch_size, shuffle, seed, **kwargs):
        super().__init__(**kwargs)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or \
                batch_size < 1:
            raise ValueError(f"flow(): batch_size must be a positive int, got {batch_size!r}")
        self.n, self.batch_size, self.seed, self.shuffle = n, int(batch_size), seed, shuffle
        from . import rng
        # the stream of every draw: the seed, else one draw from cnnfast's generator
        self._base = int(seed) if seed is not None else int(rng().integers(0, 2**63))
        self._epoch = 0  # on_epoch_end calls so far (a new permutation and new draws)
        self._pass = 0   # next() passes over the data
        self.batch_index = 0
        self.index_array = None
        self.lock = threading.Lock()

    def _stream(self, *key):
        """A RandomState for (seed, *key) (Keras's draw calls need its interface)."""
        words = [self._base & 0xFFFFFFFF, (self._base >> 32) & 0xFFFFFFFF]
        return np.random.RandomState(words + [int(k) & 0xFFFFFFFF for k in key])

    def _set_index_array(self):
        self.index_array = np.arange(self.n)
        if self.shuffle:
            self.index_array = self._stream(self._epoch, 0, 2**32 - 1).permutation(self.n)

    def __len__(self):
        return (self.n + self.batch_size - 1) // self.batch_size

    def __getitem__(self, idx):
        if idx >= len(self):
            raise ValueError(f"Asked to retrieve element {idx}, but the Sequence has length "
                             f"{len(self)}")
        with self.lock:
            if self.index_array is None:
                self._set_index_array()
            index_array = self.index_array[self.batch_size * idx:self.batch_size * (idx + 1)]
            epoch = self._epoch
        return self._batch(index_array, self._stream(epoch, 1, idx))

    def on_epoch_end(self):
        with self.lock:
            self._epoch += 1
            self._set_index_array()

    def reset(self):
        self.batch_index = 0

    def __iter__(self):
        return self

    def __next__(self):
        with self.lock:
            if self.batch_index == 0:
                self._pass += 1
                self.index_array = np.arange(self.n)
                if self.shuffle:
                    self.index_array = self._stream(self._pass, 2, 2**32 - 1).permutation(self.n)
            i, cur = self.batch_index, self.batch_index * self.batch_size
            index_array = self.index_array[cur:cur + self.batch_size]
            self.batch_index = i + 1 if self.n > cur + self.batch_size else 0
            stream = self._stream(self._pass, 3, i)
        return self._batch(index_array, stream)

    def _batch(self, index_array, rs):
        raise NotImplementedError


class NumpyArrayIterator(Iterator):
    """Augmented batches of arrays (Keras's NumpyArrayIterator). Items are x, or (x, y), or
    (x, y, sample_weight)."""

    def __init__(self, x, y, image_data_generator, batch_size=32, shuffle=False,
                 sample_weight=None, seed=None, data_format=None, save_to_dir=None,
                 save_prefix="", save_format="png", subset=None, ignore_class_split=False,
                 dtype=None, **kwargs):
        if isinstance(x, (tuple, list)):
            raise NotImplementedError("NumpyArrayIterator: x as a tuple (images, other inputs) "
                                      "is not supported (single-input models only)")
        if data_format is None:
            data_format = image_data_generator.data_format
        if data_format != image_data_generator.data_format:
            raise NotImplementedError(f"NumpyArrayIterator: data_format={data_format!r} unlike "
                                      "its ImageDataGenerator's is not supported")
        if y is not None and len(x) != len(y):
            raise ValueError("`x` (images tensor) and `y` (labels) should have the same length. "
                             f"Found: x.shape = {np.asarray(x).shape}, "
                             f"y.shape = {np.asarray(y).shape}")
        if sample_weight is not None and len(x) != len(sample_weight):
            raise ValueError("`x` (images tensor) and `sample_weight` should have the same "
                             f"length. Found: x.shape = {np.asarray(x).shape}, "
                             f"sample_weight.shape = {np.asarray(sample_weight).shape}")
        if subset is not None:
            if subset not in {"training", "validation"}:
                raise ValueError(f"Invalid subset name: {subset}; expected \"training\" or "
                                 "\"validation\".")
            split_idx = int(len(x) * image_data_generator._validation_split)
            if y is not None and not ignore_class_split and not np.array_equal(
                    np.unique(y[:split_idx]), np.unique(y[split_idx:])):
                raise ValueError("Training and validation subsets have different number of "
                                 "classes after the split. If your numpy arrays are sorted by "
                                 "the label, you might want to shuffle them.")
            keep = slice(None, split_idx) if subset == "validation" else slice(split_idx, None)
            x = x[keep]
            y = y[keep] if y is not None else None
            sample_weight = sample_weight[keep] if sample_weight is not None else None
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        if self.x.ndim != 4:
            raise ValueError("Input data in `NumpyArrayIterator` should have rank 4. You passed "
                             f"an array with shape {self.x.shape}")
        ca = 3 if data_format == "channels_last" else 1
        if self.x.shape[ca] not in {1, 3, 4}:
            warnings.warn('NumpyArrayIterator is set to use the data format convention '
                          f'"{data_format}" (channels on axis {ca}), i.e. expected either 1, 3, '
                          f"or 4 channels on axis {ca}. However, it was passed an array with "
                          f"shape {self.x.shape} ({self.x.shape[ca]} channels).", stacklevel=3)
        self.y = np.asarray(y) if y is not None else None
        self.sample_weight = np.asarray(sample_weight) if sample_weight is not None else None
        self.image_data_generator = image_data_generator
        self.data_format, self.dtype = data_format, "float32"
        self.save_to_dir, self.save_prefix, self.save_format = save_to_dir, save_prefix, \
            save_format
        Iterator.__init__(self, self.x.shape[0], batch_size, shuffle, seed, **kwargs)

    def _batch(self, index_array, rs):
        gen = self.image_data_generator
        xb = np.ascontiguousarray(self.x[index_array])
        params = [gen._draw(xb.shape[1:], rs) for _ in range(xb.shape[0])]
        batch_x = gen._transform_and_standardize(xb, params)
        if self.save_to_dir:
            from ..images import array_to_img
            for i, j in enumerate(index_array):
                img = array_to_img(batch_x[i] if self.data_format == "channels_last" else
                                   batch_x[i].transpose(1, 2, 0), scale=True)
                fname = f"{self.save_prefix}_{j}_{rs.randint(10000)}.{self.save_format}"
                img.save(os.path.join(self.save_to_dir, fname))
        if self.y is None:
            return batch_x
        out = (batch_x, self.y[index_array])
        if self.sample_weight is not None:
            out += (self.sample_weight[index_array],)
        return out


def _valid_files(directory, formats, follow_links):
    """(root, file name) of each image under directory, walked in sorted order (Keras)."""
    for root, _, files in sorted(os.walk(directory, followlinks=follow_links),
                                 key=lambda t: t[0]):
        for fname in sorted(files):
            if fname.lower().endswith(".tiff"):
                warnings.warn('Using ".tiff" files with multiple bands will cause distortion. '
                              "Please verify your output.", stacklevel=3)
            if fname.lower().endswith(formats):
                yield root, fname


class DirectoryIterator(Iterator):
    """Augmented batches of the images of directory/<class>/... (Keras's DirectoryIterator):
    classes are the sorted subdirectories (or `classes`), labels as class_mode says
    ('categorical' one-hot, 'binary' and 'sparse' float32 indices, 'input' the images, None
    no labels); each file through load_img(color_mode, target_size, interpolation,
    keep_aspect_ratio), the augmentation and standardize."""

    allowed_class_modes = {"categorical", "binary", "sparse", "input", None}

    def __init__(self, directory, image_data_generator, target_size=(256, 256),
                 color_mode="rgb", classes=None, class_mode="categorical", batch_size=32,
                 shuffle=True, seed=None, data_format=None, save_to_dir=None, save_prefix="",
                 save_format="png", follow_links=False, subset=None, interpolation="nearest",
                 keep_aspect_ratio=False, dtype=None, **kwargs):
        if data_format is None:
            data_format = image_data_generator.data_format
        if data_format != "channels_last":
            raise NotImplementedError(f"DirectoryIterator: data_format={data_format!r} is not "
                                      "supported (channels_last only)")
        self.image_data_generator = image_data_generator
        self.target_size = tuple(target_size)
        self.keep_aspect_ratio = keep_aspect_ratio
        if color_mode not in {"rgb", "rgba", "grayscale"}:
            raise ValueError(f'Invalid color mode: {color_mode}; expected "rgb", "rgba", or '
                             '"grayscale".')
        self.color_mode = color_mode
        self.data_format, self.dtype = "channels_last", "float32"
        self.image_shape = self.target_size + ({"rgba": 4, "rgb": 3}.get(color_mode, 1),)
        self.save_to_dir, self.save_prefix, self.save_format = save_to_dir, save_prefix, \
            save_format
        self.interpolation = interpolation
        if subset is not None:
            vs = image_data_generator._validation_split
            if subset == "validation":
                split = (0, vs)
            elif subset == "training":
                split = (vs, 1)
            else:
                raise ValueError(f"Invalid subset name: {subset};expected \"training\" or "
                                 "\"validation\"")
        else:
            split = None
        self.split, self.subset = split, subset
        if class_mode not in self.allowed_class_modes:
            raise ValueError(f"Invalid class_mode: {class_mode}; expected one of: "
                             f"{self.allowed_class_modes}")
        self.directory, self.class_mode = directory, class_mode
        if not classes:
            classes = [d for d in sorted(os.listdir(directory))
                       if os.path.isdir(os.path.join(directory, d))]
        self.num_classes = len(classes)
        self.class_indices = dict(zip(classes, range(len(classes))))
        self.filenames, labels = [], []
        for name in classes:
            path = os.path.join(directory, name)
            found = list(_valid_files(path, self.white_list_formats, follow_links))
            if split:
                found = found[int(split[0] * len(found)):int(split[1] * len(found))]
            for root, fname in found:
                labels.append(self.class_indices[name])
                self.filenames.append(os.path.join(
                    name, os.path.relpath(os.path.join(root, fname), path)))
        self.samples = len(self.filenames)
        self.classes = np.array(labels, dtype="int32")
        print(f"Found {self.samples} images belonging to {self.num_classes} classes.")
        self._filepaths = [os.path.join(directory, f) for f in self.filenames]
        Iterator.__init__(self, self.samples, batch_size, shuffle, seed, **kwargs)

    @property
    def filepaths(self):
        return self._filepaths

    @property
    def labels(self):
        return self.classes

    def _batch(self, index_array, rs):
        from ..images import img_to_array, load_img
        gen = self.image_data_generator
        xb = np.zeros((len(index_array),) + self.image_shape, dtype=np.float32)
        for i, j in enumerate(index_array):
            img = load_img(self._filepaths[j], color_mode=self.color_mode,
                           target_size=self.target_size, interpolation=self.interpolation,
                           keep_aspect_ratio=self.keep_aspect_ratio)
            a = img_to_array(img)
            if hasattr(img, "close"):
                img.close()
            if a.shape != self.image_shape:
                raise ValueError(f"DirectoryIterator: {self._filepaths[j]} loads as shape "
                                 f"{a.shape}, expected {self.image_shape}")
            xb[i] = a
        params = [gen._draw(self.image_shape, rs) for _ in range(xb.shape[0])]
        batch_x = gen._transform_and_standardize(xb, params)
        if self.save_to_dir:
            from ..images import array_to_img
            for i, j in enumerate(index_array):
                fname = f"{self.save_prefix}_{j}_{rs.randint(10**7)}.{self.save_format}"
                array_to_img(batch_x[i], scale=True).save(os.path.join(self.save_to_dir, fname))
        if self.class_mode == "input":
            return batch_x, batch_x.copy()
        if self.class_mode in {"binary", "sparse"}:
            return batch_x, self.classes[index_array].astype(np.float32)
        if self.class_mode == "categorical":
            y = np.zeros((len(batch_x), self.num_classes), dtype=np.float32)
            y[np.arange(len(batch_x)), self.classes[index_array]] = 1.0
            return batch_x, y
        return batch_x


def apply_affine_transform(x, theta=0, tx=0, ty=0, shear=0, zx=1, zy=1, row_axis=1, col_axis=2,
                           channel_axis=0, fill_mode="nearest", cval=0.0, order=1):
    """keras.preprocessing.image.apply_affine_transform for a channels-last image
    (row_axis=0, col_axis=1, channel_axis=2; Keras's channels-first default is not supported):
    Keras's matrix, scipy's resampling (in C++), float32 out."""
    if (row_axis, col_axis, channel_axis) != (0, 1, 2):
        raise NotImplementedError("apply_affine_transform: only row_axis=0, col_axis=1, "
                                  "channel_axis=2 (channels-last images) is supported")
    if fill_mode not in _FILL_MODES:
        raise ValueError(f"apply_affine_transform: fill_mode must be one of {_FILL_MODES}, got "
                         f"{fill_mode!r}")
    if order not in (0, 1):
        raise NotImplementedError(f"apply_affine_transform: order={order!r} is not supported "
                                  "(0 or 1)")
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError("Input arrays must be multi-channel 2D images.")
    m = affine_matrix(theta, tx, ty, shear, zx, zy, x.shape[0], x.shape[1])
    xb = np.ascontiguousarray(x[None], dtype=np.float32)
    if m is None:
        return xb[0].copy()
    out = np.empty_like(xb)
    backend.affine_warp(out, xb, m[None], np.ones(1, np.uint8), fill_mode, order, float(cval))
    return out[0]
