# C type vocabulary shared by every kernel: 64-bit ids, double loads.
from libc.stdint cimport int64_t, int32_t, int16_t, int8_t, uint64_t, uint8_t

ctypedef int64_t id_t      # node, link, flow ids
ctypedef double real_t     # loads, capacities, bytes

# 1 in a build made with TOPO_BOUNDSCHECK=1 (setup.py defines the macro), else 0
cdef extern from *:
    """
    #ifndef TOPO_BOUNDSCHECK
    #define TOPO_BOUNDSCHECK 0
    #endif
    """
    const int TOPO_BOUNDSCHECK
