"""Shared fixtures: OpenMP thread counts, the tf.keras oracle, and per-op summaries of the
largest differences (kernel vs NumPy reference, kernel vs tf.keras).

The kernel tests are one file per op in tests/kernels/ (CONTRIBUTING.md#running-one-kernels-tests).
"""
import pytest

# tests/ is on sys.path through pyproject.toml's pytest setting `pythonpath = ["tests"]`.
import tf_oracle
from helpers import DIFFS

from cnnfast import _core


@pytest.fixture(params=[1, 2], ids=lambda n: f"threads{n}")
def threads(request):
    """Run the test with 1 and with 2 OpenMP threads; restore the previous count."""
    old = _core.num_threads()
    _core.set_num_threads(request.param)
    yield request.param
    _core.set_num_threads(old)


@pytest.fixture(scope="session")
def tf_keras():
    """(tf, keras) set up per docs/keras_semantics.md#oracle-settings; imported once per session."""
    return tf_oracle.load()


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    if DIFFS:
        tr.section("largest kernel-vs-reference differences")
        for op in sorted(DIFFS):
            d = DIFFS[op]
            tr.write_line(f"{op:45s} max abs {d['abs']:.3e}   max rel {d['rel']:.3e}")
    if tf_oracle.MAX_DIFFS:
        tr.section("largest differences vs tf.keras per op")
        for op, (a, r) in sorted(tf_oracle.MAX_DIFFS.items()):
            tr.write_line(f"{op:<34s} max abs {a:.3e}   max abs/max|ref| {r:.3e}")
