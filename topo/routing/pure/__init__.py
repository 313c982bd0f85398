"""Pure-Python/numpy twins of the Cython kernels in ext/ (same names, same signatures).

They are the fallback when the compiled modules are absent or when
TOPO_PURE_PYTHON=1, and the oracle the tests compare the kernels with.
"""
