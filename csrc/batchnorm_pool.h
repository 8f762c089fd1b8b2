// batchnorm_pool.h -- BatchNormalization (optionally then a ReLU) and the MaxPool2D after it, in
// one pass each way: the normalised activation, BN's output, is never written or read.
//
// Dimension legend (on top of common.h's and pool2d.h's): inp (N,H,W,C) is BN's input, the
// pool's output and argmax are (N,OH,OW,C); M = N*H*W rows for BN's statistics.
//
// Only for pools whose windows tile the input (pool_windows_tile: stride == pool size and no
// leading padding, e.g. 2x2/2 with 'valid' or 'same'): each input cell then lies in at most one
// window, so the pool's gradient puts at most one value in each cell and BN's backward can read
// it from the pooled gradient and the argmax.
//
// Same bits as the unfused sequence batchnorm_forward, [activation_forward ReLU],
// maxpool2d_forward, and maxpool2d_backward, batchnorm_backward
// (docs/training_step.md#batchnormalization-fused-with-the-max-pool):
//   forward: each window's values are normalised as the pool reads them, y = x * inv + shift,
//     [v = y > 0 ? y : 0], with batchnorm_forward's expression; the max and its first-in-scan
//     tie rule are maxpool2d_forward's. xwin keeps x at each window's argmax, which backward
//     needs for xhat there.
//   backward: the gradient at a cell of BN's output is the pooled gradient where the cell is its
//     window's argmax (masked by the pooled value > 0 after a ReLU) and 0 elsewhere. BN's sums
//     run over the same row blocks in the same row order; the zero terms they skip add nothing
//     (adding +0 or -0 leaves a double sum that is never -0 unchanged), so they equal
//     batchnorm_backward's. Then one pass writes dinp from x, reading the pooled arrays (a
//     quarter of the input's size for 2x2) instead of a full-size gradient.
#pragma once
#include <cstdint>

#include "pool2d.h"

namespace cnnfast {

inline bool pool_windows_tile(const Pool2DParams& p) {
    return p.SH == p.PH && p.SW == p.PW && p.PT == 0 && p.PL == 0;
}

// out, argmax (N,OH,OW,C) overwritten: maxpool2d_forward of BN's output (x * inv + shift),
// through a ReLU when relu; argmax nullptr in inference. xwin (N,OH,OW,C) overwritten with x at
// the argmax, or nullptr (with argmax). inv, shift (C) as batchnorm_statistics wrote them.
void batchnorm_maxpool_apply(float* out, int32_t* argmax, float* xwin, const float* inp,
                             const float* inv, const float* shift, bool relu,
                             const Pool2DParams& p);

// The whole forward: batchnorm_forward's statistics of inp (M = N*H*W rows; training: the
// batch's, and the moving statistics updated; else the moving ones) into mean, rstd, then
// batchnorm_maxpool_apply. part: (batchnorm_blocks(M), 2C) with every block's moments already
// taken (batchnorm_block_moments; the Net takes them while the conv writes inp), or nullptr
// to take them here.
void batchnorm_maxpool_forward(float* out, int32_t* argmax, float* xwin, float* mean, float* rstd,
                               float* moving_mean, float* moving_var, const float* inp,
                               const float* gamma, const float* beta, double eps, double momentum,
                               bool training, bool relu, const Pool2DParams& p,
                               const double* part = nullptr);

// dinp (N,H,W,C) overwritten (nullptr to skip); dgamma, dbeta (C) overwritten, or nullptr.
// dout (N,OH,OW,C) the pooled gradient; argmax, xwin as batchnorm_maxpool_forward wrote them;
// inp (N,H,W,C) BN's input; mean, rstd (C) the forward's statistics; gamma (C) or nullptr.
// pooled: after a ReLU, the pool's output (the ReLU's derivative at the argmax), else nullptr.
// training and relu_mask as in batchnorm_backward (relu_mask: inp is a ReLU's output).
void batchnorm_maxpool_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                                const int32_t* argmax, const float* xwin, const float* pooled,
                                const float* inp, const float* mean, const float* rstd,
                                const float* gamma, const Pool2DParams& p, bool training,
                                bool relu_mask);

}  // namespace cnnfast
