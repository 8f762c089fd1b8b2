"""Strict reader for IDX files (the MNIST / Fashion-MNIST container), gzip-compressed or raw.

IDX layout (big-endian): 2 zero bytes, a type byte (0x08 = unsigned byte), a rank byte, then one
uint32 per dimension, then the payload in row-major order. Labels are magic 0x00000801 (rank 1),
images 0x00000803 (rank 3). Anything that does not match exactly -- a foreign file, a truncated
download, trailing bytes, a damaged gzip stream -- raises IdxError (a ValueError) that names the
file and the problem. The reader never returns a partly filled or reinterpreted array.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

LABELS_MAGIC = 0x00000801  # ubyte, rank 1
IMAGES_MAGIC = 0x00000803  # ubyte, rank 3
_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08


class IdxError(ValueError):
    """An IDX file is malformed, truncated or not the expected kind of file."""


def read_bytes(path: str | os.PathLike) -> bytes:
    """Return the file's content, decompressed when it is gzip (detected by its magic bytes)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise IdxError(f"{path}: corrupt or truncated gzip stream ({e})") from e


def parse_idx(data: bytes, name: str, magic: int | None = None,
              shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """Parse IDX bytes into a new (writable) uint8 array of the declared shape.

    Args:
        data: the decompressed file content.
        name: the file name used in error messages.
        magic: expected magic number (LABELS_MAGIC or IMAGES_MAGIC), or None for any ubyte IDX.
        shape: expected dimensions; None entries match anything.
    """
    if len(data) < 4:
        raise IdxError(f"{name}: {len(data)} bytes is too short for an IDX header")
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    found = struct.unpack(">I", data[:4])[0]
    if zero != 0 or rank == 0:
        raise IdxError(f"{name}: bad magic number 0x{found:08x}; not an IDX file")
    if dtype != _UBYTE:
        raise IdxError(f"{name}: IDX element type 0x{dtype:02x} is not unsigned byte (0x08)")
    if magic is not None and found != magic:
        kind = {LABELS_MAGIC: "labels", IMAGES_MAGIC: "images"}.get(magic, "IDX")
        raise IdxError(f"{name}: magic number 0x{found:08x}, expected 0x{magic:08x} ({kind} file)")
    header = 4 + 4 * rank
    if len(data) < header:
        raise IdxError(f"{name}: truncated header ({len(data)} bytes, need {header} for rank "
                       f"{rank})")
    dims = struct.unpack(f">{rank}I", data[4:header])
    if shape is not None:
        if len(shape) != rank or any(e is not None and e != d for e, d in zip(shape, dims)):
            want = tuple("any" if e is None else e for e in shape)
            raise IdxError(f"{name}: declared dimensions {dims}, expected {want}")
    count = 1
    for d in dims:
        count *= d
    payload = len(data) - header
    if payload != count:
        what = "truncated" if payload < count else "has trailing bytes"
        raise IdxError(f"{name}: payload {what}: {payload} bytes after the header, "
                       f"dimensions {dims} need exactly {count}")
    return np.frombuffer(data, np.uint8, count=count, offset=header).reshape(dims).copy()


def read_idx(path: str | os.PathLike, magic: int | None = None,
             shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """Read one IDX file (gzip or raw) with the checks of parse_idx()."""
    return parse_idx(read_bytes(path), os.fspath(path), magic, shape)
