"""Build the Cython kernels in ext/ into private topo._* modules.

Metadata lives in pyproject.toml; this file only lists the extensions.

TOPO_BOUNDSCHECK=1 at build time compiles the kernels with Cython's boundscheck
and initializedcheck on: an index outside an array raises IndexError instead
of reading or writing past it. wraparound stays off as in the normal build, so
a negative index is an error there too (with it on, -1 would quietly read the
last entry and hide the very bug the check is for). A checked build is a
debugging and CI build (slower kernels); it writes its C files under
build/boundscheck/, never over ext/*.c, and a change of mode rebuilds every
module (build/kernel-build-mode is a dependency of each), so switching back
needs no cleaning. For example

    TOPO_BOUNDSCHECK=1 python3 setup.py build_ext --build-lib /tmp/checked

builds checked copies of the modules under /tmp/checked/topo/ and leaves the
installed ones alone (.ci/run runs the kernel tests against such a copy).

OpenMP: the kernels' parallel loops (cython.parallel.prange) are compiled with
-fopenmp when the C compiler accepts it (tried on a small program first), and as
plain loops otherwise; TOPO_OPENMP=0 builds without it. topo._routing.OPENMP says
which build is installed. The results do not depend on it (see route_fluid).
"""
import glob
import os
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - build-time message
    sys.exit("topo needs Cython>=3 to build its kernels: pip install 'Cython>=3' (pip does this for you "
             "when installing from the source tree with build isolation)")
import numpy as np

checks = os.environ.get("TOPO_BOUNDSCHECK", "") == "1"
# The build mode, as a dependency of every extension: rewritten (so newer than any built module)
# when the mode changes, so that switching between checked and normal builds rebuilds the
# modules, even in place, instead of finding the other mode's modules up to date.
here = os.path.dirname(os.path.abspath(__file__))
mode_file = os.path.join(here, "build", "kernel-build-mode")
mode = "boundscheck" if checks else "normal"
try:
    with open(mode_file) as fh:
        same = fh.read().strip() == mode
except OSError:
    same = False
if not same:
    os.makedirs(os.path.dirname(mode_file), exist_ok=True)
    with open(mode_file, "w") as fh:
        fh.write(mode + "\n")


def _openmp_flags() -> list[str]:
    """["-fopenmp"] if the C compiler builds and links an OpenMP program with it, else []."""
    if os.environ.get("TOPO_OPENMP", "") == "0":
        return []
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp.c")
        with open(src, "w") as fh:
            fh.write("#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\n"
                     "return omp_get_max_threads() > 0 && n > 0 ? 0 : 1;}\n")
        try:
            r = subprocess.run([*cc, "-fopenmp", src, "-o", os.path.join(tmp, "omp")], capture_output=True,
                               timeout=120)
        except (OSError, subprocess.SubprocessError):
            return []
    return ["-fopenmp"] if r.returncode == 0 else []


omp = _openmp_flags()
if not omp:
    print("topo: building the kernels without OpenMP (one thread)", file=sys.stderr)
extensions = [
    Extension(f"topo.{os.path.splitext(os.path.basename(p))[0]}", [p],
              include_dirs=[np.get_include(), "ext"],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                             ("TOPO_BOUNDSCHECK", "1" if checks else "0")],
              depends=[mode_file],
              # -ffp-contract=off: no fused multiply-adds, even where CFLAGS ask for a CPU that has them
              # (the max-min kernel's results are compared bit for bit with its twin and across machines)
              extra_compile_args=(["-O3"] if not checks else ["-O1", "-g"]) + ["-ffp-contract=off"] + omp,
              extra_link_args=omp)
    for p in sorted(glob.glob("ext/_*.pyx"))
]
setup(ext_modules=cythonize(
    extensions, language_level=3, include_path=["ext"],
    # a checked build never writes over ext/*.c, which normal builds reuse while up to date
    build_dir=os.path.join("build", "boundscheck") if checks else None,
    compiler_directives={"boundscheck": checks, "wraparound": False, "cdivision": True,
                         "initializedcheck": checks, "nonecheck": False}))
