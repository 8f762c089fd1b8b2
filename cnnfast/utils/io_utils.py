"""Console output shared by the progress bar and the callbacks (Keras's utils/io_utils.py)."""
from __future__ import annotations

import sys


def print_msg(message, line_break=True):
    """Write `message` to the current sys.stdout (with a newline unless line_break=False) and
    flush, so a `\\r`-redrawn progress line shows at once. Returns None."""
    sys.stdout.write(f"{message}\n" if line_break else str(message))
    sys.stdout.flush()
