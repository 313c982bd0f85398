"""Serving deployments under single failures: replicas lost and the saturating rate after each failure."""
import copy
import json
from collections import Counter

import pytest
from click.testing import CliRunner

from tests.conftest import no_crash
from helpers.serving_cases import TINY, _cluster

# 8 single-accelerator nodes, two per rack, one rack per leaf, one spine; 2 prefill + 1 decode replicas
D = copy.deepcopy(TINY)
D["racks"] = [{"name": "r", "count": 4, "nodes": {"g1": 2}}, {"name": "c", "count": 1, "nodes": {"cpu": 2}}]
D["fabric"]["tiers"][0]["ports"] = {"down": {"ports": 2, "gbps": 400}, "up": {"ports": 2, "gbps": 400}}
D["serving"]["deployments"][0]["prefill"]["replicas"] = 2
# every request's KV (1000 x 327,680 B) arrives at the one decode replica's 400 Gb/s NIC:
# 10 req/s are 26.2144 Gb/s, so the NIC saturates at 400 / 26.2144 x 10 req/s
SAT = 400 / (10 * 1000 * 327_680 * 8 / 1e9) * 10


def _by_name(d):
    return {r["name"]: r["serving"]["d"] for r in d["single"]}


def test_replicas_lost_and_saturating_rate_by_hand():
    import topo
    from topo.solve.serving_place import place_serving
    c = _cluster(D)
    d = topo.analyze_failures(c).to_dict()
    h = d["serving"]["deployments"]["d"]
    assert h["saturating_requests_per_s"] == pytest.approx(SAT) and h["replicas"] == {"prefill": 2, "decode": 1}
    assert d["serving"]["placement"]["status"] == "OPTIMAL"
    rows = _by_name(d)
    f = topo.build(c)
    pl = place_serving(c, f)["assignment"]
    dec = f.node_name(int(pl[("d", "decode")][0, 0]))
    pre = [f.node_name(int(e)) for e in pl[("d", "prefill")][:, 0]]
    # the decode replica's NIC: nothing left to decode with
    r = rows.get(f"{dec}-nic")
    assert r["replicas_lost"] == {"prefill": 0, "decode": 1} and r["saturating_requests_per_s"] == 0
    assert not r["serves_stated_rate"] and r["limited_by"] == "no replica left"
    # a prefill replica's NIC (either, whichever represents the class): the other takes every request,
    # and the decode NIC still carries all the KV, so the rate is unchanged
    r = next(rows[f"{p}-nic"] for p in pre if f"{p}-nic" in rows)
    assert r["replicas_lost"] == {"prefill": 1, "decode": 0}
    assert r["saturating_requests_per_s"] == pytest.approx(SAT) and r["serves_stated_rate"]
    # the single spine: the prefill replica under another leaf cannot reach the decode replica
    r = rows["spine0"]
    assert r["replicas_lost"] == {"prefill": 0, "decode": 0} and r["unreachable_gbps"] > 0
    assert r["saturating_requests_per_s"] == 0 and not r["serves_stated_rate"]


def test_grouped_equals_exhaustive_for_serving():
    """The symmetry classes carry the serving pools and loads: summed over members, the grouped sweep's
    serving figures equal the exhaustive sweep's."""
    import topo
    c = _cluster(D)

    def tally(d):
        out = Counter()
        for r in d["single"]:
            out[(r["kind"], json.dumps(r["serving"], sort_keys=True))] += r["count"]
        return out
    g = topo.analyze_failures(c).to_dict()
    e = topo.analyze_failures(c, group=False).to_dict()
    assert len(g["single"]) < len(e["single"])
    assert tally(g) == tally(e)


def test_example_prefill_loss_halves_the_rate(tmp_path):
    """examples/serving-disagg.yaml: llama70b saturates on the prefill replicas' scale-up all-reduces, so
    losing one of its 2 prefill replicas halves the rate (every flow scales with the requests a replica
    takes); the healthy rate is `topo serve`'s rate at the target / the target. The CLI shows both."""
    import topo
    from topo.cli import main
    c = topo.load("examples/serving-disagg.yaml")
    d = topo.analyze_failures(c, traffic=False).to_dict()
    h = d["serving"]["deployments"]["llama70b"]["saturating_requests_per_s"]
    lost = [r["serving"]["llama70b"] for r in d["single"]
            if r["serving"]["llama70b"]["replicas_lost"] == {"prefill": 1, "decode": 0} and r["kind"] == "nic"]
    assert lost and all(x["saturating_requests_per_s"] == pytest.approx(h / 2) for x in lost)
    s = topo.serving(c)
    row = next(x for x in s["deployments"] if x["name"] == "llama70b")
    assert h == pytest.approx(row["max_requests_per_s_at_target"] / s["target_utilization"])
    res = CliRunner().invoke(main, ["failures", "examples/serving-disagg.yaml", "--no-traffic"])
    assert res.exit_code == 0 and no_crash(res), res.output
    assert "serving deployments" in res.output and "NOT SERVED" in res.output and "-1 prefill" in res.output
    res = CliRunner().invoke(main, ["failures", "examples/serving-disagg.yaml", "--no-traffic", "--no-serving", "--json"])
    assert res.exit_code == 0 and "serving" not in json.loads(res.output)
