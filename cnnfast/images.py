"""Turn any PNG/JPEG into the 28x28 image a Fashion-MNIST model expects.

Fashion-MNIST images are grayscale, 28x28, a light object on a black background. A photo or a
drawing usually has a light background, so: convert to grayscale (transparent pixels become
white), invert when the border is mostly light, pad to a square with the background colour and
resize to 28x28. Pillow is the optional ``images`` extra (``pip install 'cnnfast[images]'``).
"""
from __future__ import annotations

import numpy as np

SIZE = 28

MISSING_MESSAGE = ("reading images needs Pillow, which is not installed: "
                   "pip install 'cnnfast[images]' (or pip install pillow)")


class ImagesUnavailable(ImportError):
    """Pillow is not installed."""


def _pil():
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ImagesUnavailable(MISSING_MESSAGE) from None
    return Image, ImageOps


def to_fashion_mnist(gray):
    """(H, W) grayscale array in 0..1 -> (28, 28) float32 in 0..1, light object on black:
    inverted when the border is mostly light, padded to a square, resized (Lanczos)."""
    Image, _ = _pil()
    a = np.asarray(gray, dtype=np.float32)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"expected a 2-D grayscale image, got shape {a.shape}")
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    if float(np.median(border)) > 0.5:
        a = 1.0 - a
    h, w = a.shape
    if h != w:
        side = max(h, w)
        sq = np.zeros((side, side), np.float32)
        top, left = (side - h) // 2, (side - w) // 2
        sq[top:top + h, left:left + w] = a
        a = sq
    if a.shape != (SIZE, SIZE):
        img = Image.fromarray(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
        img = img.resize((SIZE, SIZE), Image.LANCZOS)
        a = np.asarray(img, dtype=np.float32) / 255.0
    return np.clip(a, 0.0, 1.0).astype(np.float32)


def load_image(path):
    """Read a PNG/JPEG (anything Pillow opens) as a Fashion-MNIST-style (28, 28) float32 image
    in 0..1. Raises FileNotFoundError, ImagesUnavailable, or ValueError for a file that is not
    an image."""
    Image, ImageOps = _pil()
    from PIL import UnidentifiedImageError
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and
                                                      "transparency" in img.info):
                rgba = img.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, rgba)
            gray = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image Pillow can read") from None
    return to_fashion_mnist(gray)


# ---- keras.utils / keras.preprocessing.image: load_img, img_to_array, array_to_img,
# save_img, smart_resize (keras/src/utils/image_utils.py; outputs identical to Keras's) ----
_RESAMPLE = ("nearest", "bilinear", "bicubic", "hamming", "box", "lanczos")


def _check_channels_last(data_format, fn):
    if data_format not in (None, "channels_last"):
        raise NotImplementedError(f"{fn}: data_format={data_format!r} is not supported "
                                  "(cnnfast is channels_last only)")


