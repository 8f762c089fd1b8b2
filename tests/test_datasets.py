"""cnnfast.datasets: IDX reader, search order, verified download, error messages.

The real-data test reads the Debian package's copy; everything else uses small synthetic files
in tmp dirs and a local http.server on 127.0.0.1. Nothing here touches the real network.
"""
import gzip
import hashlib
import http.server
import io
import os
import struct
import threading

import numpy as np
import pytest

from cnnfast.datasets import DatasetNotFoundError, IdxError, _fetch, fashion_mnist, mnist
from cnnfast.datasets._idx import read_idx

SYSTEM_FASHION = "/usr/share/datasets/fashion-mnist"
FASHION_FILES = list(fashion_mnist.FILES)


def idx_bytes(arr, magic=None):
    arr = np.asarray(arr, np.uint8)
    magic = magic if magic is not None else (0x0800 | arr.ndim)
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write(path, data, gz=True):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(gzip.compress(data) if gz else data)


def small_fashion(seed, n_train=12, n_test=5):
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def paired_split(n_train, n_test):
    """Synthetic images and labels in which a wrong training label cannot hide: image i's pixels
    encode (split, i), and the label sequences are ones no shuffle (except swapping equal labels)
    or the other split's file reproduces: train 3, 0, 7, 4, ... and test 1, 4, 7, 0, ..."""
    x_train = np.broadcast_to(np.arange(n_train, dtype=np.uint8)[:, None, None],
                              (n_train, 28, 28)).copy()
    x_test = np.broadcast_to(np.arange(128, 128 + n_test, dtype=np.uint8)[:, None, None],
                             (n_test, 28, 28)).copy()
    y_train = ((np.arange(n_train) * 7 + 3) % 10).astype(np.uint8)
    y_test = ((np.arange(n_test) * 3 + 1) % 10).astype(np.uint8)
    return x_train, y_train, x_test, y_test


def assert_loaded_as(got, x_train, y_train, x_test, y_test):
    """load_data()'s result is exactly these four arrays: right file, right split, same order."""
    (gx, gy), (gxt, gyt) = got
    for what, a, b in (("x_train", gx, x_train), ("y_train", gy, y_train),
                       ("x_test", gxt, x_test), ("y_test", gyt, y_test)):
        assert a.dtype == np.uint8 and a.shape == b.shape, (what, a.dtype, a.shape, b.shape)
        # Images print as their first pixel, the sample number that paired_split wrote there.
        assert np.array_equal(a, b), f"{what}: got {a.reshape(len(a), -1)[:, 0].tolist()}, " \
                                     f"expected {b.reshape(len(b), -1)[:, 0].tolist()}"


def write_fashion(directory, arrays, gz=True):
    for name, a in arrays.items():
        write(os.path.join(directory, name if gz else name[:-3]), idx_bytes(a), gz)


