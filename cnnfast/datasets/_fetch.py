"""Shared search / download machinery for the bundled datasets.

Search order for a dataset stored in folder ``<sub>`` (``fashion-mnist`` or ``mnist``):

1. ``$CNNFAST_DATA/<sub>/`` -- CNNFAST_DATA names a *parent* directory that holds one folder per
   dataset, laid out like the cache. (MNIST and Fashion-MNIST use the same four file names, so a
   flat directory could silently serve the wrong dataset; the subfolder rule rules that out.)
2. ``~/.cnnfast/datasets/<sub>/`` -- the download cache.
3. ``/usr/share/datasets/<sub>/`` -- the Debian layout (package ``dataset-fashion-mnist``).
4. Download into the cache (2) with urllib, through a temporary file in the cache directory that
   is verified and then renamed into place, so an interrupted or corrupt download never leaves a
   file under the real name.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from typing import Callable

#: Keras's mirror of the dataset files (keras/src/datasets/{mnist,fashion_mnist}.py).
BASE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
SYSTEM_ROOT = "/usr/share/datasets"
DOWNLOAD_TIMEOUT_S = 60.0


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is in none of the searched places and could not be downloaded."""


class DownloadError(RuntimeError):
    """A download failed or the downloaded file did not verify (it has been deleted)."""


def cache_dir(sub: str) -> str:
    return os.path.join(os.path.expanduser("~"), ".cnnfast", "datasets", sub)


def search_dirs(sub: str) -> list[str]:
    """The directories searched for dataset ``sub``, in order."""
    dirs = []
    env = os.environ.get("CNNFAST_DATA")
    if env:
        dirs.append(os.path.join(env, sub))
    dirs.append(cache_dir(sub))
    dirs.append(os.path.join(SYSTEM_ROOT, sub))
    return dirs


def find_file(directory: str, fname: str) -> str | None:
    """Path of ``fname`` in ``directory``; a ``.gz`` name also matches its uncompressed form."""
    for name in (fname, fname[:-3] if fname.endswith(".gz") else None):
        if name and os.path.isfile(os.path.join(directory, name)):
            return os.path.join(directory, name)
    return None


def download(url: str, dest_dir: str, fname: str, verify: Callable[[str], None]) -> str:
    """Download ``url`` to ``dest_dir/fname`` atomically; ``verify(tmp_path)`` must raise on a
    bad file. On any failure the temporary file is removed and DownloadError is raised."""
    try:
        os.makedirs(dest_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=dest_dir)
    except OSError as e:
        raise DownloadError(f"cannot write to the cache directory {dest_dir}: {e}") from e
    try:
        try:
            with os.fdopen(fd, "wb") as f, \
                    urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as r:
                shutil.copyfileobj(r, f, 1 << 20)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise DownloadError(f"downloading {url} failed: {reason}") from e
        try:
            verify(tmp)
        except DownloadError:
            raise
        except ValueError as e:  # IdxError and structural npz problems
            raise DownloadError(f"{url} downloaded but is not valid: {e}") from e
        final = os.path.join(dest_dir, fname)
        os.replace(tmp, final)
        return final
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def not_found_message(title: str, sub: str, files: list[str], tried: list[str],
                      download_error: BaseException | None, apt_hint: str) -> str:
    lines = [f"{title} data not found."]
    lines.append("Searched (in order):")
    lines += [f"  - {t}" for t in tried]
    if download_error is not None:
        lines.append(f"Download into {cache_dir(sub)} failed: {download_error}")
    lines.append("Provide the files (" + ", ".join(files) + ") in one of three ways:")
    lines.append(f"  1. set CNNFAST_DATA to a directory that contains a '{sub}/' subfolder "
                 "holding them;")
    lines.append(f"  2. put them in {cache_dir(sub)} (~/.cnnfast/datasets/{sub});")
    lines.append(f"  3. {apt_hint}")
    return "\n".join(lines)


def describe_dir(directory: str, files: list[str]) -> str:
    if not os.path.isdir(directory):
        return f"{directory} (no such directory)"
    missing = [f for f in files if find_file(directory, f) is None]
    return f"{directory} (missing {', '.join(missing)})"
