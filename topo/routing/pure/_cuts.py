"""Twin of ext/_cuts.pyx."""
import numpy as np


def cut_capacity(link_src, link_dst, link_gbps, alive, side, out):
    a = side[link_src]
    b = side[link_dst]
    m = alive.astype(bool) & (a >= 0) & (b >= 0) & (a != b)
    out += np.bincount(a[m], weights=link_gbps[m], minlength=out.shape[0])[: out.shape[0]]
