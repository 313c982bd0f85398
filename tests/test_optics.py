"""Optic parts and prices: LPO replaces a DSP class only where its reach covers the class, and every
price is the 800G figure scaled by link speed."""
from __future__ import annotations

import copy

import pytest
import yaml

import topo
from conftest import EXAMPLES
from topo.model.catalog import OPTIC_SPEED_SCALE, optic_part, optic_scale
from topo.routing.describe import bill_of_materials


def _small(**catalog_optics):
    d = yaml.safe_load((EXAMPLES / "small.yaml").read_text())
    d = copy.deepcopy(d)
    d.setdefault("costs", {})["allow_lpo"] = True
    if catalog_optics:
        d.setdefault("catalog", {}).setdefault("optics", {}).update(catalog_optics)
    return topo.from_dict(d, base_dir=str(EXAMPLES))


def test_lpo_replaces_only_the_classes_its_reach_covers():
    c = _small()
    parts = {o["reach"]: o["part"] for o in bill_of_materials(topo.build(c), c)["optics"]}
    assert parts["mmf"] == "lpo" and parts["dac"] == "dac" and parts["aec"] == "aec"
    # an LPO part with 30 m of reach no longer covers the 50 m multimode class
    short = dict(c.optics["lpo"].model_dump())
    short["max_m"] = 30.0
    c2 = _small(lpo=short)
    parts2 = {o["reach"]: o["part"] for o in bill_of_materials(topo.build(c2), c2)["optics"]}
    assert parts2["mmf"] == "mmf"
    assert optic_part(c.optics, "smf_dr", True) == "lpo"       # 500 m class, 500 m LPO
    assert optic_part(c.optics, "smf_fr", True) == "smf_fr"    # 2 km is beyond LPO's reach
    assert optic_part(c.optics, "mmf", False) == "mmf"


@pytest.mark.parametrize("gbps,scale", [(800, 1.0), (400, 0.6), (200, 0.4), (100, 0.25), (1600, 1.6),
                                        (300, 0.4), (1200, 1.0)])
def test_optic_scale_is_the_nearest_speed_ties_to_the_slower(gbps, scale):
    assert optic_scale(gbps) == scale
    assert scale in OPTIC_SPEED_SCALE.values()


def test_bill_of_materials_prices_each_link_at_its_speed():
    c = _small()
    for o in bill_of_materials(topo.build(c), c)["optics"]:
        part = c.optics[o["part"]]
        assert o["cost_each_usd"] == pytest.approx(part.cost_usd * optic_scale(o["gbps"]))
        assert o["watts_each"] == pytest.approx(part.watts * optic_scale(o["gbps"]))
        assert o["units"] == o["links"] * part.ends


def test_describe_flags_the_unverified_catalog_figures_in_use():
    from topo.model import catalog
    c = _small()
    uv = {(x["kind"], x["name"]): x["fields"] for x in topo.describe(topo.build(c), c)["unverified_figures"]}
    switch = c.tiers[0].switch_name
    assert uv[("switch", switch)] == sorted(catalog.SWITCHES[switch]["unverified"])
    assert ("optic", "lpo") in uv or ("optic", "mmf") not in uv     # mmf links are LPO parts here
    # a figure the file states itself is no longer the catalog's
    d = yaml.safe_load((EXAMPLES / "small.yaml").read_text())
    d.setdefault("catalog", {}).setdefault("switches", {})[switch] = c.switches[switch].model_dump()
    c2 = topo.from_dict(d, base_dir=str(EXAMPLES))
    uv2 = {(x["kind"], x["name"]) for x in topo.describe(topo.build(c2), c2)["unverified_figures"]}
    assert ("switch", switch) not in uv2
    for x in topo.describe(topo.build(c), c)["unverified_figures"]:
        assert x["fields"] and x["kind"] in ("platform", "accelerator", "switch", "optic")
