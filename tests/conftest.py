"""Shared fixtures: OpenMP thread counts, and a per-op summary of kernel-vs-reference diffs."""
import pytest

from cnnfast import _core

from helpers import DIFFS


@pytest.fixture(params=[1, 2], ids=lambda n: f"threads{n}")
def threads(request):
    """Run the test with 1 and with 2 OpenMP threads; restore the previous count."""
    old = _core.num_threads()
    _core.set_num_threads(request.param)
    yield request.param
    _core.set_num_threads(old)


def pytest_terminal_summary(terminalreporter):
    if not DIFFS:
        return
    tr = terminalreporter
    tr.section("largest kernel-vs-reference differences")
    for op in sorted(DIFFS):
        d = DIFFS[op]
        tr.write_line(f"{op:45s} max abs {d['abs']:.3e}   max rel {d['rel']:.3e}")
