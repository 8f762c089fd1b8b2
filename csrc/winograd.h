// winograd.h -- Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions (NHWC), forward and input
// gradient. docs/winograd.md explains the transforms, the tiling and the error.
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
// keeps the direct input gradient, which measured faster (docs/winograd.md).
bool use_winograd_backward(const Conv2DParams& p);

// out (N,OH,OW,OC) = act(conv(inp, weight) + bias), as conv2d_forward (bias may be nullptr).
void winograd_forward(float* out, const float* inp, const float* weight, const float* bias,
                      const Conv2DParams& p, bool relu);
// dinp (N,H,W,C) overwritten with the input gradient of dout (N,OH,OW,OC): the full
// correlation of dout with the flipped, transposed kernel, by the same Winograd routine.
void winograd_backward_input(float* dinp, const float* dout, const float* weight,
                             const Conv2DParams& p);

}  // namespace cnnfast
