"""A tiny serving cluster (8 single-accelerator nodes, 2 CPU hosts, one 2-tier Clos) and the
Llama-3-70B shape, shared by the serving tests."""
from __future__ import annotations

LLAMA70B = {"layers": 80, "hidden_size": 8192, "attention_heads": 64, "kv_heads": 8, "head_dim": 128}


TINY = {
    "name": "tiny-serve",
    "node_types": [{"name": "g1", "accelerator": "H100", "accelerators": 1, "nics": 1, "nic_gbps": 400,
                    "power_busy_kw": 1.5, "scaleup": {"size": 1}},
                   {"name": "cpu", "platform": "cpu-host"}],
    "racks": [{"name": "r", "count": 2, "nodes": {"g1": 4, "cpu": 1}}],
    "fabric": {"tiers": [{"switch": "th4-64x400"}, {"switch": "th4-64x400"}]},
    "transport": {"protocol": "ideal"},
    "serving": {"deployments": [{
        "name": "d", "model": dict(LLAMA70B),
        "load": {"requests_per_s": 10, "prompt_tokens": 1000, "output_tokens": 100},
        "prefill": {"replicas": 1}, "decode": {"replicas": 1}}]},
}


def _cluster(d):
    from topo.model.spec import from_dict
    return from_dict(d)


def serve_json_compiled_and_pure(cluster_path, *args) -> tuple[dict, dict]:
    """`topo serve CLUSTER --json ARGS` run in a fresh process with the compiled kernels and again with
    TOPO_PURE_PYTHON=1: the two JSON documents (compiled, pure), each run required to exit 0."""
    import json
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root)
    cmd = [sys.executable, "-m", "topo", "serve", str(cluster_path), "--json", *args]
    out = []
    for pure in ("0", "1"):
        env["TOPO_PURE_PYTHON"] = pure
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root, timeout=600)
        assert r.returncode == 0, r.stderr
        out.append(json.loads(r.stdout))
    return out[0], out[1]
