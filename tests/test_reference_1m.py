"""The 1,048,576-accelerator reference example."""
from __future__ import annotations


def test_million_accelerator_reference_states_its_switch_as_tomahawk6_with_user_figures():
    """examples/reference-1m.yaml: 1,048,576 accelerators on a 102.4T switch in one of Tomahawk 6's
    published port configurations; its power and price are marked as the user's figures. (Built and
    optimised by benchmarks/bench_optimize.py --size 1M, too large for the suite.)"""
    from conftest import EXAMPLES
    from topo.model import catalog
    from topo.model.spec import load
    c = load(EXAMPLES / "reference-1m.yaml")
    assert c.counts()["accelerators"] == 1_048_576
    sw = c.file.catalog.switches["th6-256x400"]
    assert (sw.radix, sw.port_gbps) in catalog.SWITCH_SILICON["tomahawk6"]["port_configs"]
    assert "user's figures" in sw.source and "unverified" in sw.source
    # a 3-tier fat tree of radix k holds k^3/4 endpoint ports: 256 does, 128 (its 800G mode) does not
    assert 128 ** 3 // 4 < 1_048_576 <= 256 ** 3 // 4
