"""Build cnnfast._core from csrc/ with pybind11.

Environment:
  CNNFAST_NO_OPENMP=1   build the serial kernels even when the compiler has OpenMP.
  CNNFAST_CUDA=1        also build cnnfast._cuda: csrc/*_cuda.cu compiled by nvcc, linked with
                        csrc/bindings_cuda.cpp against the static CUDA runtime. Needs nvcc
                        ($CUDA_HOME/bin/nvcc or on PATH); the default build needs no CUDA.
  CNNFAST_CUDA_ARCHS    compute capabilities for CNNFAST_CUDA=1, default "80,90": SASS for each
                        plus PTX for the newest (JIT on later GPUs). "80" for a quick check build.
Nothing here tunes for the build machine's CPU: ISA-specific code is compiled per function
(__attribute__((target(...)))) and chosen at run time, so one build runs on any x86-64.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
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


CUDA_SOURCES = sorted(glob("csrc/*_cuda.cu"))
CUDA_HEADERS = sorted(glob("csrc/*.h") + glob("csrc/*.cuh"))


def _want_cuda():
    return os.environ.get("CNNFAST_CUDA", "") not in ("", "0")


def _find_nvcc():
    """(nvcc path, CUDA home). Raises with what to do when nvcc is absent."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    candidates = [os.path.join(home, "bin", "nvcc")] if home else []
    candidates += [shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"]
    for nvcc in candidates:
        if nvcc and os.path.isfile(nvcc) and os.access(nvcc, os.X_OK):
            break
    else:
        sys.exit("cnnfast: CNNFAST_CUDA=1 but nvcc was not found (looked in $CUDA_HOME/bin, "
                 "PATH and /usr/local/cuda/bin). Install the CUDA toolkit and set CUDA_HOME, or "
                 "build without CNNFAST_CUDA for the CPU-only package.")
    if not home:
        # nvcc may be a wrapper script on PATH; ask it where its toolkit is.
        out = subprocess.run([nvcc, "--dryrun", "-E", "-x", "cu", os.devnull],
                             capture_output=True, text=True)
        m = re.search(r"^#\$ TOP=(.+)$", out.stdout + out.stderr, re.M)
        home = os.path.realpath(m.group(1)) if m else os.path.dirname(
            os.path.dirname(os.path.realpath(nvcc)))
    return nvcc, home


def _cuda_archs():
    archs = [a.strip().replace(".", "") for a in
             os.environ.get("CNNFAST_CUDA_ARCHS", "80,90").split(",") if a.strip()]
    if not archs or not all(a.isdigit() for a in archs):
        sys.exit(f"cnnfast: bad CNNFAST_CUDA_ARCHS={os.environ['CNNFAST_CUDA_ARCHS']!r} "
                 "(expected e.g. 80,90)")
    return archs


def _nvcc_flags(archs):
    # --fmad=false: no silent a*b+c contraction, like the CPU build's -ffp-contract=off (the
    # GEMM calls fmaf explicitly). IEEE division and sqrt are nvcc's defaults; no fast math.
    flags = ["-O3", "-std=c++17", "-Xcompiler", "-fPIC", "--fmad=false", "-Icsrc"]
    for a in archs:
        flags += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    newest = max(archs, key=int)
    return flags + ["-gencode", f"arch=compute_{newest},code=compute_{newest}"]


class BuildExt(build_ext):
    def build_extensions(self):
        omp = _openmp_flags(self.compiler)
        ct = self.compiler.compiler_type
        for ext in self.extensions:
            if ext.name == "cnnfast._cuda":
                self._compile_cuda(ext)
            if ct == "msvc":
                ext.extra_compile_args += ["/O2", "/fp:precise"]
            else:
                # fp-contract=off: no silent a*b+c fusion, so optimizer/loss arithmetic rounds
                # exactly as TF's; the GEMM uses explicit FMA intrinsics where it wants them.
                ext.extra_compile_args += ["-O3", "-ffp-contract=off", "-fno-math-errno"]
            if omp:
                ext.extra_compile_args += omp[0]
                ext.extra_link_args += omp[1]
            print(f"cnnfast: OpenMP {'enabled' if omp else 'NOT available: serial build'}")
        super().build_extensions()

    def _compile_cuda(self, ext):
        """nvcc-compile csrc/*_cuda.cu into objects the _cuda extension links (incremental:
        an object newer than its source and every header is reused)."""
        nvcc, home = _find_nvcc()
        archs = _cuda_archs()
        flags = _nvcc_flags(archs)
        version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
        m = re.search(r"release ([\d.]+)", version)
        out_dir = os.path.join(self.build_temp, "cuda-sm" + "-".join(archs))
        os.makedirs(out_dir, exist_ok=True)
        newest_header = max(os.path.getmtime(f) for f in CUDA_HEADERS)
        objects = []
        for src in CUDA_SOURCES:
            obj = os.path.join(out_dir, os.path.basename(src) + ".o")
            objects.append(obj)
            newest = max(newest_header, os.path.getmtime(src))
            if os.path.exists(obj) and os.path.getmtime(obj) >= newest:
                continue
            cmd = [nvcc, *flags, "-c", src, "-o", obj]
            print("cnnfast: " + " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
        libdirs = [d for d in (os.path.join(home, "lib64"), os.path.join(home, "lib"),
                               os.path.join(home, "targets", "x86_64-linux", "lib"))
                   if os.path.isfile(os.path.join(d, "libcudart_static.a"))]
        if not libdirs:
            sys.exit(f"cnnfast: libcudart_static.a not found under {home}")
        ext.extra_objects += objects
        ext.library_dirs += libdirs[:1]
        # Static runtime: the module needs only the NVIDIA driver at run time, and imports
        # (without touching the GPU) where there is none.
        ext.libraries += ["cudart_static", "rt", "dl", "pthread"]
        ext.define_macros += [("CNNFAST_CUDA_ARCHS", '"{}"'.format(",".join(archs))),
                              ("CNNFAST_NVCC_VERSION", '"%s"' % (m.group(1) if m else "?"))]
        print(f"cnnfast: CUDA module for sm_{', sm_'.join(archs)} (nvcc {m and m.group(1)})")


ext = Pybind11Extension(
    "cnnfast._core",
    sorted(f for f in glob("csrc/*.cpp") if not f.endswith("_cuda.cpp")),
    include_dirs=["csrc"],
    cxx_std=17,
)
ext_modules = [ext]
if _want_cuda():
    # A sibling module, so the default CPU build is untouched by CUDA.
    ext_modules.append(Pybind11Extension(
        "cnnfast._cuda",
        ["csrc/bindings_cuda.cpp"],
        include_dirs=["csrc"],
        depends=CUDA_SOURCES + CUDA_HEADERS,
        cxx_std=17,
    ))

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildExt})
