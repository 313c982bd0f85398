"""Hardening regressions: each test here failed on the main of issue 12's filing."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from topo.fabric import build
from topo.placement import place
from topo.spec import from_dict
from topo.traffic import in_order_placement

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LISTED = ["n0006", "n0012", "n0007", "n0013", "n0009", "n0015", "n0010", "n0016"]


def small(**change) -> dict:
    d = yaml.safe_load((EXAMPLES / "small.yaml").read_text())
    d.update(copy.deepcopy(change))
    return d


def _servers_in_rank_order(fabric, eps) -> list[str]:
    out = []
    for s in np.asarray(fabric.ep_server)[eps]:
        name = fabric.server_name(int(s))
        if not out or out[-1] != name:
            out.append(name)
    return out


def _pinned_cluster():
    d = small()
    d["jobs"][0]["nodes"] = list(LISTED)
    return from_dict(d)


def test_explicit_nodes_set_the_rank_order_in_order_placement():
    c = _pinned_cluster()
    f = build(c)
    eps = in_order_placement(c, f)["llm-a"]
    assert _servers_in_rank_order(f, eps) == LISTED


def test_explicit_nodes_set_the_rank_order_in_placement():
    c = _pinned_cluster()
    f = build(c)
    res = place(c, f, time_limit=2.0, seed=7, workers=1)
    eps = np.asarray(res.assignment["llm-a"])
    assert _servers_in_rank_order(f, eps) == LISTED
    # and the local accelerator order inside each node is kept (TP groups stay whole)
    assert np.all(np.diff(np.asarray(f.ep_local)[eps].reshape(len(LISTED), -1), axis=1) == 1)


def test_explicit_node_listed_twice_is_refused():
    from topo.errors import SpecError
    d = small()
    d["jobs"][0]["nodes"] = LISTED[:7] + [LISTED[0]]
    c = from_dict(d)
    f = build(c)
    with pytest.raises(SpecError) as e:
        in_order_placement(c, f)
    assert "jobs[0].nodes" in str(e.value)
