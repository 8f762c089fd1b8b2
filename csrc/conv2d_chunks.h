// conv2d_chunks.h -- the batch chunking of the im2col + SGEMM convolutions, shared by
// conv2d_cpu.cpp (dilation 1) and conv2d_dilated_cpu.cpp (dilation > 1).
//
// The batch is processed in chunks of whole images whose col rows fit in about 512 KB, so the
// im2col buffer stays in L2 (1-2 MB per core) between being written and being read by the
// GEMM instead of making a round trip through (slow) main memory.
//
// Threads. With two or more chunks (or chunk groups), each thread runs whole units -- im2col
// into its own buffer, then a serial GEMM -- in ONE parallel region per pass: every chunk's data
// stays in the L2 of the core that uses it, and the layer pays one fork/join instead of two per
// chunk (which, on a machine with other work, stalls at every join a descheduled thread is late
// for). One unit: the kernels inside it (im2col, GEMM, col2im) are parallel.
//
// Determinism. The chunks depend only on the layer's shape. The weight gradient is summed in
// at most kWeightGroups fixed groups of consecutive chunks (each group in chunk order, into its
// own partial), then the partials in group order: bit-identical for any number of threads, and
// up to kWeightGroups threads share the weight gradient, even of a one-channel first layer.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "conv2d.h"
#include "conv2d_taps.h"  // thread_scratch

namespace cnnfast {
namespace conv_chunks {

inline constexpr size_t kChunkFloats = 128 * 1024;  // ~512 KB of col per chunk
inline constexpr int kWeightGroups = 8;

// Images per chunk: enough that col (rows x K, K = KH*KW*C with KH, KW the kernel's taps) is
// about kChunkFloats, at least one image.
inline int images_per_chunk(const Conv2DParams& p) {
    const size_t per_image = (size_t)p.OH * p.OW * p.KH * p.KW * p.C;
    size_t n = kChunkFloats / std::max<size_t>(per_image, 1);
    return (int)std::min<size_t>(std::max<size_t>(n, 1), (size_t)p.N);
}

// Floats of one chunk's im2col.
inline size_t col_floats(const Conv2DParams& p) {
    return (size_t)images_per_chunk(p) * p.OH * p.OW * p.KH * p.KW * p.C;
}

struct Chunks {
    int size, count;  // images per chunk, number of chunks
    int first(int c) const { return c * size; }
    int images(int c, int N) const { return std::min(size, N - first(c)); }
};

inline Chunks chunks_of(const Conv2DParams& p) {
    const int size = images_per_chunk(p);
    return {size, (p.N + size - 1) / size};
}

// Per-thread scratch of both convolutions (they never run inside each other): a chunk's
// im2col, and the calling thread's weight-gradient partials of groups 1..
inline std::vector<float>& col_scratch() {
    static thread_local std::vector<float> buf;
    return buf;
}
inline std::vector<float>& partial_scratch() {
    static thread_local std::vector<float> buf;
    return buf;
}

// Threads for a loop over `count` whole units, or 1 to go unit by unit with parallel kernels.
inline int chunk_threads(int count) {
    if (in_parallel() || count < 2) return 1;
    return std::min(num_threads(), count);
}

// run(u, col) for u in [0, count): one chunk (or chunk group) each, with an im2col buffer of
// col_n floats. With one unit or one thread: in order, on ws (the caller's workspace; nullptr:
// this thread's scratch), the kernels inside parallel. Otherwise whole units per thread in one
// parallel region, each thread on its own scratch. Either way a unit computes the same values.
template <typename Run>
void for_each_unit(int count, size_t col_n, float* ws, const Run& run) {
    const int nt = chunk_threads(count);
    if (nt == 1) {
        float* col = ws ? ws : thread_scratch(col_scratch(), col_n);
        if (!col) throw std::bad_alloc();
        for (int u = 0; u < count; ++u) run(u, col);
        return;
    }
    std::atomic<bool> failed{false};  // set by any thread whose scratch allocation failed
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
#endif
    for (int u = 0; u < count; ++u) {
        float* col = thread_scratch(col_scratch(), col_n);
        if (col)
            run(u, col);
        else
            failed.store(true, std::memory_order_relaxed);
    }
    if (failed.load()) throw std::bad_alloc();
}

// The backward pass over `count` chunks in G groups of consecutive chunks (group g: chunks
// [g*count/G, (g+1)*count/G)): run(c, col, dw, first) for each chunk c of a group in order,
// dw the group's weight-gradient partial (group 0's is dweight itself; first: c is the group's
// first chunk, which overwrites it). dweight nullptr: no weight gradient here (run gets
// dw = nullptr). Then dweight = partial 0 + partial 1 + ... in group order (elementwise: any
// split of the KO elements over threads gives the same sums).
template <typename Run>
void for_each_group(int count, int G, float* dweight, size_t KO, size_t col_n, float* ws,
                    const Run& run) {
    const bool partials = G > 1 && dweight;
    float* partial = nullptr;  // partials of groups 1..G-1
    if (partials) {
        partial = thread_scratch(partial_scratch(), (G - 1) * KO);
        if (!partial) throw std::bad_alloc();
    }
    for_each_unit(G, col_n, ws, [&](int g, float* col) {
        float* dw = !dweight ? nullptr : g == 0 ? dweight : partial + (g - 1) * KO;
        const int c0 = g * count / G, c1 = (g + 1) * count / G;
        for (int c = c0; c < c1; ++c) run(c, col, dw, c == c0);
    });
    if (!partials) return;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (KO * G > 65536 && !in_parallel())
#endif
    for (int64_t i = 0; i < (int64_t)KO; ++i) {
        float v = dweight[i];
        for (int g = 1; g < G; ++g) v += partial[(g - 1) * KO + i];
        dweight[i] = v;
    }
}

}  // namespace conv_chunks
}  // namespace cnnfast