@pytest.fixture
def small_shapes(monkeypatch):
    """Let the loader accept the small synthetic files (12 train / 5 test samples)."""
    shapes = {"train-images-idx3-ubyte.gz": (0x803, (12, 28, 28)),
              "train-labels-idx1-ubyte.gz": (0x801, (12,)),
              "t10k-images-idx3-ubyte.gz": (0x803, (5, 28, 28)),
              "t10k-labels-idx1-ubyte.gz": (0x801, (5,))}
    monkeypatch.setattr(fashion_mnist, "FILES", shapes)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """HOME in tmp, no CNNFAST_DATA, no system dir, downloads go to a closed local port."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CNNFAST_DATA", raising=False)
    monkeypatch.setattr(_fetch, "SYSTEM_ROOT", str(tmp_path / "system"))
    monkeypatch.setattr(fashion_mnist, "BASE_URL", "http://127.0.0.1:9/")  # discard port: refused
    monkeypatch.setattr(mnist, "BASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setattr(_fetch, "DOWNLOAD_TIMEOUT_S", 5.0)
    return tmp_path


# ---------------------------------------------------------------- real data

@pytest.mark.skipif(not os.path.isdir(SYSTEM_FASHION),
                    reason="needs the Debian package dataset-fashion-mnist "
                           "(/usr/share/datasets/fashion-mnist)")
def test_real_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # make sure the system copy is the one read
    monkeypatch.delenv("CNNFAST_DATA", raising=False)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8
    assert np.array_equal(np.bincount(y_train, minlength=10), np.full(10, 6000))
    assert np.array_equal(np.bincount(y_test, minlength=10), np.full(10, 1000))
    # Known content: pixel sums and the first test labels of the published dataset.
    assert int(x_train.sum(dtype=np.int64)) == 3431114169
    assert int(x_test.sum(dtype=np.int64)) == 573469082
    assert y_test[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert not os.path.exists(tmp_path / ".cnnfast")  # nothing downloaded or cached
    assert len(fashion_mnist.class_names) == 10
    assert fashion_mnist.class_names[0] == "T-shirt/top"
    assert fashion_mnist.class_names[9] == "Ankle boot"


# ---------------------------------------------------------------- IDX reader

def test_idx_roundtrip_gzip_and_raw(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write(str(tmp_path / "a.gz"), idx_bytes(a), gz=True)
    write(str(tmp_path / "a"), idx_bytes(a), gz=False)
    for p in ("a.gz", "a"):
        got = read_idx(tmp_path / p, 0x803, (2, None, 4))
        assert got.dtype == np.uint8 and np.array_equal(got, a)
        got[0, 0, 0] = 1  # a real, writable array


@pytest.mark.parametrize("mutate, match", [
    (lambda d: b"\x12\x34" + d[2:], "bad magic number 0x1234"),
    (lambda d: d[:2] + b"\x0d" + d[3:], r"element type 0x0d is not unsigned byte"),
    (lambda d: d[:-5], "payload truncated"),
    (lambda d: d + b"\x00", "trailing bytes"),
    (lambda d: d[:10], "truncated header"),
    (lambda d: b"", "too short"),
])
def test_idx_corrupt(tmp_path, mutate, match):
    d = idx_bytes(np.zeros((2, 3, 4), np.uint8))
    p = tmp_path / "bad.gz"
    write(str(p), mutate(d))
    with pytest.raises(IdxError, match=match) as e:
        read_idx(p, 0x803)
    assert str(p) in str(e.value)  # the file is named
    assert isinstance(e.value, ValueError)


def test_idx_wrong_kind_and_dimensions(tmp_path):
    p = tmp_path / "labels.gz"
    write(str(p), idx_bytes(np.zeros(7, np.uint8)))
    with pytest.raises(IdxError, match=r"magic number 0x00000801, expected 0x00000803"):
        read_idx(p, 0x803)
    q = tmp_path / "img.gz"
    write(str(q), idx_bytes(np.zeros((3, 27, 28), np.uint8)))
    with pytest.raises(IdxError, match=r"declared dimensions \(3, 27, 28\), expected"):
        read_idx(q, 0x803, (None, 28, 28))


def test_bad_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.zeros((4, 28, 28), np.uint8)))
    p = tmp_path / "trunc.gz"
    p.write_bytes(good[: len(good) // 2])
    with pytest.raises(IdxError, match="corrupt or truncated gzip") as e:
        read_idx(p)
    assert str(p) in str(e.value)
    q = tmp_path / "garbage.gz"
    q.write_bytes(b"\x1f\x8b" + b"\xff" * 50)
    with pytest.raises(IdxError, match="corrupt or truncated gzip"):
        read_idx(q)


# ---------------------------------------------------------------- search order

def test_search_order(isolated, small_shapes, monkeypatch):
    env_root, home, system = isolated / "env", isolated / "home", isolated / "system"
    a, b, c = small_fashion(1), small_fashion(2), small_fashion(3)
    write_fashion(str(system / "fashion-mnist"), c)
    (x, _), _ = fashion_mnist.load_data()
    assert np.array_equal(x, c["train-images-idx3-ubyte.gz"])
    write_fashion(str(home / ".cnnfast" / "datasets" / "fashion-mnist"), b, gz=False)  # raw IDX
    (x, _), _ = fashion_mnist.load_data()
    assert np.array_equal(x, b["train-images-idx3-ubyte.gz"])
    write_fashion(str(env_root / "fashion-mnist"), a)
    monkeypatch.setenv("CNNFAST_DATA", str(env_root))
    (x, y), (xt, yt) = fashion_mnist.load_data()
    assert np.array_equal(x, a["train-images-idx3-ubyte.gz"])
    assert np.array_equal(yt, a["t10k-labels-idx1-ubyte.gz"])
    assert np.array_equal(y, a["train-labels-idx1-ubyte.gz"])


def test_incomplete_dir_is_skipped(isolated, small_shapes):
    home = isolated / "home" / ".cnnfast" / "datasets" / "fashion-mnist"
    a, c = small_fashion(1), small_fashion(3)
    write_fashion(str(home), {k: v for k, v in a.items() if "t10k-labels" not in k})
    write_fashion(str(isolated / "system" / "fashion-mnist"), c)
    (x, _), _ = fashion_mnist.load_data()
    assert np.array_equal(x, c["train-images-idx3-ubyte.gz"])


def test_corrupt_file_found_raises(isolated, small_shapes):
    d = isolated / "system" / "fashion-mnist"
    write_fashion(str(d), small_fashion(1))
    write(str(d / "train-labels-idx1-ubyte.gz"), idx_bytes(np.zeros(11, np.uint8)))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz: declared dimensions"):
        fashion_mnist.load_data()


def test_mnist_npz_and_idx(isolated, monkeypatch):
    monkeypatch.setattr(mnist, "SHAPES", {"x_train": (6, 28, 28), "y_train": (6,),
                                          "x_test": (2, 28, 28), "y_test": (2,)})
    rng = np.random.default_rng(0)
    arrs = {k: (rng.integers(0, 256, s) if k[0] == "x" else rng.integers(0, 10, s))
            .astype(np.uint8) for k, s in mnist.SHAPES.items()}
    sysdir = isolated / "system" / "mnist"
    for k, (name, _) in mnist.IDX_FILES.items():
        write(str(sysdir / name), idx_bytes(arrs[k]))
    (x, y), (xt, yt) = mnist.load_data()
    assert np.array_equal(x, arrs["x_train"]) and np.array_equal(yt, arrs["y_test"])
    assert np.array_equal(y, arrs["y_train"])
    env = isolated / "env" / "mnist"
    env.mkdir(parents=True)
    np.savez(env / "mnist.npz", **{k: v[::-1].copy() for k, v in arrs.items()})
    monkeypatch.setenv("CNNFAST_DATA", str(env.parent))
    (x, y), _ = mnist.load_data()
    assert np.array_equal(x, arrs["x_train"][::-1])
    assert np.array_equal(y, arrs["y_train"][::-1])
    np.savez(env / "mnist.npz", x_train=arrs["x_train"].astype(np.float32),
             y_train=arrs["y_train"], x_test=arrs["x_test"], y_test=arrs["y_test"])
    with pytest.raises(ValueError, match=r"x_train is float32\(6, 28, 28\), expected uint8"):
        mnist.load_data()


# ---------------------------------------------------------------- each split from its own file
# The real-data test is the only other check of y_train, and it skips without the Debian
# package: these catch a loader that returns the test labels, a shuffled copy or another file's
# contents as the training labels.

@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_fashion_mnist_splits_come_from_their_own_files(isolated, small_shapes, gz):
    arrays = paired_split(12, 5)
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    write_fashion(str(isolated / "system" / "fashion-mnist"), dict(zip(names, arrays)), gz=gz)
    assert_loaded_as(fashion_mnist.load_data(), *arrays)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_mnist_idx_splits_come_from_their_own_files(isolated, monkeypatch, gz):
    monkeypatch.setattr(mnist, "SHAPES", {"x_train": (12, 28, 28), "y_train": (12,),
                                          "x_test": (5, 28, 28), "y_test": (5,)})
    arrays = paired_split(12, 5)
    sysdir = isolated / "system" / "mnist"
    for key, a in zip(("x_train", "y_train", "x_test", "y_test"), arrays):
        name = mnist.IDX_FILES[key][0]
        write(str(sysdir / (name if gz else name[:-3])), idx_bytes(a), gz)
    assert_loaded_as(mnist.load_data(), *arrays)


def test_mnist_npz_splits_come_from_their_own_keys(isolated, monkeypatch):
    monkeypatch.setattr(mnist, "SHAPES", {"x_train": (12, 28, 28), "y_train": (12,),
                                          "x_test": (5, 28, 28), "y_test": (5,)})
    arrays = paired_split(12, 5)
    cache = isolated / "home" / ".cnnfast" / "datasets" / "mnist"
    cache.mkdir(parents=True)
    np.savez(cache / "mnist.npz", **dict(zip(("x_train", "y_train", "x_test", "y_test"), arrays)))
    assert_loaded_as(mnist.load_data(), *arrays)


# ---------------------------------------------------------------- download

class _Server:
    def __init__(self, files):
        self.files, self.requests = files, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                name = self.path.rsplit("/", 1)[-1]
                outer.requests.append(name)
                body = outer.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/datasets/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def fashion_payloads(arrays):
    raw = {k: idx_bytes(v) for k, v in arrays.items()}
    gz = {k: gzip.compress(v) for k, v in raw.items()}
    table = {k: (hashlib.sha256(v).hexdigest(), len(v)) for k, v in raw.items()}
    return gz, table


def test_download_verified_and_cached(isolated, small_shapes, monkeypatch):
    arrays = small_fashion(7)
    gz, table = fashion_payloads(arrays)
    monkeypatch.setattr(fashion_mnist, "FILE_SHA256", table)
    with _Server(gz) as srv:
        monkeypatch.setattr(fashion_mnist, "BASE_URL", srv.url)
        (x, y), (xt, yt) = fashion_mnist.load_data()
        assert sorted(srv.requests) == sorted(FASHION_FILES)
        assert np.array_equal(x, arrays["train-images-idx3-ubyte.gz"])
        assert np.array_equal(yt, arrays["t10k-labels-idx1-ubyte.gz"])
        assert np.array_equal(y, arrays["train-labels-idx1-ubyte.gz"])
        cache = isolated / "home" / ".cnnfast" / "datasets" / "fashion-mnist"
        assert sorted(os.listdir(cache)) == sorted(FASHION_FILES)  # no temp files left
        fashion_mnist.load_data()  # second call is served from the cache
        assert len(srv.requests) == 4


def test_download_hash_mismatch(isolated, small_shapes, monkeypatch):
    gz, table = fashion_payloads(small_fashion(7))
    bad = dict(table)
    bad["t10k-images-idx3-ubyte.gz"] = ("0" * 64, table["t10k-images-idx3-ubyte.gz"][1])
    monkeypatch.setattr(fashion_mnist, "FILE_SHA256", bad)
    with _Server(gz) as srv:
        monkeypatch.setattr(fashion_mnist, "BASE_URL", srv.url)
        with pytest.raises(DatasetNotFoundError, match="SHA-256 mismatch") as e:
            fashion_mnist.load_data()
    cache = isolated / "home" / ".cnnfast" / "datasets" / "fashion-mnist"
    left = sorted(os.listdir(cache))
    assert "t10k-images-idx3-ubyte.gz" not in left
    assert not [f for f in left if f.endswith(".part")], left  # temp file deleted
    assert "temporary file deleted" in str(e.value)


def test_download_wrong_size_and_corrupt(isolated, small_shapes, monkeypatch):
    gz, table = fashion_payloads(small_fashion(7))
    monkeypatch.setattr(fashion_mnist, "FILE_SHA256", table)
    served = dict(gz)
    served["train-labels-idx1-ubyte.gz"] = served["train-labels-idx1-ubyte.gz"][:-9]  # truncated
    with _Server(served) as srv:
        monkeypatch.setattr(fashion_mnist, "BASE_URL", srv.url)
        with pytest.raises(DatasetNotFoundError, match="not valid: .*gzip"):
            fashion_mnist.load_data()
    cache = isolated / "home" / ".cnnfast" / "datasets" / "fashion-mnist"
    assert not [f for f in os.listdir(cache) if f.endswith(".part")]


def test_mnist_npz_download(isolated, monkeypatch):
    monkeypatch.setattr(mnist, "SHAPES", {"x_train": (3, 28, 28), "y_train": (3,),
                                          "x_test": (2, 28, 28), "y_test": (2,)})
    arrs = {k: np.full(s, i, np.uint8) for i, (k, s) in enumerate(mnist.SHAPES.items())}
    buf = io.BytesIO()
    np.savez(buf, **arrs)
    bad = io.BytesIO()
    np.savez(bad, **{k: v for k, v in arrs.items() if k != "y_test"})
    cache = isolated / "home" / ".cnnfast" / "datasets" / "mnist"
    with _Server({"mnist.npz": bad.getvalue()}) as srv:
        monkeypatch.setattr(mnist, "BASE_URL", srv.url)
        with pytest.raises(DatasetNotFoundError, match="npz keys"):
            mnist.load_data()
        assert os.listdir(cache) == []
        srv.files["mnist.npz"] = buf.getvalue()
        (x, y), (xt, yt) = mnist.load_data()
    assert (x == 0).all() and (yt == 3).all()
    assert (y == 1).all() and (xt == 2).all()
    assert os.listdir(cache) == ["mnist.npz"]


# ---------------------------------------------------------------- nothing anywhere

def test_not_found_message_lists_three_ways(isolated, monkeypatch):
    monkeypatch.setenv("CNNFAST_DATA", str(isolated / "env"))
    with pytest.raises(DatasetNotFoundError) as e:
        fashion_mnist.load_data()
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    assert "CNNFAST_DATA" in msg and "fashion-mnist/" in msg
    assert "~/.cnnfast/datasets/fashion-mnist" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "failed" in msg and "127.0.0.1:9" in msg  # the download was tried and why it failed
    assert str(isolated / "env" / "fashion-mnist") in msg  # the places searched are listed


def test_mnist_not_found_message(isolated):
    with pytest.raises(DatasetNotFoundError) as e:
        mnist.load_data()
    msg = str(e.value)
    assert "CNNFAST_DATA" in msg and "~/.cnnfast/datasets/mnist" in msg
    assert "no Debian/Ubuntu package" in msg and "mnist.npz" in msg and "failed" in msg
