"""The container: an atomic, reproducible ZIP write, and a reader that sniffs foreign files.

The members and their meaning are described in docs/file_format.md. This module knows the
member names and the format/version stamp, not what the JSON members hold; it imports no
model code (cnnfast.models calls down into cnnfast.saving, never the reverse).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile

from .. import __version__

FORMAT_VERSION = 1
MODEL_FORMAT = "cnnfast.model"
WEIGHTS_FORMAT = "cnnfast.weights"

META, CONFIG, INDEX, BIN = "metadata.json", "config.json", "weights.json", "weights.bin"
MEMBERS = {MODEL_FORMAT: (META, CONFIG, INDEX, BIN), WEIGHTS_FORMAT: (META, INDEX, BIN)}
_JSON_LIMIT = 64 << 20          # bytes per JSON member
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


# =============================================================================================
# error reporting and validation helpers (shared by every reader of a file or a config)
# =============================================================================================
class Source:
    """Where a file or config came from, for error messages: every problem is a ValueError
    '<path>: <problem>' (or just '<problem>' for path=None, an in-memory config)."""

    def __init__(self, path):
        self.path = path

    def fail(self, msg):
        raise ValueError(msg if self.path is None else f"{self.path}: {msg}")


def need(src, cond, msg):
    if not cond:
        src.fail(msg)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_dict(src, obj, what, required, optional=()):
    need(src, isinstance(obj, dict), f"{what} must be a JSON object, got {type(obj).__name__}")
    missing = [k for k in required if k not in obj]
    need(src, not missing, f"{what} is missing {missing}")
    extra = sorted(set(obj) - set(required) - set(optional))
    need(src, not extra, f"{what} has unexpected keys {extra}")


# =============================================================================================
# writing
# =============================================================================================
def _umask():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_arrays(stream, arrays):
    for a in arrays:
        stream.write(memoryview(a).cast("B"))


def _zipinfo(name, compress):
    zi = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    zi.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    zi.external_attr = 0o644 << 16
    return zi


def _dumps(obj):
    return json.dumps(obj, indent=1, sort_keys=False, allow_nan=False).encode("utf-8")


def write_archive(filepath, fmt, config, index, arrays, overwrite):
    """Write a `fmt` file: metadata, config (model files), the index and the arrays (the
    weights.bin payload, back to back). Atomic (see atomic_write)."""
    meta = {"format": fmt, "version": FORMAT_VERSION, "cnnfast_version": __version__}
    members = [(META, _dumps(meta))]
    if config is not None:
        members.append((CONFIG, _dumps(config)))
    members.append((INDEX, _dumps(index)))

    def write(f):
        with zipfile.ZipFile(f, "w") as zf:
            for name, data in members:
                zf.writestr(_zipinfo(name, True), data)
            with zf.open(_zipinfo(BIN, False), "w",
                         force_zip64=index["nbytes"] >= 2**31 - 1) as w:
                _write_arrays(w, arrays)
    atomic_write(filepath, overwrite, write)


def atomic_write(filepath, overwrite, write):
    """Call write(binary file) on a temporary file in the destination directory, fsync it,
    then rename it over `filepath`: a crash leaves the old file or the new one, never a part.
    `overwrite=False` raises FileExistsError (and never replaces a file that appears)."""
    path = os.fspath(filepath)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory")
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(f"{path}: file exists and overwrite=False")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)      # atomic, and fails if the name appeared meanwhile
            except FileExistsError:
                raise FileExistsError(f"{path}: file exists and overwrite=False") from None
            except (AttributeError, OSError):   # no hard links here: check, then rename
                if os.path.lexists(path):
                    raise FileExistsError(f"{path}: file exists and overwrite=False") from None
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# =============================================================================================
# reading
# =============================================================================================
_PICKLE_EXT = (".pkl", ".pickle", ".joblib", ".npy", ".pt", ".pth")


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


class Archive(Source):
    """An opened, sanity-checked cnnfast ZIP file; every failure is a ValueError naming it."""

    def __init__(self, filepath):
        super().__init__(os.fspath(filepath) if not isinstance(filepath, str) else filepath)
        path = self.path
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such file")
        if os.path.isdir(path):
            self.fail("is a directory, not a cnnfast file (a Keras SavedModel directory? load "
                      "it with keras, then use cnnfast.from_keras(model))")
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith(b"\x89HDF\r\n\x1a\n"):
            self.fail("is an HDF5 file (a Keras .h5 model or weights file), not a cnnfast file: "
                      "cnnfast.models.load_model / model.load_weights read it as a Keras file")
        if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            self.fail("is a Python pickle, not a cnnfast file; cnnfast never unpickles files "
                      "(unpickling can run arbitrary code)")
        if head.startswith(b"\x93NUMPY"):
            self.fail("is a NumPy .npy file, not a cnnfast file")
        if not zipfile.is_zipfile(path):
            self.fail("is not a cnnfast file: not a ZIP archive, or a truncated one "
                      f"({os.path.getsize(path)} bytes)")
        try:
            self.zf = zipfile.ZipFile(path)
            infos = self.zf.infolist()
        except Exception as e:  # noqa: BLE001 - zipfile raises many types on corrupt input
            self.fail(f"corrupt ZIP archive: {type(e).__name__}: {e}")
        self.names = [i.filename for i in infos]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zf.close()

    def expect(self, *formats):
        names = set(self.names)
        if len(names) != len(self.names):
            self.fail("corrupt archive: duplicate member names")
        if "model.weights.h5" in names or (CONFIG in names and BIN not in names and
                                           META in names and self._is_keras_meta()):
            self.fail("is a Keras .keras file, not a cnnfast file: "
                      "cnnfast.models.load_model reads it as a Keras file")
        pickles = sorted(n for n in names if n.lower().endswith(_PICKLE_EXT))
        if pickles:
            self.fail(f"contains {pickles}: pickled / NumPy object members are never loaded "
                      "by cnnfast (unpickling can run arbitrary code); this is not a cnnfast "
                      "file")
        if META not in names:
            self.fail(f"is not a cnnfast file: the ZIP archive has no {META} "
                      f"(members: {sorted(names)[:10]})")
        meta = self.json(META)
        if not isinstance(meta, dict) or not isinstance(meta.get("format"), str):
            self.fail(f"{META}: no 'format' string; not a cnnfast file")
        fmt, version = meta["format"], meta.get("version")
        if fmt not in MEMBERS:
            if "keras_version" in meta:
                self.fail("is a Keras .keras file, not a cnnfast file: "
                          "cnnfast.models.load_model reads it as a Keras file")
            self.fail(f"unknown format {fmt!r} in {META}; expected one of {sorted(MEMBERS)}")
        if not is_int(version) or version < 1:
            self.fail(f"{META}: invalid format version {version!r}")
        if version > FORMAT_VERSION:
            self.fail(f"was written by a newer cnnfast ({meta.get('cnnfast_version')!r}) in "
                      f"format version {version}; this cnnfast ({__version__}) reads versions "
                      f"<= {FORMAT_VERSION}: upgrade cnnfast")
        if fmt not in formats:
            if fmt == WEIGHTS_FORMAT:
                self.fail("is a weights-only file (save_weights): build the model in code and "
                          "call model.load_weights(path)")
            self.fail(f"has format {fmt!r}, expected {' or '.join(map(repr, formats))}")
        required = MEMBERS[fmt]
        missing = [n for n in required if n not in names]
        if missing:
            self.fail(f"missing member(s) {missing}: the file is incomplete or corrupt")
        extra = sorted(names - set(required))
        if extra:
            self.fail(f"unexpected member(s) {extra} in a {fmt!r} file; refusing to load it")
        self.format = fmt

    def _is_keras_meta(self):
        try:
            return "keras_version" in self.json(META)
        except ValueError:
            return False

    def _read(self, name, limit):
        info = self.zf.getinfo(name)
        if info.flag_bits & 0x1:
            self.fail(f"member {name} is encrypted")
        if info.file_size > limit:
            self.fail(f"member {name} is too large ({info.file_size} bytes, limit {limit})")
        try:
            data = self.zf.read(name)
        except Exception as e:  # noqa: BLE001 - BadZipFile, zlib.error, EOFError, OSError...
            self.fail(f"member {name} is corrupt ({type(e).__name__}: {e})")
        if len(data) != info.file_size:
            self.fail(f"member {name} is truncated")
        return data

    def json(self, name):
        data = self._read(name, _JSON_LIMIT)
        try:
            return json.loads(data.decode("utf-8"), parse_constant=_reject_constant,
                              object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            self.fail(f"member {name} is not valid JSON: {e}")

    def weights_blob(self, index):
        info = self.zf.getinfo(BIN)
        if info.compress_type != zipfile.ZIP_STORED:
            self.fail(f"member {BIN} must be stored uncompressed")
        if not isinstance(index, dict) or not is_int(index.get("nbytes")):
            self.fail(f"{INDEX}: invalid index (no integer 'nbytes')")
        if info.file_size != index["nbytes"]:
            self.fail(f"{BIN} holds {info.file_size} bytes but {INDEX} declares "
                      f"{index['nbytes']}: truncated or corrupt")
        blob = self._read(BIN, info.file_size)
        if hashlib.sha256(blob).hexdigest() != index.get("sha256"):
            self.fail(f"{BIN} does not match its SHA-256 in {INDEX}: the weights are corrupt")
        return blob
