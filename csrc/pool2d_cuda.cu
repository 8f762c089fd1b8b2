// pool2d_cuda.cu -- MaxPooling2D / AveragePooling2D forward and backward on the GPU, NHWC.
//   inp (N,H,W,C)  out (N,OH,OW,C)  argmax (N,OH,OW,C) = flat spatial index ih*W+iw
// Forward: one thread per output element, scanning its window in the CPU's row-major order
// (first cell initialises, later cells win only if strictly greater): bit-identical.
// Backward: one thread per input element gathering from the windows that contain it, in
// ascending (oh, ow) order -- the CPU's scatter order -- so sums are bit-identical, with no
// atomics.
#include <algorithm>

#include "cuda_common.cuh"

namespace cnnfast {
namespace cuda {

namespace {

struct Span {
    int h0, h1, w0, w1;
};

__device__ __forceinline__ Span window(const Pool2DParams& p, int oh, int ow) {
    const int h0 = oh * p.SH - p.PT, w0 = ow * p.SW - p.PL;
    return {max(h0, 0), min(h0 + p.PH, p.H), max(w0, 0), min(w0 + p.PW, p.W)};
}

// Outputs whose window (along one axis) contains input index i: [lo, hi], possibly empty.
__device__ __forceinline__ void covering(int i, int pad, int k, int s, int out, int* lo, int* hi) {
    const int t = i + pad - k + 1;  // smallest o*s that still reaches i
    *lo = t <= 0 ? 0 : (t + s - 1) / s;
    *hi = min(out - 1, (i + pad) / s);
}

__global__ void maxpool_fwd_kernel(float* __restrict__ out, int32_t* __restrict__ argmax,
                                   const float* __restrict__ inp, Pool2DParams p, int64_t total) {
    CNNFAST_GRID_STRIDE(i, total) {
        const int c = (int)(i % p.C), ow = (int)((i / p.C) % p.OW);
        const int oh = (int)((i / ((int64_t)p.C * p.OW)) % p.OH);
        const int n = (int)(i / ((int64_t)p.C * p.OW * p.OH));
        const float* img = inp + (size_t)n * p.H * p.W * p.C + c;
        const Span s = window(p, oh, ow);
        int best = s.h0 * p.W + s.w0;
        float v = img[(size_t)best * p.C];
        for (int ih = s.h0; ih < s.h1; ++ih)
            for (int iw = s.w0; iw < s.w1; ++iw) {
                const int idx = ih * p.W + iw;
                const float x = img[(size_t)idx * p.C];
                if (x > v) {
                    v = x;
                    best = idx;
                }
            }
        out[i] = v;
        if (argmax) argmax[i] = best;
    }
}

__global__ void argmax_range_kernel(int* flag, const int32_t* __restrict__ argmax, int HW,
                                    int64_t total) {
    CNNFAST_GRID_STRIDE(i, total) {
        if (argmax[i] < 0 || argmax[i] >= HW) atomicOr(flag, 1);
    }
}

__global__ void maxpool_bwd_kernel(float* __restrict__ dinp, const float* __restrict__ dout,
                                   const int32_t* __restrict__ argmax, Pool2DParams p,
                                   int64_t total) {
    CNNFAST_GRID_STRIDE(i, total) {
        const int c = (int)(i % p.C), iw = (int)((i / p.C) % p.W);
        const int ih = (int)((i / ((int64_t)p.C * p.W)) % p.H);
        const int n = (int)(i / ((int64_t)p.C * p.W * p.H));
        const int idx = ih * p.W + iw;
        int oh0, oh1, ow0, ow1;
        covering(ih, p.PT, p.PH, p.SH, p.OH, &oh0, &oh1);
        covering(iw, p.PL, p.PW, p.SW, p.OW, &ow0, &ow1);
        float s = 0.0f;
        for (int oh = oh0; oh <= oh1; ++oh)
            for (int ow = ow0; ow <= ow1; ++ow) {
                const size_t o = (((size_t)n * p.OH + oh) * p.OW + ow) * p.C + c;
                if (argmax[o] == idx) s += dout[o];
            }
        dinp[i] = s;
    }
}

__global__ void avgpool_fwd_kernel(float* __restrict__ out, const float* __restrict__ inp,
                                   Pool2DParams p, int64_t total) {
    CNNFAST_GRID_STRIDE(i, total) {
        const int c = (int)(i % p.C), ow = (int)((i / p.C) % p.OW);
        const int oh = (int)((i / ((int64_t)p.C * p.OW)) % p.OH);
        const int n = (int)(i / ((int64_t)p.C * p.OW * p.OH));
        const float* img = inp + (size_t)n * p.H * p.W * p.C + c;
        const Span s = window(p, oh, ow);
        float acc = 0.0f;
        for (int ih = s.h0; ih < s.h1; ++ih)
            for (int iw = s.w0; iw < s.w1; ++iw) acc += img[((size_t)ih * p.W + iw) * p.C];
        out[i] = acc / (float)((s.h1 - s.h0) * (s.w1 - s.w0));
    }
}

__global__ void avgpool_bwd_kernel(float* __restrict__ dinp, const float* __restrict__ dout,
                                   Pool2DParams p, int64_t total) {
    CNNFAST_GRID_STRIDE(i, total) {
        const int c = (int)(i % p.C), iw = (int)((i / p.C) % p.W);
        const int ih = (int)((i / ((int64_t)p.C * p.W)) % p.H);
        const int n = (int)(i / ((int64_t)p.C * p.W * p.H));
        int oh0, oh1, ow0, ow1;
        covering(ih, p.PT, p.PH, p.SH, p.OH, &oh0, &oh1);
        covering(iw, p.PL, p.PW, p.SW, p.OW, &ow0, &ow1);
        float s = 0.0f;
        for (int oh = oh0; oh <= oh1; ++oh)
            for (int ow = ow0; ow <= ow1; ++ow) {
                const Span w = window(p, oh, ow);
                const float count = (float)((w.h1 - w.h0) * (w.w1 - w.w0));
                s += dout[(((size_t)n * p.OH + oh) * p.OW + ow) * p.C + c] / count;
            }
        dinp[i] = s;
    }
}

}  // namespace

void maxpool2d_forward(float* out, int32_t* argmax, const float* inp, const Pool2DParams& p) {
    const int64_t total = (int64_t)p.N * p.OH * p.OW * p.C;
    maxpool_fwd_kernel<<<grid_for(total), kThreads, 0, cur_stream()>>>(out, argmax, inp, p, total);
    CNNFAST_CUDA_LAUNCHED("maxpool2d_forward");
}

void maxpool2d_backward(float* dinp, const float* dout, const int32_t* argmax,
                        const Pool2DParams& p) {
    const int64_t nout = (int64_t)p.N * p.OH * p.OW * p.C;
    // Validate indices first, as the CPU does: a bad argmax raises before dinp is written.
    const int bad = check_flag([&](int* flag) {
        argmax_range_kernel<<<grid_for(nout), kThreads, 0, cur_stream()>>>(flag, argmax, p.H * p.W,
                                                                           nout);
        CNNFAST_CUDA_LAUNCHED("argmax_range");
    });
    CNNFAST_CHECK(!bad, "maxpool2d_backward: argmax out of range");
    const int64_t total = (int64_t)p.N * p.H * p.W * p.C;
    maxpool_bwd_kernel<<<grid_for(total), kThreads, 0, cur_stream()>>>(dinp, dout, argmax, p,
                                                                       total);
    CNNFAST_CUDA_LAUNCHED("maxpool2d_backward");
}

void avgpool2d_forward(float* out, const float* inp, const Pool2DParams& p) {
    const int64_t total = (int64_t)p.N * p.OH * p.OW * p.C;
    avgpool_fwd_kernel<<<grid_for(total), kThreads, 0, cur_stream()>>>(out, inp, p, total);
    CNNFAST_CUDA_LAUNCHED("avgpool2d_forward");
}

void avgpool2d_backward(float* dinp, const float* dout, const Pool2DParams& p) {
    const int64_t total = (int64_t)p.N * p.H * p.W * p.C;
    avgpool_bwd_kernel<<<grid_for(total), kThreads, 0, cur_stream()>>>(dinp, dout, p, total);
    CNNFAST_CUDA_LAUNCHED("avgpool2d_backward");
}

}  // namespace cuda
}  // namespace cnnfast
