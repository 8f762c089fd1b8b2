// isa.cpp -- runtime choice of the CPU kernels' instruction set (isa.h).
#include "isa.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "common.h"

namespace cnnfast {

// The ISAs this build has kernels for, best first; generic is always last.
static const Isa kBuilt[] = {
#if defined(__x86_64__) || defined(__i386__)
    Isa::avx512,
    Isa::avx2,
#endif
    Isa::generic,
};

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::avx512: return "avx512";
        case Isa::avx2: return "avx2";
        case Isa::generic: break;
    }
    return "generic";
}

static bool cpu_supports(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
    // __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0).
    if (isa == Isa::avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    if (isa == Isa::avx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return isa == Isa::generic;
}

const char* supported_isas() {
    static const std::string names = [] {
        std::string s;
        for (Isa isa : kBuilt)
            if (cpu_supports(isa)) s += (s.empty() ? "" : ",") + std::string(isa_name(isa));
        return s;
    }();
    return names.c_str();
}

// The ISA for `name` ("auto" or empty = best supported); throws if unknown or unsupported.
static Isa isa_of(const std::string& name) {
    if (name == "auto" || name.empty()) {
        for (Isa isa : kBuilt)
            if (cpu_supports(isa)) return isa;
    }
    for (Isa isa : kBuilt)
        if (name == isa_name(isa)) {
            CNNFAST_CHECK(cpu_supports(isa), "ISA '" + name + "' is not supported by this CPU " +
                                                 "(supported: " + supported_isas() + ")");
            return isa;
        }
    fail("cnnfast: unknown ISA '" + name +
         "' (expected auto or one of: " + std::string(supported_isas()) + ")");
}

static std::atomic<int> g_isa{-1};  // -1 = not chosen yet: read CNNFAST_ISA on first use

Isa active_isa() {
    int i = g_isa.load(std::memory_order_relaxed);
    if (i < 0) {
        const char* env = std::getenv("CNNFAST_ISA");
        try {
            i = (int)isa_of(env ? env : "auto");
        } catch (const std::invalid_argument& err) {
            fail(std::string(err.what()) + " [from the environment variable CNNFAST_ISA]");
        }
        g_isa.store(i, std::memory_order_relaxed);
    }
    return (Isa)i;
}

void set_isa(const char* name) {
    CNNFAST_CHECK(name != nullptr, "set_isa: name is null");
    g_isa.store((int)isa_of(name), std::memory_order_relaxed);
}

}  // namespace cnnfast
