// depthwise.h -- DepthwiseConv2D (Keras semantics), NHWC, strides, dilation, TF padding rules.
//   inp (N,H,W,C)  weight (KH,KW,C,DM)  bias (C*DM)  out (N,OH,OW,C*DM)
//   out[n,oh,ow,c*DM+m] = bias[c*DM+m]
//       + sum_{kh,kw} inp[n, oh*SH + kh*DH - PT, ow*SW + kw*DW - PL, c] * weight[kh,kw,c,m]
// (cells outside the input are zeros). The window geometry is that of an undilated kernel of
// the effective size (K-1)*D+1 (window_1d in common.h), as TF computes it.
#pragma once
#include "common.h"

namespace cnnfast {

struct DepthwiseParams {
    int N, H, W, C;  // input
    int KH, KW, DM;  // kernel taps, depth multiplier; OC = C*DM output channels
    int SH, SW;      // strides
    int DH, DW;      // dilation rates
    int OH, OW;      // output spatial size
    int PT, PL;      // leading zero padding
    int OC() const { return C * DM; }
};

inline DepthwiseParams make_depthwise_params(int N, int H, int W, int C, int KH, int KW, int DM,
                                             int SH, int SW, int DH, int DW, Padding pad) {
    CNNFAST_CHECK(N > 0 && H > 0 && W > 0 && C > 0,
                  "depthwise_conv2d: input dims must be positive");
    CNNFAST_CHECK(KH > 0 && KW > 0 && DM > 0,
                  "depthwise_conv2d: kernel dims and depth multiplier must be positive");
    CNNFAST_CHECK(SH > 0 && SW > 0 && DH > 0 && DW > 0,
                  "depthwise_conv2d: strides and dilation rates must be positive");
    Window1D h = window_1d(H, (KH - 1) * DH + 1, SH, pad);
    Window1D w = window_1d(W, (KW - 1) * DW + 1, SW, pad);
    return {N, H, W, C, KH, KW, DM, SH, SW, DH, DW, h.out, w.out, h.pad_before, w.pad_before};
}

// out overwritten; bias may be nullptr. Parallel over output rows (n, oh). relu: ReLU applied
// to each pixel's outputs once they are summed (the values of activation_forward's ReLU after).
void depthwise_forward(float* out, const float* inp, const float* weight, const float* bias,
                       const DepthwiseParams& p, bool relu = false);

// dinp (N,H,W,C) overwritten, or nullptr to skip; dweight (KH,KW,C,DM) and dbias (C*DM, or
// nullptr) overwritten; dout (N,OH,OW,C*DM). dinp: parallel over input rows, each cell summed
// in (kh, kw, m) order. dweight/dbias: the output rows are cut into a number of groups fixed by
// the shape, each group summed in row order into its own partial, the partials added in group
// order. Bit-identical for any thread count.
void depthwise_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const DepthwiseParams& p);

}  // namespace cnnfast
