// conv2d_cuda.cu -- Conv2D forward/backward on the GPU as im2col + the fp32 tiled SGEMM.
//   inp (N,H,W,C)  weight (KH,KW,C,OC) == (K,OC), K = KH*KW*C  out (N,OH,OW,OC) == (M,OC)
//   col (rows,K):  out = col @ weight;  dweight = col^T @ dout;  dcol = dout @ weight^T
// The batch is processed in chunks of whole images whose col fits in kChunkFloats, so the
// workspace stays bounded for big batches; a typical training batch is one chunk.
// col2im is a gather (one thread per input cell, no atomics): deterministic, and it adds the
// dcol entries in the CPU's order (output pixels ascending).
#include <algorithm>

#include "cuda_common.cuh"

namespace cnnfast {
namespace cuda {

namespace {

constexpr size_t kChunkFloats = (size_t)32 << 20;  // 128 MiB of col per chunk at most

bool is_pointwise(const Conv2DParams& p) {
    return p.KH == 1 && p.KW == 1 && p.SH == 1 && p.SW == 1 && p.PT == 0 && p.PL == 0;
}

int images_per_chunk(const Conv2DParams& p) {
    const size_t per_image = (size_t)p.OH * p.OW * p.KH * p.KW * p.C;
    size_t n = kChunkFloats / std::max<size_t>(per_image, 1);
    return (int)std::min<size_t>(std::max<size_t>(n, 1), (size_t)p.N);
}

// col (nimg*OH*OW, K) overwritten from images [n0, n0+nimg): one thread per col element,
// consecutive threads along K (contiguous writes; reads contiguous along C).
__global__ void im2col_kernel(float* __restrict__ col, const float* __restrict__ inp,
                              Conv2DParams p, int n0, int64_t total) {
    const int K = p.KH * p.KW * p.C;
    CNNFAST_GRID_STRIDE(i, total) {
        const int64_t r = i / K;
        const int k = (int)(i % K);
        const int ow = (int)(r % p.OW), oh = (int)((r / p.OW) % p.OH);
        const int n = n0 + (int)(r / ((int64_t)p.OW * p.OH));
        const int c = k % p.C, kw = (k / p.C) % p.KW, kh = k / (p.C * p.KW);
        const int ih = oh * p.SH + kh - p.PT, iw = ow * p.SW + kw - p.PL;
        col[i] = (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W)
                     ? 0.0f
                     : inp[(((size_t)n * p.H + ih) * p.W + iw) * p.C + c];
    }
}

// dinp images [n0, n0+nimg) overwritten: each cell sums the dcol entries that read it, in
// ascending (oh, ow) order -- kh and kw descending -- exactly the CPU col2im's order.
__global__ void col2im_kernel(float* __restrict__ dinp, const float* __restrict__ col,
                              Conv2DParams p, int n0, int64_t total) {
    const int K = p.KH * p.KW * p.C;
    CNNFAST_GRID_STRIDE(i, total) {
        const int c = (int)(i % p.C);
        const int iw = (int)((i / p.C) % p.W), ih = (int)((i / ((int64_t)p.C * p.W)) % p.H);
        const int nl = (int)(i / ((int64_t)p.C * p.W * p.H));  // image within the chunk
        float s = 0.0f;
        for (int kh = p.KH - 1; kh >= 0; --kh) {
            const int th = ih + p.PT - kh;
            if (th < 0 || th % p.SH) continue;
            const int oh = th / p.SH;
            if (oh >= p.OH) continue;
            for (int kw = p.KW - 1; kw >= 0; --kw) {
                const int tw = iw + p.PL - kw;
                if (tw < 0 || tw % p.SW) continue;
                const int ow = tw / p.SW;
                if (ow >= p.OW) continue;
                const size_t r = ((size_t)nl * p.OH + oh) * p.OW + ow;
                s += col[r * K + ((size_t)kh * p.KW + kw) * p.C + c];
            }
        }
        dinp[(size_t)n0 * p.H * p.W * p.C + i] = s;
    }
}

void im2col(float* col, const float* inp, const Conv2DParams& p, int n0, int nimg) {
    const int64_t total = (int64_t)nimg * p.OH * p.OW * p.KH * p.KW * p.C;
    im2col_kernel<<<grid_for(total), kThreads, 0, cur_stream()>>>(col, inp, p, n0, total);
    CNNFAST_CUDA_LAUNCHED("im2col");
}

void col2im(float* dinp, const float* col, const Conv2DParams& p, int n0, int nimg) {
    const int64_t total = (int64_t)nimg * p.H * p.W * p.C;
    col2im_kernel<<<grid_for(total), kThreads, 0, cur_stream()>>>(dinp, col, p, n0, total);
    CNNFAST_CUDA_LAUNCHED("col2im");
}

}  // namespace

size_t conv2d_workspace_size(const Conv2DParams& p) {
    if (is_pointwise(p)) return 0;
    return (size_t)images_per_chunk(p) * p.OH * p.OW * p.KH * p.KW * p.C;
}

void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    const Conv2DParams& p, float* ws) {
    const int K = p.KH * p.KW * p.C, per_img = p.OH * p.OW;
    if (is_pointwise(p)) {
        sgemm(false, false, p.N * per_img, p.OC, K, 1.0f, inp, K, weight, p.OC, 0.0f, out, p.OC);
    } else {
        CNNFAST_CHECK(ws != nullptr, "conv2d_forward: workspace required");
        const int chunk = images_per_chunk(p);
        for (int n0 = 0; n0 < p.N; n0 += chunk) {
            const int nimg = std::min(chunk, p.N - n0), rows = nimg * per_img;
            im2col(ws, inp, p, n0, nimg);
            sgemm(false, false, rows, p.OC, K, 1.0f, ws, K, weight, p.OC, 0.0f,
                  out + (size_t)n0 * per_img * p.OC, p.OC);
        }
    }
    if (bias) add_bias_rows(out, bias, p.N * per_img, p.OC);
}

void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const Conv2DParams& p, float* ws) {
    const int K = p.KH * p.KW * p.C, per_img = p.OH * p.OW, M = p.N * per_img;
    if (dbias) sum_rows(dbias, dout, M, p.OC);
    if (is_pointwise(p)) {
        sgemm(true, false, K, p.OC, M, 1.0f, inp, K, dout, p.OC, 0.0f, dweight, p.OC);
        if (dinp) sgemm(false, true, M, K, p.OC, 1.0f, dout, p.OC, weight, p.OC, 0.0f, dinp, K);
        return;
    }
    CNNFAST_CHECK(ws != nullptr, "conv2d_backward: workspace required");
    const int chunk = images_per_chunk(p);
    for (int n0 = 0; n0 < p.N; n0 += chunk) {
        const int nimg = std::min(chunk, p.N - n0), rows = nimg * per_img;
        const float* dout_c = dout + (size_t)n0 * per_img * p.OC;
        im2col(ws, inp, p, n0, nimg);
        // dweight accumulates over chunks (beta 1 after the first).
        sgemm(true, false, K, p.OC, rows, 1.0f, ws, K, dout_c, p.OC, n0 == 0 ? 0.0f : 1.0f, dweight,
              p.OC);
        if (!dinp) continue;
        // The stream orders this after the dweight GEMM that still reads col from ws.
        sgemm(false, true, rows, K, p.OC, 1.0f, dout_c, p.OC, weight, p.OC, 0.0f, ws, K);
        col2im(dinp, ws, p, n0, nimg);
    }
}

}  // namespace cuda
}  // namespace cnnfast
