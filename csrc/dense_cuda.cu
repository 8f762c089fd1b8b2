// dense_cuda.cu -- Dense forward/backward on the GPU on the fp32 tiled SGEMM.
//   inp (B,IN)  weight (IN,OUT)  out (B,OUT)
#include "cuda_common.cuh"

namespace cnnfast {
namespace cuda {

void dense_forward(float* out, const float* inp, const float* weight, const float* bias, int B,
                   int IN, int OUT) {
    sgemm(false, false, B, OUT, IN, 1.0f, inp, IN, weight, OUT, 0.0f, out, OUT);
    if (bias) add_bias_rows(out, bias, B, OUT);
}

void dense_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                    const float* weight, int B, int IN, int OUT) {
    sgemm(true, false, IN, OUT, B, 1.0f, inp, IN, dout, OUT, 0.0f, dweight, OUT);
    if (dinp) sgemm(false, true, B, IN, OUT, 1.0f, dout, OUT, weight, OUT, 0.0f, dinp, IN);
    if (dbias) sum_rows(dbias, dout, B, OUT);
}

}  // namespace cuda
}  // namespace cnnfast
