// conv2d_taps.h -- internal to the conv2d CPU kernels: what conv2d_cpu.cpp (entry points, im2col
// + GEMM) calls in conv2d_taps_cpu.cpp (layers with few taps, K = KH*KW*C, without im2col), and
// the helpers both files use. Same dimension legend as conv2d.h.
#pragma once
#include <cstddef>
#include <vector>

#include "conv2d.h"

namespace cnnfast {

// A 1x1 stride-1 unpadded layer: inp (N*H*W, C) already is im2col's output.
inline bool is_pointwise(const Conv2DParams& p) {
    return p.KH == 1 && p.KW == 1 && p.SH == 1 && p.SW == 1 && p.PT == 0 && p.PL == 0;
}

// Per-thread scratch, grown once and then reused (steady-state calls allocate nothing).
// Returns nullptr when the allocation fails: it may run inside a parallel region, where an
// exception must not escape.
inline float* thread_scratch(std::vector<float>& buf, size_t n) noexcept {
    if (buf.size() < n) {
        try {
            buf.resize(n);
        } catch (...) {
            return nullptr;
        }
    }
    return buf.data();
}

// True when conv2d_dw_small_k computes this layer's weight gradient (K <= 24, not pointwise).
bool use_small_k_dw(const Conv2DParams& p);

// dweight (KH,KW,C,OC) and dbias (OC, or nullptr) overwritten; dout (N,OH,OW,OC); inp (N,H,W,C).
// Call only when use_small_k_dw(p). Bit-identical for any thread count.
void conv2d_dw_small_k(float* dweight, float* dbias, const float* dout, const float* inp,
                       const Conv2DParams& p);

// out (N,OH,OW,OC) overwritten, exactly as conv2d_forward's GEMM path would, and true, when this
// layer and ISA have a few-tap forward; otherwise false and out untouched: use the GEMM path.
bool conv2d_forward_small_k(float* out, const float* inp, const float* weight, const float* bias,
                            const Conv2DParams& p, bool relu);

}  // namespace cnnfast
