#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer run of the native code (issue 12, item 3).
#
# Builds a copy of the tracked tree with -fsanitize=address,undefined -D_GLIBCXX_ASSERTIONS
# (the OpenMP build), then runs the kernel, executor, Net and fuzz tests on it with libasan
# preloaded into the (unsanitized) interpreter, leak checking on. Any report fails the run:
# ASan aborts at the first error, UBSan is made fatal (halt_on_error), and LeakSanitizer
# exits non-zero at interpreter exit when something leaked that tools/lsan.supp does not
# name (that file suppresses the interpreter's and NumPy's own allocations only, each entry
# commented). TensorFlow is never imported (-m "not tf").
#
#   tools/sanitize.sh [pytest args...]     default: the test files below
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
start=$(date +%s)
py=$(python3 -c 'import sys; print(sys.executable)')  # the interpreter itself, not a shim
# CNNFAST_SANITIZE_TREE=DIR keeps the sanitized copy there (rebuilt when a source changed).
tree=${CNNFAST_SANITIZE_TREE:-}
if [ -z "$tree" ]; then
    tree=$(mktemp -d)
    trap 'rm -rf "$tree"' EXIT
fi
mkdir -p "$tree"
(cd "$root" && git ls-files -z | xargs -0 -I{} cp -p --parents {} "$tree")
# copies of files you have not committed yet: the working tree's content
(cd "$root" && git ls-files -z -m -o --exclude-standard | xargs -0 -I{} cp -p --parents {} \
    "$tree" 2>/dev/null || true)

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
echo "== sanitizer build ($san -D_GLIBCXX_ASSERTIONS)"
(cd "$tree" && CFLAGS="$san -D_GLIBCXX_ASSERTIONS -g1" LDFLAGS="$san" \
    "$py" setup.py -q build_ext --inplace >/dev/null)
echo "built in $(( $(date +%s) - start )) s"

libasan=$(${CXX:-g++} -print-file-name=libasan.so)
libstdcxx=$(${CXX:-g++} -print-file-name=libstdc++.so)
[ -f "$libasan" ] || { echo "libasan.so not found (${CXX:-g++} -print-file-name)"; exit 1; }
# libstdc++ preloaded too: ASan intercepts __cxa_throw at start-up and needs the real one
# then (the interpreter does not link libstdc++; without it the first C++ exception aborts).
preload="$libasan $libstdcxx"
if [ $# -eq 0 ]; then
    set -- tests/kernels tests/test_executor.py tests/test_executor_optimizers.py \
        tests/test_fuzz_core.py tests/test_fuzz_model.py tests/test_bad_input.py \
        tests/test_crash_checklist.py tests/test_threads.py tests/test_memory.py \
        tests/test_backup_restore.py
fi
# detect_leaks: LeakSanitizer at exit; the interpreter's allocations are suppressed by name.
# allocator_may_return_null: an impossible allocation is std::bad_alloc (MemoryError), as in
# the normal build, instead of ASan's abort.
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:abort_on_error=1:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1"
export LSAN_OPTIONS="suppressions=$root/tools/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# pymalloc keeps small objects in its own mmap'd arenas (invisible to LeakSanitizer, and not
# what cnnfast's code touches); NumPy's array buffers and cnnfast's allocations go through
# malloc / operator new, which ASan checks.
cd "$tree"
# libasan preloaded into the interpreter only (not into this shell and its tools)
LD_PRELOAD="$preload" "$py" -c "import cnnfast; print('sanitized build', cnnfast.build_info())"
LD_PRELOAD="$preload" "$py" -m pytest -q -p no:cacheprovider -m "not tf and not slow" -x "$@"
echo "sanitizer run finished in $(( $(date +%s) - start )) s"
