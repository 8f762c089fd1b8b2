"""Fashion-MNIST with Keras's ``load_data()`` contract (keras.datasets.fashion_mnist).

Where the files come from is described in ``cnnfast/datasets/_fetch.py``: ``$CNNFAST_DATA/
fashion-mnist/``, ``~/.cnnfast/datasets/fashion-mnist/``, ``/usr/share/datasets/fashion-mnist/``
(``apt-get install dataset-fashion-mnist``), else a verified download from Keras's mirror.
"""
from __future__ import annotations

import hashlib

import numpy as np

from . import _fetch
from ._fetch import DatasetNotFoundError, DownloadError
from ._idx import IMAGES_MAGIC, LABELS_MAGIC, IdxError, parse_idx, read_bytes

__all__ = ["load_data", "class_names", "DatasetNotFoundError"]

class_names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")

SUBDIR = "fashion-mnist"
BASE_URL = _fetch.BASE_URL

# (magic, shape) of each file, in Keras's order.
FILES = {
    "train-images-idx3-ubyte.gz": (IMAGES_MAGIC, (60000, 28, 28)),
    "train-labels-idx1-ubyte.gz": (LABELS_MAGIC, (60000,)),
    "t10k-images-idx3-ubyte.gz": (IMAGES_MAGIC, (10000, 28, 28)),
    "t10k-labels-idx1-ubyte.gz": (LABELS_MAGIC, (10000,)),
}

# SHA-256 and size of each file's *decompressed* IDX content, computed from the Debian package
# dataset-fashion-mnist on the build machine. The hash is taken after gunzip on purpose: Debian
# recompressed the .gz files (their MD5s differ from Zalando's published ones, e.g.
# train-images cf8536b0... vs 8d4fb7e6...), so a hash of the .gz bytes could not be checked here,
# while the content is the dataset itself and is the same however it was compressed. The sizes
# follow from the IDX format (header + prod(shape)); the test-label head 9,2,1,1,6,1,4,6,5,7 and
# the 6000-per-class training balance match the published dataset.
FILE_SHA256 = {
    "train-images-idx3-ubyte.gz":
        ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47040016),
    "train-labels-idx1-ubyte.gz":
        ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60008),
    "t10k-images-idx3-ubyte.gz":
        ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7840016),
    "t10k-labels-idx1-ubyte.gz":
        ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10008),
}

APT_HINT = ("apt-get install dataset-fashion-mnist (Debian/Ubuntu; installs the files in "
            "/usr/share/datasets/fashion-mnist).")


def _read(path: str, fname: str) -> np.ndarray:
    magic, shape = FILES[fname]
    return parse_idx(read_bytes(path), path, magic, shape)


def _verify_download(fname: str):
    def verify(tmp: str) -> None:
        data = read_bytes(tmp)  # IdxError (ValueError) on a damaged gzip stream
        want_sha, want_size = FILE_SHA256[fname]
        if len(data) != want_size:
            raise DownloadError(f"{fname}: {len(data)} bytes after decompression, expected "
                                f"{want_size}; temporary file deleted")
        got = hashlib.sha256(data).hexdigest()
        if got != want_sha:
            raise DownloadError(f"{fname}: SHA-256 mismatch (got {got}, expected {want_sha}); "
                                "temporary file deleted")
        parse_idx(data, fname, *FILES[fname])
    return verify


def _load(paths: dict[str, str]):
    x_train = _read(paths["train-images-idx3-ubyte.gz"], "train-images-idx3-ubyte.gz")
    y_train = _read(paths["train-labels-idx1-ubyte.gz"], "train-labels-idx1-ubyte.gz")
    x_test = _read(paths["t10k-images-idx3-ubyte.gz"], "t10k-images-idx3-ubyte.gz")
    y_test = _read(paths["t10k-labels-idx1-ubyte.gz"], "t10k-labels-idx1-ubyte.gz")
    for name, y in (("train", y_train), ("test", y_test)):
        if y.size and y.max() > 9:
            raise IdxError(f"Fashion-MNIST {name} labels contain {int(y.max())}, expected 0..9")
    return (x_train, y_train), (x_test, y_test)


def load_data():
    """Load Fashion-MNIST as Keras does.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 arrays of shapes (60000, 28, 28),
        (60000,), (10000, 28, 28), (10000,); labels 0..9 index ``class_names``.

    Raises:
        DatasetNotFoundError: (a FileNotFoundError) the files are nowhere and the download failed;
            the message lists the places searched, why the download failed and how to provide
            the data.
        ValueError: a file was found but is corrupt, truncated or not the expected IDX file.
    """
    names = list(FILES)
    tried = []
    for d in _fetch.search_dirs(SUBDIR):
        paths = {f: _fetch.find_file(d, f) for f in names}
        if all(paths.values()):
            return _load(paths)
        tried.append(_fetch.describe_dir(d, names))
    cache = _fetch.cache_dir(SUBDIR)
    try:
        paths = {}
        for f in names:
            paths[f] = _fetch.find_file(cache, f) or _fetch.download(
                BASE_URL + f, cache, f, _verify_download(f))
    except DownloadError as e:
        raise DatasetNotFoundError(_fetch.not_found_message(
            "Fashion-MNIST", SUBDIR, names, tried, e, APT_HINT)) from e
    return _load(paths)
