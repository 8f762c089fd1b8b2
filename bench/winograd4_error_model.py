"""Float32 error of Winograd F(4x4,3x3) against F(2x2,3x3), modelled in NumPy (no kernel).

    python -m bench.winograd4_error_model      # markdown table on stdout

F(4x4,3x3) is not implemented (docs/winograd.md#not-done-f4x4-3x3). This models both
forward passes in NumPy with every stage (kernel transform, input transform, the products
summed over channels, output transform) rounded to float32, on the tutorial layers that auto
sends to Winograd (batch 32, the data of bench/winograd_error.py), and reports the max relative
error (max |a - b| / max |b|) against the float64 direct reference. The F(2x2) column checks
the model against the kernel's measured error (bench/winograd_error.py); the last column, the
F(4x4) model in float64, checks its matrices (Lavin & Gray, points 0, +-1, +-2, inf).
"""
from __future__ import annotations

import numpy as np

from cnnfast import reference as ref

F2 = (np.array([[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]], np.float64),
      np.array([[1,0,0],[.5,.5,.5],[.5,-.5,.5],[0,0,1]], np.float64),
      np.array([[1,1,1,0],[0,1,-1,-1]], np.float64), 2)
F4 = (np.array([[4,0,-5,0,1,0],[0,-4,-4,1,1,0],[0,4,-4,-1,1,0],[0,-2,-1,2,1,0],
                [0,2,-1,-2,1,0],[0,4,0,-5,0,1]], np.float64),
      np.array([[1/4,0,0],[-1/6,-1/6,-1/6],[-1/6,1/6,-1/6],[1/24,1/12,1/6],[1/24,-1/12,1/6],
                [0,0,1]], np.float64),
      np.array([[1,1,1,1,1,0],[0,1,-1,2,-2,0],[0,1,1,4,4,0],[0,1,-1,8,-8,1]], np.float64), 4)

def wino(x, k, pad, mats, dt):
    """The forward pass of x (N,H,W,C) with k (3,3,C,K), every stage rounded to dt."""
    BT, G, AT, m = mats
    a = m + 2
    BT, G, AT = BT.astype(dt), G.astype(dt), AT.astype(dt)
    N, H, W, C = x.shape
    OH = H if pad == "same" else H - 2
    OW = W if pad == "same" else W - 2
    p = 1 if pad == "same" else 0
    TH, TW = -(-OH // m), -(-OW // m)
    xp = np.zeros((N, TH * m + 2, TW * m + 2, C), dt)
    xs = x[:, :min(H, TH*m+2-p), :min(W, TW*m+2-p)]
    xp[:, p:p + xs.shape[1], p:p + xs.shape[2]] = xs
    U = np.einsum("ai,ijck,bj->abck", G, k.astype(dt), G).astype(dt)  # (a,a,C,K)
    patches = np.stack([np.stack([xp[:, m*ty:m*ty+a, m*tx:m*tx+a] for tx in range(TW)], 1)
                        for ty in range(TH)], 1)  # N,TH,TW,a,a,C
    V = np.einsum("ai,nyxijc,bj->nyxabc", BT, patches, BT).astype(dt)
    M = np.einsum("nyxabc,abck->nyxabk", V, U).astype(dt)
    Y = np.einsum("ia,nyxabk,jb->nyxijk", AT, M, AT).astype(dt)
    Y = Y.transpose(0, 1, 3, 2, 4, 5).reshape(N, TH*m, TW*m, -1)
    return Y[:, :OH, :OW]

LAYERS = [("cnn conv2 (14x14x32 -> 64, same)", 14, 14, 32, 64, "same"),
          ("cnn_dropout conv2 (26x26x32 -> 64, valid)", 26, 26, 32, 64, "valid"),
          ("cnn3_d512 conv2 (13x13x32 -> 64, valid)", 13, 13, 32, 64, "valid"),
          ("cnn3_d512 conv3 (5x5x64 -> 64, valid)", 5, 5, 64, 64, "valid")]


def main():
    print("| layer (batch 32, forward) | F(2x2) model vs f64 | F(4x4) model vs f64 | "
          "F(4x4) model in f64 vs f64 |")
    print("|---|---:|---:|---:|")
    for name, h, w, c, oc, pad in LAYERS:
        row(name, h, w, c, oc, pad)


def row(name, h, w, c, oc, pad):
    rng = np.random.default_rng(0)
    x = rng.random((32, h, w, c), dtype=np.float32)
    lim = np.sqrt(6.0 / (9 * c + 9 * oc))
    k = rng.uniform(-lim, lim, (3, 3, c, oc)).astype(np.float32)
    r = ref.conv2d_forward(x, k, np.zeros(oc, np.float32), (1, 1), pad)
    errs = [float(np.max(np.abs(wino(x, k, pad, mats, dt).astype(np.float64) - r))
                  / np.max(np.abs(r)))
            for mats, dt in ((F2, np.float32), (F4, np.float32), (F4, np.float64))]
    print(f"| {name} | " + " | ".join(f"{e:.1e}" for e in errs) + " |", flush=True)


if __name__ == "__main__":
    main()
