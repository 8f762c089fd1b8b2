// dense_cpu.cpp -- Dense forward/backward on SGEMM.
//   inp (B,IN)  weight (IN,OUT)  out (B,OUT)
#include "dense.h"
#include "gemm.h"

namespace cnnfast {

void dense_forward(float* out, const float* inp, const float* weight, const float* bias, int B,
                   int IN, int OUT) {
    sgemm(false, false, B, OUT, IN, 1.0f, inp, IN, weight, OUT, 0.0f, out, OUT);
    if (bias)
        for (int b = 0; b < B; ++b)
            for (int o = 0; o < OUT; ++o) out[(size_t)b * OUT + o] += bias[o];
}

void dense_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                    const float* inp, const float* weight, int B, int IN, int OUT) {
    sgemm(true, false, IN, OUT, B, 1.0f, inp, IN, dout, OUT, 0.0f, dweight, OUT);
    if (dinp) sgemm(false, true, B, IN, OUT, 1.0f, dout, OUT, weight, OUT, 0.0f, dinp, IN);
    if (dbias) {
        for (int o = 0; o < OUT; ++o) dbias[o] = 0.0f;
        for (int b = 0; b < B; ++b)
            for (int o = 0; o < OUT; ++o) dbias[o] += dout[(size_t)b * OUT + o];
    }
}

}  // namespace cnnfast
