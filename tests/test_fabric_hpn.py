"""examples/alibaba-hpn-pod.yaml against its published figures (sources in the file's header):
a 2-tier, dual-plane, rail-optimized pod with dual-ToR, ToRs of 128 x 200G down and 64 x 400G up.
Counts from `describe` and from the fabric arrays."""
from __future__ import annotations

import functools

import numpy as np

from topo.routing.describe import describe
from topo.model.fabric import build
from topo.model.spec import load

from conftest import EXAMPLES


@functools.lru_cache(maxsize=None)
def hpn():
    c = load(EXAMPLES / "alibaba-hpn-pod.yaml")
    f = build(c)
    return c, f, describe(f, c)


def test_published_counts():
    c, f, info = hpn()
    assert info["accelerators"] == 15 * 1024                 # [BB]: 15 segments of 1,024 GPUs
    assert info["nodes"] == 15 * 128                          # [WO]: 128 servers per segment
    leaves = np.flatnonzero(f.node_tier == 1)
    assert leaves.size == 15 * 16                             # [WO]: 16 leaf switches per segment
    assert np.bincount(f.node_plane[leaves]).tolist() == [120, 120]   # 8 per plane and segment
    m = (f.link_tier == 0) & ((np.arange(f.n_links) & 1) == 0)
    down = np.bincount(f.link_dst[m], minlength=f.n_nodes)[leaves]
    assert (down == 128).all()                                # [WO]: 128 x 200G down, all used
    assert set(f.link_gbps[m].tolist()) == {200.0}
    m1 = (f.link_tier == 1) & ((np.arange(f.n_links) & 1) == 0)
    up = np.bincount(f.link_src[m1], minlength=f.n_nodes)[leaves]
    assert (up == 64).all() and set(f.link_gbps[m1].tolist()) == {400.0}   # [WO]: 64 x 400G up
    assert info["tiers"][0]["ports"] == {"down": 128, "down_gbps": 200.0, "up": 64, "up_gbps": 400.0,
                                         "stated": True}
    assert info["tiers"][0]["oversubscription"] == 1.0        # 25.6 / 25.6 Tb/s
    assert info["injection_gbps_per_accelerator"] == 400.0    # [BB]: 2 x 200G per GPU
    # every leaf serves one rail of one plane, and a segment's 128 hosts share a rail's leaf
    ep = f.link_src[m]
    rails = f.ep_local[ep] % 8
    owner = f.link_dst[m]
    for lv in leaves[:16].tolist():
        assert np.unique(rails[owner == lv]).size == 1
        assert np.unique(f.ep_server[ep[owner == lv]] // 128).size == 1
    # not published: the aggregation tier topo derives, shown as derived
    assert info["tiers"][1]["switches"] == 2 * 64
    assert any(x["what"] == "leaf-spine bundle" for x in info["structure"]["derived"])
    assert any(x["what"] == "leaf port groups" for x in info["structure"]["stated"])


def test_no_tor_or_plane_failure_isolates_a_gpu():
    from topo.study.failures import analyze_failures
    c, f, _ = hpn()
    res = analyze_failures(c, f, traffic=False, kinds=("switch", "plane")).to_dict()
    rows = [r for r in res["single"] if r["kind"] in ("switch", "plane")]
    assert sum(r["count"] for r in rows if r["kind"] == "plane") == 2
    assert all(r["endpoints_isolated"] == 0 for r in rows)