def _resample(Image, interpolation):
    return getattr(getattr(Image, "Resampling", Image), interpolation.upper())


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest",
             keep_aspect_ratio=False):
    """A PIL image from `path` (a path, bytes path or io.BytesIO), as keras.utils.load_img:
    color_mode 'grayscale' (8-, 16- and 32-bit grayscale kept, else 'L'), 'rgb' or 'rgba';
    target_size (height, width) resized with `interpolation` (nearest, bilinear, bicubic,
    hamming, box, lanczos), after a centred crop to the target's aspect ratio when
    keep_aspect_ratio."""
    import io
    import pathlib
    Image, _ = _pil()
    if isinstance(path, io.BytesIO):
        img = Image.open(path)
    elif isinstance(path, (pathlib.Path, bytes, str)):
        if isinstance(path, pathlib.Path):
            path = str(path.resolve())
        with open(path, "rb") as f:
            img = Image.open(io.BytesIO(f.read()))
    else:
        raise TypeError(f"path should be path-like or io.BytesIO, not {type(path)}")
    if color_mode == "grayscale":
        if img.mode not in ("L", "I;16", "I"):
            img = img.convert("L")
    elif color_mode == "rgba":
        if img.mode != "RGBA":
            img = img.convert("RGBA")
    elif color_mode == "rgb":
        if img.mode != "RGB":
            img = img.convert("RGB")
    else:
        raise ValueError('color_mode must be "grayscale", "rgb", or "rgba"')
    if target_size is not None:
        wh = (target_size[1], target_size[0])
        if img.size != wh:
            if interpolation not in _RESAMPLE:
                raise ValueError(f"Invalid interpolation method {interpolation} specified. "
                                 f"Supported methods are {', '.join(_RESAMPLE)}")
            resample = _resample(Image, interpolation)
            if keep_aspect_ratio:
                width, height = img.size
                ch = min(height, (width * wh[1]) // wh[0])
                cw = min(width, (height * wh[0]) // wh[1])
                h0, w0 = (height - ch) // 2, (width - cw) // 2
                img = img.resize(wh, resample, box=[w0, h0, w0 + cw, h0 + ch])
            else:
                img = img.resize(wh, resample)
    return img


def img_to_array(img, data_format=None, dtype=None):
    """A PIL image (or array) as a (height, width, channels) array of `dtype` (float32)."""
    _check_channels_last(data_format, "img_to_array")
    x = np.asarray(img, dtype=dtype or "float32")
    if x.ndim == 2:
        x = x.reshape(x.shape + (1,))
    elif x.ndim != 3:
        raise ValueError(f"Unsupported image shape: {x.shape}")
    return x


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A (height, width, 1|3|4) array as a PIL image ('L' or 'I' (values above 255), 'RGB',
    'RGBA'); with `scale`, shifted and scaled to 0..255 first, as Keras."""
    _check_channels_last(data_format, "array_to_img")
    Image, _ = _pil()
    x = np.asarray(x, dtype=dtype or "float32")
    if x.ndim != 3:
        raise ValueError("Expected image array to have rank 3 (single image). Got array with "
                         f"shape: {x.shape}")
    if scale:
        x = x - np.min(x)
        top = np.max(x)
        if top != 0:
            x /= top
        x *= 255
    c = x.shape[2]
    if c in (3, 4):
        return Image.fromarray(x.astype("uint8"), "RGBA" if c == 4 else "RGB")
    if c == 1:
        if np.max(x) > 255:
            return Image.fromarray(x[:, :, 0].astype("int32"), "I")
        return Image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"Unsupported channel number: {c}")


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Save a (height, width, channels) array as an image file (array_to_img, then Pillow;
    the format from the file name unless given; RGBA to JPEG is converted to RGB, with
    Keras's warning)."""
    import pathlib
    import warnings
    if file_format is None and isinstance(path, (str, pathlib.Path)):
        file_format = pathlib.Path(path).suffix[1:].lower()
    if file_format and file_format.lower() == "jpg":
        file_format = "jpeg"
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and file_format == "jpeg":
        warnings.warn("The JPEG format does not support RGBA images, converting to RGB.",
                      stacklevel=2)
        img = img.convert("RGB")
    img.save(path, format=file_format, **kwargs)


def smart_resize(x, size, interpolation="bilinear", data_format="channels_last",
                 backend_module=None):
    """keras.preprocessing.image.smart_resize: the largest centred window of the target's
    aspect ratio, resized to `size` (height, width); one image (H,W,C) or a batch (B,H,W,C).
    Bilinear only (the C++ resize, bit-exact with tf.image.resize)."""
    from . import backend
    _check_channels_last(data_format, "smart_resize")
    if backend_module is not None:
        raise NotImplementedError("smart_resize: argument backend_module is not supported")
    if interpolation != "bilinear":
        raise NotImplementedError(f"smart_resize: interpolation={interpolation!r} is not "
                                  "supported (bilinear only)")
    if len(size) != 2:
        raise ValueError(f"Expected `size` to be a tuple of 2 integers, but got: {size}.")
    a = np.asarray(x)
    if a.ndim not in (3, 4):
        raise ValueError("Expected an image array with shape `(height, width, channels)`, or "
                         "`(batch_size, height, width, channels)`, but got input with "
                         f"incorrect rank, of shape {a.shape}.")
    batch = a if a.ndim == 4 else a[None]
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    out = np.empty((batch.shape[0], int(size[0]), int(size[1]), batch.shape[3]), np.float32)
    backend.augment_inference(out, batch, backend.AugmentSpec.crop(int(size[0]), int(size[1])))
    return out if a.ndim == 4 else out[0]
