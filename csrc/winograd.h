// winograd.h -- Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions (NHWC): forward, input and
// weight gradients. docs/winograd.md explains the transforms, the tiling and the error.
#pragma once
#include "conv2d.h"

namespace cnnfast {

// Which algorithm conv2d_forward / conv2d_backward use for the layers Winograd can serve.
// Auto: the rule of winograd_auto (docs/winograd.md#when-auto-picks-winograd).
enum class ConvAlgorithm : int { Auto = 0, Direct = 1, Winograd = 2 };
void set_conv_algorithm(ConvAlgorithm a);
ConvAlgorithm conv_algorithm();

// True for the layers F(2x2,3x3) computes: a 3x3 kernel, stride 1 (any padding).
bool winograd_applicable(const Conv2DParams& p);
// The layers whose forward pass the current setting sends to Winograd (Winograd: every
// applicable one; Auto: the applicable ones winograd_auto picks; Direct: none).
bool use_winograd(const Conv2DParams& p);
// The layers whose input gradient is computed by Winograd: only under Winograd (forced). Auto
// keeps the direct input gradient (docs/winograd.md#when-auto-picks-winograd).
bool use_winograd_backward(const Conv2DParams& p);
// The layers whose weight gradient is computed by Winograd (with_input_grad: the input
// gradient is wanted too, as it is for every layer but the first). Winograd: every applicable
// one; Auto: those of use_winograd, whether or not with_input_grad (the input gradient then
// runs direct, without im2col; docs/winograd.md#when-auto-picks-winograd).
bool use_winograd_weight(const Conv2DParams& p, bool with_input_grad);

// out (N,OH,OW,OC) = act(conv(inp, weight) + bias), as conv2d_forward (bias may be nullptr).
void winograd_forward(float* out, const float* inp, const float* weight, const float* bias,
                      const Conv2DParams& p, bool relu);
// dinp (N,H,W,C) overwritten with the input gradient of dout (N,OH,OW,OC): the full
// correlation of dout with the flipped, transposed kernel, by the same Winograd routine.
void winograd_backward_input(float* dinp, const float* dout, const float* weight,
                             const Conv2DParams& p);
// dweight (3,3,C,OC) and dbias (OC, or nullptr) overwritten with the weight and bias gradients
// of dout (N,OH,OW,OC) for input inp: dW = G^T [ sum over tiles (B^T d B) .* (A dY A^T) ] G
// (docs/winograd.md#the-weight-gradient). Bit-identical for any thread count.
void winograd_backward_weight(float* dweight, float* dbias, const float* dout, const float* inp,
                              const Conv2DParams& p);

}  // namespace cnnfast
