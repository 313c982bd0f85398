"""The transport search routes the fabric as given once for all its targets, with the result each
target routing it itself gives."""
from __future__ import annotations

import yaml

from conftest import EXAMPLES
from helpers.budget_fidelity import without_timings
from topo.model.fabric import build
from topo.model.spec import from_dict
from topo.solve import budget_check
from topo.solve import linkbudget as B
from topo.traffic.demand import in_order_placement


def test_the_fabric_as_given_is_routed_once_for_every_target(monkeypatch):
    d = yaml.safe_load((EXAMPLES / "small.yaml").read_text())
    d["transport"]["qps_per_connection"] = 2     # hashing collisions: the search tries several targets
    d.pop("busy_nodes", None)
    c = from_dict(d, base_dir=str(EXAMPLES))
    f = build(c)
    pl = in_order_placement(c, f)
    given = []
    real = budget_check.routed_peaks
    monkeypatch.setattr(budget_check, "routed_peaks",
                        lambda fab, *a, **k: (given.append(1) if fab is f else None) or real(fab, *a, **k))
    shared = B.budget_for_transport(c, f, placement=pl, max_slowdown=1.05, seed=7)
    steps = len(shared.transport_check["tried"])
    assert steps >= 2 and len(given) == 1
    given.clear()
    real_before = B._shared_before
    monkeypatch.setattr(B, "_shared_before", lambda _s, *a: real_before(None, *a))   # each target its own
    own = B.budget_for_transport(c, f, placement=pl, max_slowdown=1.05, seed=7)
    assert len(given) == len(own.transport_check["tried"]) == steps
    assert without_timings(shared.to_dict()) == without_timings(own.to_dict())
