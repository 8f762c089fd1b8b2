// dense_cpu.cpp -- Dense forward/backward on SGEMM.
//   inp (B,IN)  weight (IN,OUT)  out (B,OUT)
//   out = inp @ weight + bias;  dweight = inp^T @ dout;  dinp = dout @ weight^T;
//   dbias = column sums of dout.
// All three products go through the packed GEMM, which reads the transposed operands in place
// (its packing handles either layout), and the bias rides in the GEMM epilogue.
#include "dense.h"
#include "gemm.h"

namespace cnnfast {

void dense_forward(float* out, const float* inp, const float* weight, const float* bias, int B,
                   int IN, int OUT, bool relu) {
    sgemm_bias(false, false, B, OUT, IN, 1.0f, inp, IN, weight, OUT, 0.0f, out, OUT, bias, relu);
}

void dense_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                    const float* weight, int B, int IN, int OUT) {
    sgemm(true, false, IN, OUT, B, 1.0f, inp, IN, dout, OUT, 0.0f, dweight, OUT);
    if (dinp) sgemm(false, true, B, IN, OUT, 1.0f, dout, OUT, weight, OUT, 0.0f, dinp, IN);
    // Deterministic for any thread count: each column is summed in row order.
    if (dbias) column_sums(dbias, dout, B, OUT, OUT, false);
}

}  // namespace cnnfast
