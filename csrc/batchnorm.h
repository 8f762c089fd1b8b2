// batchnorm.h -- BatchNormalization over the last axis (Keras axis=-1), forward and backward.
//
// Dimension legend (on top of common.h's):
//   M  rows: every position but the channel's (N*H*W for an NHWC Conv2D output, B for Dense)
//   C  channels: the normalised axis, the last one (stride 1)
// inp, out, dout, dinp are (M,C); gamma, beta, mean, rstd, moving_mean, moving_var are (C).
//
// The formulas are Keras 3 on TensorFlow (docs/keras_semantics.md#batchnormalization):
//   training:  mean = sum(x) / M,  var = sum((x - mean)^2) / M   (tf.nn.moments: biased)
//              taken in one pass over x as shifted moments in double: with p = x's first row,
//              S1 = sum(x - p), S2 = sum((x - p)^2), mean = p + S1/M, var = S2/M - (S1/M)^2
//              moving = moving * f32(momentum) + batch * f32(1 - momentum), for mean and var
//   inference: mean, var = the moving statistics
//   inv = rsqrt(var + f32(eps)) * gamma;  out = x * inv + (beta - mean * inv)
//              (tf.nn.batch_normalization's operation order; gamma nullptr = 1, beta = 0)
// Hyper-parameters arrive as Python floats (double) and are rounded to float32 where Keras
// rounds them (`1 - momentum` is computed in double first, as in csrc/optim.h).
//
// Reductions are deterministic for any thread count: rows are cut into fixed blocks of
// kBatchNormRows (independent of the threads), each block's per-channel sums are taken in
// double in row order, then the blocks are added in block order.
#pragma once
#include <cstdint>

namespace cnnfast {

constexpr int64_t kBatchNormRows = 256;

// out (M,C) overwritten. mean, rstd (C) overwritten with the statistics used, which backward
// reads: the batch's (training) or the moving ones (inference); rstd = 1 / sqrt(var + eps).
// moving_mean, moving_var (C) read, and when training updated in place with Keras's rule.
// gamma, beta (C) or nullptr (scale=False / center=False).
void batchnorm_forward(float* out, float* mean, float* rstd, float* moving_mean, float* moving_var,
                       const float* inp, const float* gamma, const float* beta, int64_t M, int C,
                       double eps, double momentum, bool training);

// dinp (M,C) overwritten (it must not alias dout), or nullptr to skip; dgamma, dbeta (C)
// overwritten, or nullptr. dout, inp (M,C); mean, rstd (C) as forward wrote them; gamma (C) or
// nullptr. training: the forward used the batch statistics (which then depend on inp), else
// constants:
//   xhat = (x - mean) * rstd,  dbeta = sum(dout),  dgamma = sum(dout * xhat)
//   training:  dinp = gamma * rstd * (dout - dbeta / M - xhat * dgamma / M)
//   inference: dinp = gamma * rstd * dout
// relu_mask: inp is a ReLU's output; dinp is also multiplied by its derivative (inp > 0), which
// fuses the layer below's ReLU backward into this pass (the Net's conv/dense + ReLU + BN).
void batchnorm_backward(float* dinp, float* dgamma, float* dbeta, const float* dout,
                        const float* inp, const float* mean, const float* rstd, const float* gamma,
                        int64_t M, int C, bool training, bool relu_mask = false);

// ---- The pieces the two are made of, for callers that fuse BatchNormalization with the ops
// around it (csrc/batchnorm_pool.h, the Net's Conv2D + BN + MaxPool2D): the same expressions in
// the same order, so the fused sequence gives the bits of batchnorm_forward/backward.
// The number of row blocks of M rows (each kBatchNormRows, the last one shorter).
int64_t batchnorm_blocks(int64_t M);
// part (blocks, 2C): its rows [b0, b1) overwritten with those row blocks' shifted sums of
// x (M, C) (the pilot is x's first row, so rows [0, C) of x must already hold their values).
void batchnorm_block_moments(double* part, const float* x, int64_t b0, int64_t b1, int64_t M,
                             int C);
// mean, rstd, inv, shift (C) overwritten: the statistics batchnorm_forward uses, and its
// normalisation out = x * inv + shift. training: from part (every block filled by
// batchnorm_block_moments over x), and moving_mean/moving_var updated; else the moving
// statistics (part may be nullptr).
void batchnorm_statistics(float* mean, float* rstd, float* inv, float* shift, float* moving_mean,
                          float* moving_var, const double* part, const float* x, const float* gamma,
                          const float* beta, int64_t M, int C, double eps, double momentum,
                          bool training);
// k, a, b (C) overwritten: backward's dinp = k * (dout - a - xhat * b) (training) or k * dout.
// part (blocks, 2C): per row block, sum(dout) in [0,C) and sum(dout * xhat) in [C,2C), each in
// double in row order; nullptr when no sums were taken (then a = b = 0). dgamma, dbeta (C) or
// nullptr: overwritten with the sums (only when part is given).
void batchnorm_grad_coefficients(float* k, float* a, float* b, float* dgamma, float* dbeta,
                                 const double* part, const float* rstd, const float* gamma,
                                 int64_t M, int C);

}  // namespace cnnfast
