"""Build cnnfast._core from csrc/ with pybind11.

Environment:
  CNNFAST_NO_OPENMP=1   build the serial kernels even when the compiler has OpenMP.
Nothing here uses -march=native: ISA-specific code is compiled per function
(__attribute__((target(...)))) and chosen at run time, so one build runs on any x86-64.
"""
import os
import shutil
import sys
import tempfile
from glob import glob

from pybind11.setup_helpers import Pybind11Extension, ParallelCompile, build_ext
from setuptools import setup

ParallelCompile("CNNFAST_BUILD_JOBS", default=0).install()

OMP_PROBE = r"""
#include <omp.h>
int main() {
    int s = 0;
    #pragma omp parallel for reduction(+:s)
    for (int i = 0; i < 4; ++i) s += i;
    return s == 6 && omp_get_max_threads() > 0 ? 0 : 1;
}
"""


def _openmp_flags(compiler):
    """Return (compile_flags, link_flags) for OpenMP, or None when compile+link fails."""
    if os.environ.get("CNNFAST_NO_OPENMP", "") not in ("", "0"):
        return None
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    for cflags, lflags in candidates:
        tmp = tempfile.mkdtemp(prefix="cnnfast-omp-")
        try:
            src = os.path.join(tmp, "probe.cpp")
            with open(src, "w") as f:
                f.write(OMP_PROBE)
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=lflags)
            return cflags, lflags
        except Exception:  # noqa: BLE001 - any compiler/linker failure means "no OpenMP"
            continue
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return None


class BuildExt(build_ext):
    def build_extensions(self):
        omp = _openmp_flags(self.compiler)
        ct = self.compiler.compiler_type
        for ext in self.extensions:
            if ct == "msvc":
                ext.extra_compile_args += ["/O2", "/fp:precise"]
            else:
                # fp-contract=off: no silent a*b+c fusion, so optimizer/loss arithmetic rounds
                # exactly as TF's; the GEMM uses explicit FMA intrinsics where it wants them.
                ext.extra_compile_args += ["-O3", "-ffp-contract=off", "-fno-math-errno"]
            if omp:
                ext.extra_compile_args += omp[0]
                ext.extra_link_args += omp[1]
                ext.define_macros.append(("CNNFAST_OPENMP", "1"))
            print(f"cnnfast: OpenMP {'enabled' if omp else 'NOT available: serial build'}")
        super().build_extensions()


ext = Pybind11Extension(
    "cnnfast._core",
    sorted(glob("csrc/*.cpp")),
    include_dirs=["csrc"],
    cxx_std=17,
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt})
