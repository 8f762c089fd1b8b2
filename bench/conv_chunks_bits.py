"""Bit comparison of the chunked Conv2D kernels (csrc/conv2d_chunks.h) across two builds.

    python -m bench.conv_chunks_bits save OUT.npz      # forward/backward outputs, 1 and 2 threads
    python -m bench.conv_chunks_bits compare A.npz B.npz

Run `save` with the old build's cnnfast on PYTHONPATH and again with the new one, then
`compare`: every array must be bit-identical. The shapes cover one chunk and many (more
chunks than weight-gradient groups), strides, both paddings, dilation, with and without
dinp and bias, on conv2d_forward/backward (im2col path) and conv2d_dilated_forward/backward.
"""
import sys

import numpy as np

# (N, H, W, C, KH, KW, OC, strides, padding, dilation)
SHAPES = [
    (3, 9, 8, 5, 5, 5, 7, (1, 1), "same", (1, 1)),
    (40, 12, 12, 8, 5, 5, 6, (2, 2), "valid", (1, 1)),   # many chunks
    (64, 16, 16, 16, 3, 3, 8, (2, 1), "same", (1, 1)),
    (2, 30, 30, 6, 4, 4, 5, (1, 1), "same", (1, 1)),
    (5, 11, 13, 3, 3, 3, 4, (1, 1), "same", (2, 2)),
    (48, 12, 12, 8, 3, 3, 6, (1, 1), "valid", (2, 3)),   # many chunks
    (7, 20, 20, 4, 2, 3, 5, (1, 1), "same", (3, 1)),
]


def run_all():
    from cnnfast import backend as B

    out = {}
    old = B.get_num_threads()
    try:
        for threads in (1, 2):
            B.set_num_threads(threads)
            for i, (n, h, w, c, kh, kw, oc, st, pad, dil) in enumerate(SHAPES):
                r = np.random.default_rng(i)
                x = r.normal(size=(n, h, w, c)).astype(np.float32)
                k = r.normal(size=(kh, kw, c, oc)).astype(np.float32)
                b = r.normal(size=oc).astype(np.float32)
                if dil == (1, 1):
                    g = B.conv2d_geometry(x.shape, k.shape, st, pad)
                    ws = np.zeros(max(g["workspace"], 1), np.float32)
                    y = np.zeros(g["out_shape"], np.float32)
                    B.conv2d_forward(y, x, k, b, st, pad, ws)
                else:
                    eff = ((kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1)
                    g = B.conv2d_geometry(x.shape, eff + (c, oc), st, pad)
                    y = np.zeros(g["out_shape"], np.float32)
                    B.conv2d_dilated_forward(y, x, k, b, st, pad, dil)
                dy = r.normal(size=y.shape).astype(np.float32)
                for with_dx, with_db in ((True, True), (False, False)):
                    dx = np.zeros_like(x) if with_dx else None
                    dk = np.zeros_like(k)
                    db = np.zeros_like(b) if with_db else None
                    if dil == (1, 1):
                        B.conv2d_backward(dx, dk, db, dy, x, k, st, pad, ws)
                    else:
                        B.conv2d_dilated_backward(dx, dk, db, dy, x, k, st, pad, dil)
                    tag = f"{threads}t_{i}_{int(with_dx)}"
                    out[f"{tag}_dk"] = dk
                    if with_dx:
                        out[f"{tag}_dx"] = dx
                        out[f"{tag}_db"] = db
                out[f"{threads}t_{i}_y"] = y
    finally:
        B.set_num_threads(old)
    return out


def main(argv):
    if argv[:1] == ["save"] and len(argv) == 2:
        np.savez(argv[1], **run_all())
        return 0
    if argv[:1] == ["compare"] and len(argv) == 3:
        a, b = np.load(argv[1]), np.load(argv[2])
        assert sorted(a.files) == sorted(b.files), "different array sets"
        bad = [k for k in a.files if a[k].tobytes() != b[k].tobytes()]
        print(f"{len(a.files)} arrays, {len(bad)} differ" + (f": {bad}" if bad else ""))
        return 1 if bad else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
