"""Image augmentation layers: RandomFlip, RandomRotation, RandomZoom, RandomTranslation,
RandomContrast, RandomCrop (keras.layers, keras/src/layers/preprocessing/image_preprocessing;
docs/keras_semantics.md#augmentation-layers).

Active only in training (fit, train_on_batch, model(x, training=True)); identity otherwise
(RandomCrop: its centred crop, resized, otherwise).
Each image's parameters come from a counter-based hash of (stream, image index)
(csrc/augment.h), so a step gives the same images for any thread count; the parameters'
distributions and the transform given them are Keras's. The stream is the layer's own
generator when it has a `seed`, else the one the engine derives from the step's seed, else one
draw from cnnfast's global generator (an eager call outside any engine), as for Dropout.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend, utils
from . import base
from ._util import check_data_format
from .base import Layer, shape_str

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("bilinear", "nearest")


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


class BaseAugmentation(Layer):
    """What the augmentation layers share: the stream, training-only forward, no backward."""

    stochastic = True

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_data_format(data_format, f"{type(self).__name__} '{self.name}'")
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def _check_input_shape(self, input_shape):
        if len(input_shape) != 4 or any(d is None for d in input_shape[1:]):
            raise ValueError(f"Input of layer '{self.name}' ({type(self).__name__}) must be a "
                             "batch of images (batch, height, width, channels) with known "
                             f"sizes, found shape {shape_str(input_shape)}")

    def spec(self):
        """The layer as a _core.AugmentSpec (the kernel's and the Net op's parameters)."""
        raise NotImplementedError

    def forward(self, x, training, seed=None):
        if not training:
            return self._inference(x)
        if self._rng is not None:
            seed = int(self._rng.integers(0, 2**63))
        elif seed is None:
            seed = int(utils.rng().integers(0, 2**63))
        self._x = np.ascontiguousarray(x, dtype=np.float32)
        y = self._buffer("y", (x.shape[0],) + tuple(self.compute_output_shape(x.shape)[1:]))
        backend.augment_forward(y, self._x, self.spec(), seed, base.sample_offset)
        return y

    def _inference(self, x):
        return x

    def backward(self, dout, need_dinp=True, dout_is_dlogits=False):
        # Keras computes no gradient through its preprocessing layers into their input, and
        # the engines never ask for one: these layers sit below every layer with weights
        # (Model._backward asks a layer for d(input) only when a layer below has weights).
        if need_dinp:
            raise NotImplementedError(f"{type(self).__name__} '{self.name}': no gradient flows "
                                      "through an augmentation layer; put it before every "
                                      "layer with weights")
        return None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        c = super().get_config()
        c.update(seed=self.seed, data_format="channels_last")
        return c


class _Resampling(BaseAugmentation):
    """fill_mode / interpolation / fill_value, checked as Keras checks them."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", fill_value=0.0, **kwargs):
        super().__init__(**kwargs)
        where = f"{type(self).__name__} '{self.name}'"
        if fill_mode not in _FILL_MODES:
            raise NotImplementedError(f"{where}: unknown fill_mode {fill_mode!r}; expected one "
                                      f"of {_FILL_MODES}")
        if interpolation not in _INTERPOLATIONS:
            raise NotImplementedError(f"{where}: unknown interpolation {interpolation!r}; "
                                      f"expected one of {_INTERPOLATIONS}")
        if not _is_number(fill_value):
            raise TypeError(f"{where}: fill_value must be a float, got {fill_value!r}")
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = float(fill_value)

    def get_config(self):
        c = super().get_config()
        c.update(fill_mode=self.fill_mode, interpolation=self.interpolation,
                 fill_value=self.fill_value)
        return c


class RandomFlip(BaseAugmentation):
    """Flips each image with probability 1/2.

    Args: mode 'horizontal', 'vertical' or 'horizontal_and_vertical' (the default: as in Keras,
        one draw per image flips both axes at once, or neither), seed.
    Input shape: (batch, height, width, channels). Output shape: the same.
    """

    _MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in self._MODES:
            raise ValueError(f"RandomFlip '{self.name}': mode must be one of {self._MODES}, got "
                             f"{mode!r}")
        self.mode = mode

    def spec(self):
        return backend.AugmentSpec.flip(self.mode != "vertical", self.mode != "horizontal")

    def get_config(self):
        c = super().get_config()
        c.update(mode=self.mode)
        return c


