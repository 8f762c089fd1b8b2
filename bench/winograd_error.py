"""Winograd F(2x2,3x3) error on the tutorial models' 3x3 stride-1 conv layers.

    python -m bench.winograd_error            # markdown table on stdout

Per layer shape (batch 32, seeded data: inputs uniform [0, 1) like scaled images after a
ReLU, glorot-uniform kernels, a standard-normal upstream gradient): the max relative error
(max |a - b| / max |b|) of the Winograd forward pass, input gradient and weight gradient
against the direct kernel and against the float64 NumPy reference, beside the direct kernel's
own error against float64, and which passes the "auto" setting runs by Winograd. The layers
are those of bench/models.py whose kernels are 3x3 with stride 1.
"""
from __future__ import annotations

import numpy as np

from cnnfast import _core
from cnnfast import reference as ref

LAYERS = [  # (name, H, W, C, OC, padding)
    ("cnn conv1 (28x28x1 -> 32, same)", 28, 28, 1, 32, "same"),
    ("cnn conv2 (14x14x32 -> 64, same)", 14, 14, 32, 64, "same"),
    ("cnn_dropout conv1 (28x28x1 -> 32, valid)", 28, 28, 1, 32, "valid"),
    ("cnn_dropout conv2 (26x26x32 -> 64, valid)", 26, 26, 32, 64, "valid"),
    ("cnn3_d512 conv2 (13x13x32 -> 64, valid)", 13, 13, 32, 64, "valid"),
    ("cnn3_d512 conv3 (5x5x64 -> 64, valid)", 5, 5, 64, 64, "valid"),
]


def rel(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b)))


def run(x, k, b, dout, padding, algo):
    _core.set_conv_algorithm(algo)
    g = _core.conv2d_geometry(list(x.shape), list(k.shape), (1, 1), padding)
    ws = np.empty(max(1, g["workspace"]), np.float32)
    out = np.empty(g["out_shape"], np.float32)
    _core.conv2d_forward(out, x, k, b, (1, 1), padding, ws)
    dx, dw, db = np.empty_like(x), np.empty_like(k), np.empty_like(b)
    _core.conv2d_backward(dx, dw, db, dout, x, k, (1, 1), padding, ws)
    return out, dx, dw


def main():
    old = _core.conv_algorithm()
    rows = []
    try:
        for name, h, w, c, oc, padding in LAYERS:
            rng = np.random.default_rng(0)
            x = rng.random((32, h, w, c), dtype=np.float32)
            lim = np.sqrt(6.0 / (9 * c + 9 * oc))
            k = rng.uniform(-lim, lim, (3, 3, c, oc)).astype(np.float32)
            b = np.zeros(oc, np.float32)
            oh = h if padding == "same" else h - 2
            dout = rng.standard_normal((32, oh, oh if h == w else w - 2, oc)).astype(np.float32)
            d = run(x, k, b, dout, padding, "direct")
            wg = run(x, k, b, dout, padding, "winograd")
            r_out = ref.conv2d_forward(x, k, b, (1, 1), padding)
            r_dx, r_dw, _ = ref.conv2d_backward(dout, x, k, (1, 1), padding)
            r = (name,)
            for i, r_ref in enumerate((r_out, r_dx, r_dw)):
                r += (rel(wg[i], d[i]), rel(wg[i], r_ref), rel(d[i], r_ref))
            rows.append(r)
        _core.set_conv_algorithm("auto")
        rows = [r + (auto_passes(32, h, w, c, oc, padding),)
                for r, (_, h, w, c, oc, padding) in zip(rows, LAYERS)]
    finally:
        _core.set_conv_algorithm(old)
    print("| layer (batch 32) | fwd: wino vs direct | wino vs f64 | direct vs f64 | "
          "dinp: wino vs direct | wino vs f64 | direct vs f64 | "
          "dweight: wino vs direct | wino vs f64 | direct vs f64 | auto uses Winograd for |")
    print("|---|" + "---:|" * 9 + "---|")
    for r in rows:
        print(f"| {r[0]} | " + " | ".join(f"{v:.1e}" for v in r[1:10]) + f" | {r[10]} |")


def auto_passes(n, h, w, c, oc, padding):
    """The passes the current setting runs by Winograd (the layer's input gradient wanted)."""
    got = [d for d in ("forward", "input_grad", "weight_grad")
           if _core.conv_uses_winograd(n, h, w, c, 3, 3, oc, 1, 1, padding, d)]
    return ", ".join(got) or "none"

if __name__ == "__main__":
    main()
