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
