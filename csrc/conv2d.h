// conv2d.h -- 2-D convolution (cross-correlation), NHWC, Keras/TF padding rules.
#pragma once
#include <cstddef>
#include "common.h"

namespace cnnfast {

struct Conv2DParams {
    int N, H, W, C;  // input (N,H,W,C)
    int KH, KW, OC;  // kernel (KH,KW,C,OC), bias (OC)
    int SH, SW;      // strides
    int OH, OW;      // output (N,OH,OW,OC)
    int PT, PL;      // leading zero padding; rows/cols past the input are zeros too
};

// Validates sizes and computes OH/OW/PT/PL with window_1d(); throws on bad sizes.
// Inline (host-only geometry) so the CUDA module shares it without linking the CPU kernels.
inline Conv2DParams make_conv2d_params(int N, int H, int W, int C, int KH, int KW, int OC, int SH,
                                       int SW, Padding pad) {
    CNNFAST_CHECK(N > 0 && H > 0 && W > 0 && C > 0, "conv2d: input dims must be positive");
    CNNFAST_CHECK(KH > 0 && KW > 0 && OC > 0, "conv2d: kernel dims must be positive");
    Window1D h = window_1d(H, KH, SH, pad), w = window_1d(W, KW, SW, pad);
    return {N, H, W, C, KH, KW, OC, SH, SW, h.out, w.out, h.pad_before, w.pad_before};
}

// Floats of scratch memory conv2d_forward/backward need (caller allocates once, reuses).
size_t conv2d_workspace_size(const Conv2DParams& p);

// out (N,OH,OW,OC) overwritten; inp (N,H,W,C); weight (KH,KW,C,OC); bias (OC) or nullptr.
// relu: ReLU (v > 0 ? v : 0) applied in the GEMM epilogue (values identical to
// activation_forward ReLU applied afterwards).
void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const Conv2DParams& p, float* workspace, bool relu = false);

// dinp (N,H,W,C) overwritten, or nullptr to skip (first layer);
// dweight (KH,KW,C,OC) and dbias (OC) overwritten; dbias may be nullptr (no bias).
// dout (N,OH,OW,OC); inp and weight as in forward.
void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const Conv2DParams& p, float* workspace);

}  // namespace cnnfast
