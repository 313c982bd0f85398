"""Build the Cython kernels in ext/ into private topo._* modules.

Metadata lives in pyproject.toml; this file only lists the extensions.
Set TOPO_BOUNDSCHECK=1 to build with bounds and wraparound checks on.
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

checks = os.environ.get("TOPO_BOUNDSCHECK") == "1"
extensions = [
    Extension(f"topo.{os.path.splitext(os.path.basename(p))[0]}", [p],
              include_dirs=[np.get_include(), "ext"],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
              extra_compile_args=["-O3"])
    for p in sorted(glob.glob("ext/_*.pyx"))
]
setup(ext_modules=cythonize(
    extensions, language_level=3, include_path=["ext"],
    compiler_directives={"boundscheck": checks, "wraparound": checks, "cdivision": True,
                         "initializedcheck": checks, "nonecheck": False}))
