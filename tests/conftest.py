"""Shared fixtures: small clusters built from dicts (no files needed)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def cluster_dict(n_racks=4, nodes_per_rack=2, accel=8, nic_gbps=400, family="clos", tiers=None, **fabric):
    """A minimal valid cluster-file dict: `n_racks` racks of `nodes_per_rack` GPU nodes."""
    d = {
        "version": 1,
        "name": "t",
        "node_types": [{"name": "gpu", "accelerator": "H100", "accelerators": accel, "nics": accel,
                        "nic_gbps": nic_gbps, "power_busy_kw": 10.0, "power_idle_kw": 2.0,
                        "scaleup": {"size": accel}}],
        "racks": [{"name": "r", "count": n_racks, "nodes": {"gpu": nodes_per_rack}, "power_limit_kw": 100}],
        "fabric": {"family": family, **fabric},
    }
    if tiers is not None:
        d["fabric"]["tiers"] = tiers
    return copy.deepcopy(d)


def sw(radix, gbps=400, power_w=1000, cost_usd=10000):
    return {"radix": radix, "port_gbps": gbps, "power_w": power_w, "cost_usd": cost_usd}


@pytest.fixture
def small_cluster():
    from topo.model.spec import load
    return load(EXAMPLES / "small.yaml")


def no_crash(result) -> bool:
    """A CliRunner result ended by the CLI itself (an exit code), not by an exception it let escape.
    CliRunner catches escaped exceptions and never prints their traceback, so checking the output
    for "Traceback" proves nothing; the captured exception does."""
    return result.exception is None or isinstance(result.exception, SystemExit)


def refused(d, path):
    """Build cluster dict ``d``; it must be refused with an error at ``path``: that error's message."""
    from topo.core.errors import SpecError
    from topo.model.fabric import build
    from topo.model.spec import from_dict
    with pytest.raises(SpecError) as e:
        build(from_dict(d))
    errs = dict(e.value.errors)
    assert path in errs, errs
    return errs[path]


def validate_refuses(d, path, tmp_path):
    """`topo validate` on cluster dict ``d`` exits 2 naming ``path``."""
    import json
    from click.testing import CliRunner
    from topo.cli import main
    p = tmp_path / "c.json"
    p.write_text(json.dumps(d))
    res = CliRunner().invoke(main, ["validate", str(p)])
    assert res.exit_code == 2 and path in res.output and no_crash(res), res.output
