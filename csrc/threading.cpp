// threading.cpp -- OpenMP thread control; a serial build reports one thread.
#include "common.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace cnnfast {

bool has_openmp() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

int num_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

bool in_parallel() {
#ifdef _OPENMP
    return omp_in_parallel() != 0;
#else
    return false;
#endif
}

void set_num_threads(int n) {
    CNNFAST_CHECK(n >= 1, "set_num_threads: n must be >= 1, got " + std::to_string(n));
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}

}  // namespace cnnfast
