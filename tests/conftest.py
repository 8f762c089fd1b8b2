import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # make tests/tf_oracle.py importable

import tf_oracle  # noqa: E402


@pytest.fixture(scope="session")
def tf_keras():
    """(tf, keras) set up per KERAS_SEMANTICS section 0; the import is paid once per session."""
    return tf_oracle.load()


def pytest_terminal_summary(terminalreporter):
    if not tf_oracle.MAX_DIFFS:
        return
    tr = terminalreporter
    tr.section("largest differences vs tf.keras per op")
    for op, (a, r) in sorted(tf_oracle.MAX_DIFFS.items()):
        tr.write_line(f"{op:<34s} max abs {a:.3e}   max abs/max|ref| {r:.3e}")
