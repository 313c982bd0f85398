"""The public Python API named in README.md resolves and works end to end on a small cluster."""
from __future__ import annotations

import numpy as np

import topo
from conftest import EXAMPLES


def test_public_names_resolve():
    """Each public name is what README says it is: a class, a function of topo's, or the version."""
    import inspect
    import re
    for name in topo.__all__:
        obj = getattr(topo, name)
        if name == "__version__":
            assert isinstance(obj, str) and re.match(r"\d+\.\d+", obj), obj
        elif name[0].isupper():
            assert inspect.isclass(obj) and obj.__name__ == name, name
        else:
            assert inspect.isfunction(obj) and obj.__module__.startswith("topo.") and obj.__name__ == name, name


def test_library_round_trip(tmp_path):
    c = topo.load(EXAMPLES / "small.yaml")
    f = topo.build(c)
    assert isinstance(f, topo.Fabric) and f.n_endpoints == 136
    assert f.indptr.dtype == np.int64 and f.link_gbps.dtype == np.float64
    d = topo.describe(f, c)
    assert d["accelerators"] == 128
    p = topo.place(c, f, time_limit=5, seed=1, workers=1)
    assert set(p.assignment) == {j.name for j in c.jobs}
    a = topo.analyze(c, f, placement=p.assignment, seed=1)
    assert {t["tier"] for t in a.to_dict()["tiers"]} >= {"endpoint-leaf", "leaf-spine"}
    b = topo.budget(c, f, placement=p.assignment, time_limit=5, seed=1, workers=1)
    assert b.to_dict()["solver"]["status"] == "optimal"
    g = tmp_path / "f.graphml"
    topo.write_graphml(f, g)
    assert g.stat().st_size > 0
    nxg = f.to_networkx()
    assert nxg.number_of_edges() == f.n_links // 2


def test_optimize_save_and_load_plan(tmp_path):
    c = topo.load(EXAMPLES / "small.yaml")
    plan = topo.optimize(c, seed=7, workers=1, failures=False)
    written = topo.save(plan, tmp_path / "out")
    assert {"plan.json", "report.html", "report.md", "exports/topology.yaml"} <= set(written)
    back = topo.load_plan(tmp_path / "out" / "plan.json")
    assert back["placement"]["assignment"] == plan["placement"]["assignment"]
    # an existing directory is kept without force, replaced with it
    import pytest
    with pytest.raises(topo.SpecError):
        topo.save(plan, tmp_path / "out")
    assert topo.save(plan, tmp_path / "out", force=True) == written