class RandomRotation(_Resampling):
    """Rotates each image about its centre by an angle uniform in [lower, upper] * 360 degrees
    (counter-clockwise positive), filling as fill_mode says.

    Args: factor (a fraction of a full turn: f gives [-f, f]; a pair (lower, upper)),
        fill_mode='reflect', interpolation='bilinear', seed, fill_value=0.0.
    Input shape: (batch, height, width, channels). Output shape: the same.
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, fill_value=fill_value,
                         seed=seed, data_format=data_format, **kwargs)
        # Keras's BaseImagePreprocessingLayer._set_factor with bounds [-1, 1]
        msg = ("The `factor` argument should be a number (or a list of two numbers) in the "
               f"range [-1.0, 1.0]. Received: factor={factor}")
        if isinstance(factor, (tuple, list)):
            if len(factor) != 2 or not all(_is_number(f) for f in factor) or \
                    factor[0] > 1.0 or factor[1] < -1.0:
                raise ValueError(f"RandomRotation '{self.name}': {msg}")
            lower, upper = sorted(float(f) for f in factor)
        elif _is_number(factor):
            if not -1.0 <= factor <= 1.0:
                raise ValueError(f"RandomRotation '{self.name}': {msg}")
            lower, upper = max(-abs(float(factor)), -1.0), abs(float(factor))
        else:
            raise ValueError(f"RandomRotation '{self.name}': {msg}")
        self.factor = (lower, upper)

    def spec(self):
        return backend.AugmentSpec.resample(backend.AugmentKind.rotation, self.factor[0],
                                            self.factor[1], False, 0.0, 0.0, self.fill_mode,
                                            self.interpolation, self.fill_value)

    def get_config(self):
        c = super().get_config()
        c.update(factor=self.factor)
        return c


def _zoom_range(factor, name, layer):
    """Keras RandomZoom._set_factor: each bound in (-1, 1]; a number f gives [-|f|, |f|]."""
    msg = (f"RandomZoom '{layer}': the `height_factor` and `width_factor` arguments should be a "
           f"number (or a list of two numbers) in the range (-1.0, 1.0]. Received: "
           f"{name}={factor}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(_is_number(f) and -1.0 < f <= 1.0 for f in factor):
            raise ValueError(msg)
        return tuple(sorted(float(f) for f in factor))
    if not _is_number(factor) or not -1.0 < factor <= 1.0:
        raise ValueError(msg)
    return (-abs(float(factor)), abs(float(factor)))


class RandomZoom(_Resampling):
    """Zooms each image about its centre: the input is read at (1 + z) times the output's
    coordinates, z uniform in the factor's range, so a positive z zooms out and a negative one
    zooms in (Keras's convention).

    Args: height_factor (f gives [-f, f]; a pair (lower, upper), each in (-1, 1]),
        width_factor (None: the height's zoom, keeping the aspect ratio), fill_mode='reflect',
        interpolation='bilinear', seed, fill_value=0.0.
    Input shape: (batch, height, width, channels). Output shape: the same.
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, fill_value=fill_value,
                         seed=seed, data_format=data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._height = _zoom_range(height_factor, "height_factor", self.name)
        self._width = _zoom_range(width_factor, "width_factor", self.name) \
            if width_factor is not None else (0.0, 0.0)

    def spec(self):
        return backend.AugmentSpec.resample(backend.AugmentKind.zoom, *self._height,
                                            self.width_factor is not None, *self._width,
                                            self.fill_mode, self.interpolation, self.fill_value)

    def get_config(self):
        c = super().get_config()
        c.update(height_factor=self.height_factor, width_factor=self.width_factor)
        return c


def _factor_range(factor, name, layer, bounds=(-1.0, 1.0), what="factor"):
    """Keras's _set_factor: a number f in bounds gives [max(-|f|, bounds[0]), |f|]; a pair
    (lower, upper) is sorted (RandomTranslation checks each bound, the base class only
    lower <= bounds[1] and upper >= bounds[0], as Keras)."""
    msg = (f"{type(layer).__name__} '{layer.name}': the `{what}` argument should be a number (or "
           f"a list of two numbers) in the range [{bounds[0]}, {bounds[1]}]. Received: "
           f"{name}={factor}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(_is_number(f) for f in factor):
            raise ValueError(msg)
        if what == "factor":
            if factor[0] > bounds[1] or factor[1] < bounds[0]:
                raise ValueError(msg)
        elif not all(bounds[0] <= f <= bounds[1] for f in factor):
            raise ValueError(msg)
        return tuple(sorted(float(f) for f in factor))
    if not _is_number(factor) or not bounds[0] <= factor <= bounds[1]:
        raise ValueError(msg)
    return (max(-abs(float(factor)), bounds[0]), abs(float(factor)))


class RandomTranslation(_Resampling):
    """Shifts each image by (dy, dx) pixels, dy uniform in [lower, upper] * height and dx in
    [lower, upper] * width of the factors' ranges (positive: down / right), filling as
    fill_mode says.

    Args: height_factor, width_factor (f gives [-f, f]; a pair (lower, upper), each in
        [-1, 1]), fill_mode='reflect', interpolation='bilinear', seed, fill_value=0.0.
    Input shape: (batch, height, width, channels). Output shape: the same.
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, fill_value=fill_value,
                         seed=seed, data_format=data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._height = _factor_range(height_factor, "height_factor", self,
                                     what="height_factor` and `width_factor")
        self._width = _factor_range(width_factor, "width_factor", self,
                                    what="height_factor` and `width_factor")

    def spec(self):
        return backend.AugmentSpec.resample(backend.AugmentKind.translation, *self._height,
                                            True, *self._width, self.fill_mode,
                                            self.interpolation, self.fill_value)

    def get_config(self):
        c = super().get_config()
        c.update(height_factor=self.height_factor, width_factor=self.width_factor)
        return c


class RandomContrast(BaseAugmentation):
    """Scales each image's deviation from its per-channel mean (over rows and columns) by a
    factor c, then clips to value_range: (x - mean) * c + mean.

    Args: factor (a number f in [0, 1], or a pair (lower, upper)), value_range=(0, 255), seed.
        Keras 3's parsing: a number f gives the range (0, f) and c is uniform in
        [1 - lower, 1 + upper], so RandomContrast(f) only ever raises the contrast (c >= 1),
        exactly as Keras 3 does (docs/keras_semantics.md#augmentation-layers).
    Input shape: (batch, height, width, channels). Output shape: the same.
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _factor_range(factor, "factor", self, bounds=(0.0, 1.0))
        if not (isinstance(value_range, (tuple, list)) and len(value_range) == 2 and
                all(_is_number(v) for v in value_range) and value_range[0] <= value_range[1]):
            raise ValueError(f"RandomContrast '{self.name}': value_range must be a pair "
                             f"(low, high) with low <= high, got {value_range!r}")
        self.value_range = tuple(value_range)

    def spec(self):
        return backend.AugmentSpec.contrast(self.factor[0], self.factor[1],
                                            float(self.value_range[0]),
                                            float(self.value_range[1]))

    def get_config(self):
        c = super().get_config()
        c.update(factor=self.factor, value_range=self.value_range)
        return c


class RandomCrop(BaseAugmentation):
    """Crops the batch to (height, width) at one random place per batch (Keras: the same window
    for every image of a batch) when the images are larger than that in both axes; otherwise,
    and at inference, Keras's centred crop resized to (height, width)
    (docs/keras_semantics.md#augmentation-layers).

    Args: height, width (positive ints), seed.
    Input shape: (batch, H, W, channels). Output shape: (batch, height, width, channels).
    """

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        for arg, v in (("height", height), ("width", width)):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"RandomCrop '{self.name}': {arg} must be a positive int, got "
                                 f"{v!r}")
        self.height, self.width = int(height), int(width)

    def spec(self):
        return backend.AugmentSpec.crop(self.height, self.width)

    def _inference(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = self._buffer("yi", (x.shape[0],) + tuple(self.compute_output_shape(x.shape)[1:]))
        backend.augment_inference(y, x, self.spec())
        return y

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def get_config(self):
        c = super().get_config()
        c.update(height=self.height, width=self.width)
        return c
