// conv2d_dilated.h -- Conv2D with dilation_rate > 1 (atrous convolution), NHWC, Keras/TF rules.
// A separate entry point: the dilation-1 layers never reach it (the caller branches once, at
// dispatch), so the im2col + GEMM and few-tap paths of conv2d_cpu.cpp keep their exact code.
//   tap (kh, kw) of output (oh, ow) reads input (oh*SH + kh*DH - PT, ow*SW + kw*DW - PL);
//   the window geometry is that of an undilated kernel of the effective size (K-1)*D+1.
#pragma once
#include "conv2d.h"

namespace cnnfast {

struct Conv2DDilatedParams {
    Conv2DParams g;  // KH, KW: the kernel's taps; OH/OW/PT/PL from the effective size
    int DH, DW;      // dilation rates (>= 1)
};

inline Conv2DDilatedParams make_conv2d_dilated_params(int N, int H, int W, int C, int KH, int KW,
                                                      int OC, int SH, int SW, int DH, int DW,
                                                      Padding pad) {
    CNNFAST_CHECK(DH > 0 && DW > 0, "conv2d: dilation rates must be positive");
    CNNFAST_CHECK(KH > 0 && KW > 0, "conv2d: kernel dims must be positive");
    Conv2DParams g =
        make_conv2d_params(N, H, W, C, (KH - 1) * DH + 1, (KW - 1) * DW + 1, OC, SH, SW, pad);
    g.KH = KH;
    g.KW = KW;
    return {g, DH, DW};
}

// out (N,OH,OW,OC) overwritten; inp (N,H,W,C); weight (KH,KW,C,OC); bias (OC) or nullptr.
// Scratch is per thread, grown once and reused. Bit-identical for any thread count.
// relu: ReLU in the GEMM epilogue (the values of activation_forward's ReLU afterwards).
void conv2d_dilated_forward(float* out, const float* inp, const float* weight, const float* bias,
                            const Conv2DDilatedParams& p, bool relu = false);

// dinp (N,H,W,C) overwritten, or nullptr to skip; dweight (KH,KW,C,OC) and dbias (OC, or
// nullptr) overwritten; dout (N,OH,OW,OC). Bit-identical for any thread count.
void conv2d_dilated_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                             const float* inp, const float* weight, const Conv2DDilatedParams& p);

}  // namespace cnnfast
