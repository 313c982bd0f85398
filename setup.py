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
"""
import glob
import os
import sys

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
extensions = [
    Extension(f"topo.{os.path.splitext(os.path.basename(p))[0]}", [p],
              include_dirs=[np.get_include(), "ext"],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                             ("TOPO_BOUNDSCHECK", "1" if checks else "0")],
              depends=[mode_file],
              extra_compile_args=["-O3"] if not checks else ["-O1", "-g"])
    for p in sorted(glob.glob("ext/_*.pyx"))
]
setup(ext_modules=cythonize(
    extensions, language_level=3, include_path=["ext"],
    # a checked build never writes over ext/*.c, which normal builds reuse while up to date
    build_dir=os.path.join("build", "boundscheck") if checks else None,
    compiler_directives={"boundscheck": checks, "wraparound": False, "cdivision": True,
                         "initializedcheck": checks, "nonecheck": False}))
