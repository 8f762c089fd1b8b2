// conv2d_fused.h -- inference of Conv2D (+bias, +ReLU) -> MaxPool2D in one pass for the layers
// with few taps (an image model's first layer), so the convolution's output is never written
// (docs/fused_inference.md).
//
// Each pooled output is the maximum of the window's conv outputs, computed in registers by the
// same operations, in the same order, as the few-tap conv kernel (csrc/conv2d_taps_cpu.cpp)
// and the max-pool kernel (csrc/pool2d_cpu.cpp): the same bits as conv then pool, for any
// thread count.
#pragma once
#include <cstddef>

#include "conv2d.h"
#include "pool2d.h"

namespace cnnfast {

struct ConvPoolSpec {
    Conv2DParams conv;  // the convolution's geometry; conv.N is ignored (the call's N is used)
    const float* weight = nullptr;
    const float* bias = nullptr;  // (OC) or nullptr
    bool relu = false;            // the conv's activation: ReLU, else linear
    Pool2DParams pool;            // max pooling over the conv output; pool.N is ignored
};

// True for the layers conv_pool_forward computes in one pass on this ISA: a few-tap conv
// (K = KH*KW*C <= 11, not 1x1 stride 1, not Winograd) on avx2/avx512. For the others (Winograd,
// im2col + GEMM) conv then pool measured as fast (docs/fused_inference.md), and
// conv_pool_forward runs them block by block through conv2d_forward and maxpool2d_forward.
bool conv_pool_fusable(const Conv2DParams& conv);

// Floats of scratch one thread needs (the caller allocates threads * this, once).
size_t conv_pool_scratch_floats(const ConvPoolSpec& s);

// out (N, pool.OH, pool.OW, OC) overwritten with maxpool(act(conv(inp) + bias)) of
// inp (N, H, W, C). scratch: `slots` consecutive per-thread areas of
// conv_pool_scratch_floats(s) floats; at most `slots` threads are used. Serial inside a
// parallel region.
void conv_pool_forward(float* out, const float* inp, int N, const ConvPoolSpec& s, float* scratch,
                       int slots);

}  // namespace cnnfast
