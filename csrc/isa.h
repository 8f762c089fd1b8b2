// isa.h -- the instruction set of the hand-vectorized CPU kernels: one choice per process, read
// by the GEMM (gemm_cpu.cpp) and the few-tap conv kernels (conv2d_taps_cpu.cpp).
//
// Chosen on first use: the environment variable CNNFAST_ISA (avx512, avx2, generic or auto) if
// set, else the best ISA this CPU supports; set_isa() changes it later (Python:
// _core.set_gemm_isa). Each kernel says which of its versions runs on which ISA.
//
// It does NOT govern the CNNFAST_CLONES elementwise kernels (common.h: pooling, activations,
// dropout, optimizers, im2col): the dynamic loader picks their AVX2 or baseline clone from the
// CPU alone when the module loads, so with CNNFAST_ISA=generic they still run their AVX2 clone
// on an AVX2 machine. Both clones give identical results; the baseline one is tested by the
// -DCNNFAST_NO_CLONES build (.ci/run).
#pragma once

namespace cnnfast {

// generic: plain C++ for the compiler's baseline ISA, runs everywhere. avx2: AVX2 + FMA.
// avx512: AVX-512 F/BW/DQ/VL.
enum class Isa { generic, avx2, avx512 };

// The ISA the kernels run now (reads CNNFAST_ISA on the first call; throws if it names an
// unknown or unsupported ISA).
Isa active_isa();

// "generic", "avx2" or "avx512".
const char* isa_name(Isa isa);

// Comma-separated ISAs this build has kernels for and this CPU supports, best first (always
// ends in "generic").
const char* supported_isas();

// Force an ISA by name ("avx512", "avx2", "generic", or "auto" = the best supported); throws
// std::invalid_argument if unknown or unsupported.
void set_isa(const char* name);

}  // namespace cnnfast
