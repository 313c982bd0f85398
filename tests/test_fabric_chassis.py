"""Chassis switches populated in part (fabric.tiers[i].line_cards / ports_populated): the tier's
radix is the ports populated, and its power and price are the full chassis less the empty slots'
cards, from per-card figures the switch states (none are invented). The chassis figures below are
the test's own, not hardware data."""
from __future__ import annotations


import numpy as np
import pytest

from topo.routing.describe import describe
from topo.core.errors import SpecError
from topo.model.fabric import build
from topo.model.spec import from_dict

from conftest import cluster_dict, sw, refused, validate_refuses

FULL_W, FULL_USD, CARD_W, CARD_USD = 16000.0, 900000.0, 700.0, 40000.0


def chassis(per_card=True, ports_per_card=36):
    lc = {"slots": 16, "ports_per_card": ports_per_card}
    if per_card:
        lc.update(power_w_per_card=CARD_W, cost_usd_per_card=CARD_USD)
    return {"radix": 16 * ports_per_card, "port_gbps": 400, "power_w": FULL_W, "cost_usd": FULL_USD, "ru": 30,
            "line_cards": lc}


def spine_chassis(tier, per_card=True, n_racks=16, **fab):
    d = cluster_dict(n_racks=n_racks, nodes_per_rack=2, accel=8,
                     tiers=[{"switch": sw(64)}, dict({"switch": "chassis"}, **tier)], **fab)
    d["catalog"] = {"switches": {"chassis": chassis(per_card)}}
    return d


@pytest.mark.parametrize("tier,cards,ports", [({"line_cards": 4}, 4, 144), ({"ports_populated": 100}, 3, 100),
                                              ({"line_cards": 16}, 16, 576)])
def test_partly_populated_spine(tier, cards, ports):
    c = from_dict(spine_chassis(tier))
    f = build(c)
    sp = np.flatnonzero(f.node_tier == 2)
    # 8 leaves x 32 uplinks = 256 links over spines of `ports` ports each
    dn = np.bincount(f.link_dst[(f.link_tier == 1) & ((np.arange(f.n_links) & 1) == 0)], minlength=f.n_nodes)[sp]
    assert dn.sum() == 256 and (dn <= ports).all()
    assert sp.size == f.tier_switch_counts[1]
    info = describe(f, c)
    row = info["bill_of_materials"]["switches"][1]
    assert row["watts_each"] == pytest.approx(FULL_W - (16 - cards) * CARD_W)
    assert row["cost_each_usd"] == pytest.approx(FULL_USD - (16 - cards) * CARD_USD)
    assert row["count"] == sp.size
    assert row["model"] == f"chassis ({cards}/16 line cards)"
    st = next(x for x in info["structure"]["stated"] if x["what"] == "spine chassis")
    assert f"{ports} ports" in st["rule"]
    # the leaf-spine bundle that fits: largest b dividing 32 with 8 leaves x b <= ports
    b = max(x for x in (1, 2, 4, 8, 16, 32) if 8 * x <= ports)
    assert sp.size == 32 // b


def test_partly_populated_radix_limits_the_fabric():
    # 64 racks: 32 leaves x 1 link = 32 spine ports at least; one 36-port card holds them, so the
    # spine count follows the bundle that fits one card
    d = spine_chassis({"line_cards": 1}, n_racks=64)
    f = build(from_dict(d))
    sp = np.flatnonzero(f.node_tier == 2)
    dn = np.bincount(f.link_dst[(f.link_tier == 1) & ((np.arange(f.n_links) & 1) == 0)], minlength=f.n_nodes)[sp]
    assert (dn <= 36).all() and dn.sum() == 32 * 32


@pytest.mark.parametrize("d,path,why", [
    (spine_chassis({"line_cards": 4}, per_card=False), "fabric.tiers[1].line_cards", "does not invent"),
    (spine_chassis({"line_cards": 17}), "fabric.tiers[1].line_cards", "do not fit"),
    (spine_chassis({"line_cards": 4, "ports_populated": 100}), "fabric.tiers[1].ports_populated", "not both"),
    (spine_chassis({"ports_populated": 1}), "fabric.tiers[1].ports_populated", "at least 2"),
])
def test_refused(d, path, why, tmp_path):
    assert why in refused(d, path)
    validate_refuses(d, path, tmp_path)


def test_a_switch_without_line_cards_and_inconsistent_cards_are_refused():
    d = cluster_dict(n_racks=4, nodes_per_rack=2, accel=8,
                     tiers=[{"switch": sw(64)}, {"switch": "deep-buffer-576x400", "line_cards": 4}])
    assert "states no line cards" in refused(d, "fabric.tiers[1].line_cards")
    d = spine_chassis({"line_cards": 4})
    d["catalog"]["switches"]["chassis"]["line_cards"]["ports_per_card"] = 30
    assert "not the radix" in refused(d, "catalog.switches.chassis")
    d = spine_chassis({"line_cards": 4})
    d["catalog"]["switches"]["chassis"]["line_cards"]["power_w_per_card"] = 2000
    assert "exceed" in refused(d, "catalog.switches.chassis")


def test_budget_refuses_a_partly_populated_chassis(monkeypatch):
    from topo.solve import linkbudget as B
    d = spine_chassis({"line_cards": 4})
    d["transport"] = {"protocol": "ideal"}
    called = []
    monkeypatch.setattr(B, "solve_cp", lambda *a, **k: called.append(1))
    with pytest.raises(SpecError) as e:
        B.budget(from_dict(d))
    assert "fabric.tiers[1].line_cards" in dict(e.value.errors) and not called
