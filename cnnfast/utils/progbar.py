"""Keras 3's progress bar (keras/src/utils/progbar.py): the `\r`-redrawn line that fit, evaluate
and predict print through cnnfast.callbacks.ProgbarLogger."""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

from .io_utils import print_msg as _print_msg


class Progbar:
    """Keras 3's keras.utils.Progbar, output byte for byte (times aside).

    verbose=1: `\\r`-redrawn line `5/5 ━━━━━━━━━━━━━━━━━━━━ 1s 59ms/step - loss: 0.8414` with
    Keras's ANSI styling (bold counts and times, green/grey bar; Keras treats every POSIX
    stream as a dynamic display), at most every `interval` seconds, always when finalizing.
    verbose=2: one line when finalizing: `5/5 - 0s - 40ms/step - loss: 0.8414`.
    Values are averaged over steps unless their names are in `stateful_metrics` (or, with
    `stateless_metrics` given, unless they are missing from it)."""

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None,
                 stateless_metrics=None, unit_name="step"):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError("Only one of `stateful_metrics` or `stateless_metrics` can be "
                             "provided.")
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        if stateful_metrics is not None:
            self.stateful_metrics, self.stateless_metrics = set(stateful_metrics), None
        elif stateless_metrics is not None:
            self.stateful_metrics, self.stateless_metrics = None, set(stateless_metrics)
        else:
            self.stateful_metrics, self.stateless_metrics = set(), None
        self._dynamic_display = (
            (hasattr(sys.stdout, "isatty") and sys.stdout.isatty())
            or "ipykernel" in sys.modules or "posix" in sys.modules
            or "PYCHARM_HOSTED" in os.environ)
        self._seen_so_far = 0
        self._values = {}
        self._values_order = []
        self._start = time.time()
        self._last_update = 0
        self._time_after_first_step = None
        self._prev_total_width = 0

    def update(self, current, values=None, finalize=None):
        """`values`: list of (name, value) pairs (a dict is accepted too)."""
        if finalize is None:
            finalize = False if self.target is None else current >= self.target
        if isinstance(values, dict):
            values = values.items()
        for k, v in values or ():
            if k not in self._values:
                self._values_order.append(k)
            if self.stateful_metrics is not None:
                stateless = k not in self.stateful_metrics
            else:
                stateless = k in self.stateless_metrics
            if stateless:
                if finalize:
                    self._values[k] = [v, 1]
                else:
                    base = max(current - self._seen_so_far, 1)
                    if k not in self._values:
                        self._values[k] = [v * base, base]
                    else:
                        self._values[k][0] += v * base
                        self._values[k][1] += base
            else:
                self._values[k] = [v, 1]
        self._seen_so_far = current

        now = time.time()
        time_per_unit = self._estimate_step_duration(current, now)
        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return
            message = "\b" * self._prev_total_width + "\r" if self._dynamic_display else "\n"
            special = 0
            if self.target is not None and self.target > 0:
                numdigits = int(math.log10(self.target)) + 1
                bar = f"\x1b[1m{current:{numdigits}d}/{self.target}\x1b[0m "
                special += 8
                prog_width = int(self.width * (float(current) / self.target))
                if prog_width > 0:
                    bar += f"\33[32m{'━' * prog_width}\x1b[0m"
                    special += 9
                bar += f"\33[37m{'━' * (self.width - prog_width)}\x1b[0m"
                special += 9
            else:
                bar = f"{current:7d}/Unknown"
            message += bar
            if self.target is not None and self.target > 0 and not finalize:
                eta = time_per_unit * (self.target - current)
                if eta > 3600:
                    eta_format = (f"{int(eta // 3600)}:{int((eta % 3600) // 60):02d}:"
                                  f"{int(eta % 60):02d}")
                elif eta > 60:
                    eta_format = f"{int(eta // 60)}:{int(eta % 60):02d}"
                else:
                    eta_format = f"{int(eta)}s"
                info = f" \x1b[1m{eta_format}\x1b[0m"
            else:
                info = f" \x1b[1m{now - self._start:.0f}s\x1b[0m"
            special += 8
            info += _format_time(time_per_unit, self.unit_name)
            info += self._format_values(abs_threshold=True)
            message += info
            total_width = len(bar) + len(info) - special
            if self._prev_total_width > total_width:
                message += " " * (self._prev_total_width - total_width)
            if finalize:
                message += "\n"
            _print_msg(message, line_break=False)
            self._prev_total_width = total_width
        elif self.verbose == 2:
            if finalize and self.target is not None and self.target > 0:
                numdigits = int(math.log10(self.target)) + 1
                info = f"{current:{numdigits}d}/{self.target} - {now - self._start:.0f}s"
                info += f" -{_format_time(time_per_unit, self.unit_name)}"
                info += self._format_values(abs_threshold=False)
                _print_msg(info + "\n", line_break=False)
        self._last_update = now

    def _format_values(self, abs_threshold):
        # Keras tests abs(avg) > 1e-3 for verbose 1 but avg > 1e-3 for verbose 2, so a
        # negative value prints in scientific notation on the one-line-per-epoch display.
        out = []
        for k in self._values_order:
            total, count = self._values[k]
            if not isinstance(total, float):
                total = np.mean(total)
            avg = total / max(1, count)
            big = abs(avg) > 1e-3 if abs_threshold else avg > 1e-3
            out.append(f" - {k}: {avg:.4f}" if big else f" - {k}: {avg:.4e}")
        return "".join(out)

    def add(self, n, values=None):
        self.update(self._seen_so_far + n, values)

    def _estimate_step_duration(self, current, now):
        # The first step (tracing, warm-up) is left out once there are more.
        if not current:
            return 0
        if self._time_after_first_step is not None and current > 1:
            tpu = (now - self._time_after_first_step) / (current - 1)
        else:
            tpu = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return tpu


def _format_time(time_per_unit, unit_name):
    if time_per_unit >= 1 or time_per_unit == 0:
        return f" {time_per_unit:.0f}s/{unit_name}"
    if time_per_unit >= 1e-3:
        return f" {time_per_unit * 1000.0:.0f}ms/{unit_name}"
    return f" {time_per_unit * 1000000.0:.0f}us/{unit_name}"
