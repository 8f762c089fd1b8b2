// pool2d.h -- max and average pooling, NHWC, Keras/TF padding rules.
#pragma once
#include <cstdint>
#include "common.h"

namespace cnnfast {

struct Pool2DParams {
    int N, H, W, C;  // input (N,H,W,C)
    int PH, PW;      // pool size
    int SH, SW;      // strides
    int OH, OW;      // output (N,OH,OW,C)
    int PT, PL;      // leading padding; padded cells are ignored (never win a max, never averaged)
};

// Inline (host-only geometry) so the CUDA module shares it without linking the CPU kernels.
inline Pool2DParams make_pool2d_params(int N, int H, int W, int C, int PH, int PW, int SH, int SW,
                                       Padding pad) {
    CNNFAST_CHECK(N > 0 && H > 0 && W > 0 && C > 0, "pool2d: input dims must be positive");
    Window1D h = window_1d(H, PH, SH, pad), w = window_1d(W, PW, SW, pad);
    return {N, H, W, C, PH, PW, SH, SW, h.out, w.out, h.pad_before, w.pad_before};
}

// out (N,OH,OW,C) overwritten. argmax (N,OH,OW,C) overwritten with the winning input's
// flat spatial index h*W+w, or nullptr (inference). Ties go to the first cell in row-major scan.
void maxpool2d_forward(float* out, int32_t* argmax, const float* inp, const Pool2DParams& p);
// dinp (N,H,W,C) overwritten: each dout goes to its argmax cell (summed where windows overlap).
// argmax must be what maxpool2d_forward wrote: every index lies in its own window (the Python
// binding checks this). relu_out: when the pool's input is a ReLU's output, the pool's own
// OUTPUT (N,OH,OW,C) as maxpool2d_forward wrote it, or nullptr; given, the gradient is also
// multiplied by the ReLU's derivative at the argmax cell (whose value the pooled output is, so
// relu_out > 0), which fuses the ReLU backward into this pass with exactly the values of the
// unfused sequence, reading the pooled output instead of the (larger) input.
void maxpool2d_backward(float* dinp, const float* dout, const int32_t* argmax,
                        const Pool2DParams& p, const float* relu_out = nullptr);

// Average over the window's cells inside the input (TF excludes SAME padding from the count).
void avgpool2d_forward(float* out, const float* inp, const Pool2DParams& p);
void avgpool2d_backward(float* dinp, const float* dout, const Pool2DParams& p);

// ---- Global pooling over all HW = H*W cells (GlobalAveragePooling2D / GlobalMaxPooling2D) ----
//   inp (N,HW,C)  out (N,C)
// Keras computes these as reductions (ops.mean / ops.max over axes 1, 2), not as pooling
// windows, so their gradients are the reductions': the mean's is dout / HW, and the max's is
// split evenly among the cells equal to the maximum (TF's reduce_max gradient), where a max-pool
// window gives it all to the first.
// out (N,C) overwritten: the sum over cells in row-major order, divided by HW.
void global_avgpool2d_forward(float* out, const float* inp, int N, int HW, int C);
// dinp (N,HW,C) overwritten with dout / HW.
void global_avgpool2d_backward(float* dinp, const float* dout, int N, int HW, int C);
// out (N,C) overwritten with the maximum over the cells.
void global_maxpool2d_forward(float* out, const float* inp, int N, int HW, int C);
// dinp (N,HW,C) overwritten: (1 / ties) * dout where inp == out (ties = how many cells of that
// (n, c) equal out), 0 elsewhere. out is what global_maxpool2d_forward wrote for inp.
void global_maxpool2d_backward(float* dinp, const float* dout, const float* inp, const float* out,
                               int N, int HW, int C);

// ---- ZeroPadding2D: inp (N,H,W,C) -> out (N, PT+H+PB, PL+W+PR, C) ----
// out overwritten: zeros around a copy of inp.
void zeropad2d_forward(float* out, const float* inp, int N, int H, int W, int C, int PT, int PB,
                       int PL, int PR);
// dinp (N,H,W,C) overwritten: the interior of dout.
void zeropad2d_backward(float* dinp, const float* dout, int N, int H, int W, int C, int PT, int PB,
                        int PL, int PR);

}  // namespace cnnfast
