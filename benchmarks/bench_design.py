"""Design search at scale: the 131,072-accelerator reference (examples/reference-131k.yaml).

Runs topo.solve.design over the families, tier counts and planes the file allows and the switch
models named (default: the file's own), every candidate sized by the link budget and its jobs
routed under the file's transport, on a local process pool of ``--workers`` processes. Measures
in one run: wall time, peak memory (this process and its workers), the candidates sized, pruned
by port count, pruned by bound, infeasible and not finished within the time limit, and the front
(``--no-prune``: every candidate the port counts allow is sized, for the same front). Exits 1 unless the
whole search takes under 10 minutes and 8 GB (the targets; measured, never asserted in tests).
Prints a table, then one JSON line with the figures.

    python benchmarks/bench_design.py [--workers 2] [--switches catalog] [--tiers 1,2,3] [--no-prune]
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's topo, not an installed one
TARGET_S = 600.0
TARGET_GB = 8.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cluster", default=str(ROOT / "examples" / "reference-131k.yaml"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--switches", default=None)
    ap.add_argument("--families", default=None)
    ap.add_argument("--tiers", default="1,2,3")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-prune", action="store_true")
    a = ap.parse_args(argv)

    from topo.model.spec import load
    from topo.solve.design import design

    t0 = time.perf_counter()
    c = load(a.cluster)
    with cf.ProcessPoolExecutor(max_workers=a.workers) as ex:
        r = design(c, families=a.families, switches=a.switches, tiers=tuple(int(x) for x in a.tiers.split(",")),
                   seed=a.seed, time_limit=a.time_limit, executor=ex, prune=not a.no_prune)
    wall = time.perf_counter() - t0
    self_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 ** 2
    child_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0 ** 2
    d = r.to_dict()
    print(f"{d['cluster']}: {d['counts']['candidates']} candidates in {wall:.1f} s "
          f"(peak {self_gb:.2f} GB here, {child_gb:.2f} GB in the largest worker)")
    for x in d["candidates"]:
        fig = (f"${x['total_usd']:,.0f}  {x['network_kw']:,.0f} kW  jobs {x['job_time_s']:.4g} s  "
               f"p95 {x['p95_penalty']:.3f}  headroom {x['headroom']:.3f}" if "total_usd" in x else x.get("reason", ""))
        print(f"  {x['id']:<48} {x['status']:<10} {'front' if x.get('on_front') else '':<6} {fig[:140]}  "
              f"{x.get('seconds', 0.0):.1f} s")
    print(f"counts {d['counts']}; chosen {d['chosen']}")
    ok = wall < TARGET_S and max(self_gb, child_gb) < TARGET_GB
    print(json.dumps({"wall_s": wall, "peak_gb_main": self_gb, "peak_gb_worker": child_gb, "counts": d["counts"],
                      "front": d["front"], "chosen": d["chosen"], "within_target": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
