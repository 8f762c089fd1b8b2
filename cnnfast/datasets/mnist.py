"""MNIST with Keras's ``load_data()`` contract (keras.datasets.mnist).

Searched like Fashion-MNIST (see ``_fetch.py``): ``$CNNFAST_DATA/mnist/``,
``~/.cnnfast/datasets/mnist/``, ``/usr/share/datasets/mnist/``. A directory may hold Keras's
``mnist.npz`` (keys x_train, y_train, x_test, y_test) or the four IDX files (gzip or raw). When
none is found, ``mnist.npz`` is downloaded from Keras's mirror into ``~/.cnnfast/datasets/mnist``.

No Debian package ships MNIST (``apt-cache search mnist`` lists only dataset-fashion-mnist), so
no SHA-256 could be computed from a local copy here. Keras pins a hash for mnist.npz in its own
source, but it could not be checked against a file on this machine, so instead of an
unverifiable constant the download is verified *structurally*: a plain npz (allow_pickle=False)
with exactly the four arrays, uint8, shapes (60000,28,28) (60000,) (10000,28,28) (10000,), labels
0..9. A file that fails is deleted and never renamed into the cache.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from . import _fetch
from ._fetch import DatasetNotFoundError, DownloadError
from ._idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

__all__ = ["load_data", "DatasetNotFoundError"]

SUBDIR = "mnist"
BASE_URL = _fetch.BASE_URL
NPZ = "mnist.npz"
SHAPES = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28),
          "y_test": (10000,)}
IDX_FILES = {
    "x_train": ("train-images-idx3-ubyte.gz", IMAGES_MAGIC),
    "y_train": ("train-labels-idx1-ubyte.gz", LABELS_MAGIC),
    "x_test": ("t10k-images-idx3-ubyte.gz", IMAGES_MAGIC),
    "y_test": ("t10k-labels-idx1-ubyte.gz", LABELS_MAGIC),
}
APT_HINT = ("install it system-wide in /usr/share/datasets/mnist (no Debian/Ubuntu package is "
            "known to ship MNIST; `apt-cache search mnist` finds only dataset-fashion-mnist).")


def _check(arrays: dict, where: str) -> None:
    for key, shape in SHAPES.items():
        a = arrays[key]
        if a.dtype != np.uint8 or a.shape != shape:
            raise ValueError(f"{where}: {key} is {a.dtype}{a.shape}, expected uint8{shape}")
    for key in ("y_train", "y_test"):
        if arrays[key].max() > 9:
            raise ValueError(f"{where}: {key} contains {int(arrays[key].max())}, expected 0..9")


def _read_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            if keys != set(SHAPES):
                raise ValueError(f"{path}: npz keys {sorted(keys)}, expected {sorted(SHAPES)}")
            arrays = {k: f[k] for k in SHAPES}
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"{path}: not a valid .npz file ({e})") from e
    _check(arrays, path)
    return arrays


def _read_idx_dir(paths: dict) -> dict:
    arrays = {k: read_idx(paths[k], IDX_FILES[k][1], SHAPES[k]) for k in SHAPES}
    _check(arrays, os.path.dirname(paths["x_train"]))
    return arrays


def _result(a: dict):
    return (a["x_train"], a["y_train"]), (a["x_test"], a["y_test"])


def load_data(path: str = NPZ):
    """Load MNIST as Keras does.

    Args:
        path: file name of the npz inside the cache directory (Keras's argument; default
            ``mnist.npz``).

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes (60000, 28, 28),
        (60000,), (10000, 28, 28), (10000,); labels 0..9.

    Raises:
        DatasetNotFoundError: (a FileNotFoundError) nothing found and the download failed.
        ValueError: a file was found but is corrupt or has the wrong structure.
    """
    idx_names = [v[0] for v in IDX_FILES.values()]
    tried = []
    for d in _fetch.search_dirs(SUBDIR):
        npz = os.path.join(d, path)
        if os.path.isfile(npz):
            return _result(_read_npz(npz))
        paths = {k: _fetch.find_file(d, IDX_FILES[k][0]) for k in SHAPES}
        if all(paths.values()):
            return _result(_read_idx_dir(paths))
        tried.append(_fetch.describe_dir(d, [path] + idx_names) + f" (needs {path} or the "
                     "four IDX files)")
    cache = _fetch.cache_dir(SUBDIR)
    try:
        got = _fetch.download(BASE_URL + NPZ, cache, path, _read_npz)
    except DownloadError as e:
        raise DatasetNotFoundError(_fetch.not_found_message(
            "MNIST", SUBDIR, [path + " (Keras npz)", "or the four IDX files"] + idx_names,
            tried, e, APT_HINT)) from e
    return _result(_read_npz(got))
