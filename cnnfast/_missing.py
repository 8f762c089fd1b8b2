"""Names of the tensorflow-shaped namespace that cnnfast lacks fail saying so.

A module of that namespace (`cnnfast`, `cnnfast.keras`, `cnnfast.keras.layers`, ...) ends with

    __getattr__ = missing_names("tensorflow.keras.layers")

so that `tf.keras.layers.Foo` raises an AttributeError saying cnnfast does not implement
`tensorflow.keras.layers.Foo` (and `hasattr` still answers False), and
`from cnnfast.keras.layers import Foo` raises an ImportError with the same message.
"""
from __future__ import annotations

import dis
import sys

_IMPORT_FROM = dis.opmap.get("IMPORT_FROM")


def _message(tf_path, module, name):
    return (f"cnnfast does not implement {tf_path}.{name} (module {module!r} has no "
            f"attribute {name!r})")


def _called_by_import_from():
    """True when the attribute lookup comes from a `from module import name` statement.

    Python turns an AttributeError raised there into its own ImportError ("cannot import
    name"), dropping our message; an ImportError raised from `__getattr__` passes through
    unchanged, but `hasattr` does not catch it. So we raise ImportError only for that
    statement, found from the caller's current instruction (CPython). Anything unexpected
    falls back to AttributeError, which is still correct, only less precise."""
    try:
        frame = sys._getframe(2)  # 0: this function, 1: __getattr__, 2: the caller
        return frame.f_lasti >= 0 and frame.f_code.co_code[frame.f_lasti] == _IMPORT_FROM
    except (AttributeError, IndexError, ValueError):
        return False


def missing_names(tf_path, module=None):
    """A module `__getattr__` for the namespace mirroring `tf_path` (e.g. 'tensorflow')."""
    module = module or tf_path.replace("tensorflow", "cnnfast", 1)

    def __getattr__(name):
        if name.startswith("_"):  # dunders and private names: the ordinary error
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        msg = _message(tf_path, module, name)
        if _called_by_import_from():
            raise ImportError(msg, name=module)
        raise AttributeError(msg)

    return __getattr__


class Namespace:
    """A tensorflow namespace that is not a module (`tf.config.experimental`): the given
    functions as attributes, and the missing-name error for any other."""

    def __init__(self, tf_path, **members):
        self._tf_path = tf_path
        self.__dict__.update(members)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(f"cnnfast does not implement {self._tf_path}.{name}")

    def __repr__(self):
        return f"<cnnfast namespace {self._tf_path.replace('tensorflow', 'cnnfast', 1)}>"
