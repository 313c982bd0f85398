"""Front-end fabric at scale: the 131,072-accelerator reference with a front-end.

The reference cluster (examples/reference-131k.yaml, 16,384 HGX H100 nodes) plus ``--agents`` Arm
CPU hosts (platform grace-cpu-superchip, 8 per rack, front-end only) and a front_end section: one
400G front-end NIC per GPU node, a 3-tier clos of th5-128x400 with 3:1 leaves. Measures, in one
run: loading and validating the file (the front-end's rules and its derived cluster included), the
front-end build, the back-end build and describe of the front-end; prints the front-end's counts,
the times and the front-end build time as a ratio of the back-end's, then one JSON line.

    python benchmarks/bench_frontend.py [--agents 2048]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's topo, not an installed one


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=2048, help="front-end-only Arm CPU hosts (a multiple of 8)")
    a = ap.parse_args(argv)
    import topo
    from topo.core.inputs import parse
    from topo.model.frontend import front_end_cluster
    from topo.model.frontend_build import build as build_front_end
    d = parse((ROOT / "examples" / "reference-131k.yaml").read_text(), ".yaml", "reference-131k.yaml")
    d["node_types"].append({"name": "agent", "platform": "grace-cpu-superchip"})
    d["racks"].append({"name": "cpu-rack", "count": a.agents // 8, "nodes": {"agent": 8}, "power_limit_kw": 10})
    d["front_end"] = {"fabric": {"tiers": [{"switch": "th5-128x400", "oversubscription": 3},
                                           {"switch": "th5-128x400"}, {"switch": "th5-128x400"}]},
                      "node_types": {"hgx": {"nics": 1, "nic_gbps": 400}, "agent": {"back_end": False}}}
    t = {}
    t0 = time.perf_counter()
    c = topo.from_dict(d)
    t["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fe = build_front_end(c)
    t["front_end_build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    be = topo.build(c)
    t["back_end_build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    desc = topo.describe(fe, front_end_cluster(c))
    t["front_end_describe_s"] = time.perf_counter() - t0
    out = {"front_end_endpoints": fe.n_endpoints, "front_end_switches": [int(x) for x in fe.tier_switch_counts],
           "front_end_links": fe.n_links // 2, "back_end_endpoints": be.n_endpoints, "back_end_servers": be.n_servers,
           "front_end_network_kw": desc["bill_of_materials"]["totals"]["network_kw"],
           **{k: round(v, 3) for k, v in t.items()},
           "front_end_over_back_end_build": round(t["front_end_build_s"] / t["back_end_build_s"], 3)}
    for k, v in out.items():
        print(f"{k:<32} {v}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
