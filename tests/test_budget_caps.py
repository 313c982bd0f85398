"""Per-tier oversubscription caps (issue 14): `topo budget --max-oversubscription leaf=1,spine=3`
and goals.max_oversubscription, honoured by `topo budget` and `topo optimize`."""
from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from topo.solve import linkbudget as B
from topo.cli.app import main
from topo.core.errors import SpecError
from topo.model.spec import load

from conftest import EXAMPLES
from helpers.budget_brute import brute, setup, splits

SMALL = EXAMPLES / "small.yaml"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _budget_json(*args):
    r = run("budget", *args, "--json", "--workers", 1, "--seed", 1)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout if hasattr(r, "stdout") else r.output)


def test_leaf_cap_on_two_tiers_makes_leaves_non_blocking():
    free = _budget_json(SMALL)
    assert free["tiers"][0]["oversubscription"] > 1 + 1e-9  # uncapped, the budget oversubscribes the leaves
    d = _budget_json(SMALL, "--max-oversubscription", "leaf=1")
    leaf, spine = d["tiers"]
    assert leaf["oversubscription"] == pytest.approx(1.0)
    assert leaf["down_ports"] == leaf["up_ports"]
    # the spine (top tier, no uplinks) is not capped: its count is the budget's choice
    assert spine["switches"] >= 1
    s = d["solver"]
    assert s["status"] == "optimal"
    assert s["max_oversubscription"] == {"source": "--max-oversubscription", "leaf": 1.0}
    assert s["space"][:len(B.SPACE_RULES)] == list(B.SPACE_RULES)
    assert any("oversubscription caps" in x and "leaf <= 1" in x for x in s["space"])
    # the same, one number: every tier with uplinks
    assert _budget_json(SMALL, "--max-oversubscription", "1")["tiers"][0]["oversubscription"] == pytest.approx(1.0)


def test_three_tier_caps_equal_the_cheapest_capped_design():
    """Brute force (test_budget_exhaustive's enumeration): the budget with leaf=1, spine=3 costs
    what the cheapest feasible design with leaf ratio <= 1 and spine ratio <= 3 does."""
    radix = (8, 8, 8)
    d, c, f, placement, demands, eff, e_per_w = setup(radix, 9, 4)
    free = B.budget(c, f, placement=placement, demands=demands, survive="none", workers=1, seed=1)
    r = B.budget(c, f, placement=placement, demands=demands, survive="none", workers=1, seed=1,
                 max_oversubscription={"leaf": 1, "spine": 3})
    assert r.solver["status"] == "optimal" and r.check["ok"]
    assert r.solver["max_oversubscription"] == {"source": "--max-oversubscription", "leaf": 1.0, "spine": 3.0}
    got = r.cost["chosen"]["total_usd"]
    assert r.tiers[0]["oversubscription"] <= 1 + 1e-9 and r.tiers[1]["oversubscription"] <= 3 + 1e-9
    # the caps bind: without them the budget picks something cheaper
    assert free.cost["chosen"]["total_usd"] < got * (1 - 1e-9)
    caps = {k: v["effective_target"] for k, v in r.utilization.items()}
    rows = brute(d, "none", "cost", caps, demands, eff, e_per_w, space=radix)

    def ratio(t):
        dd, u = next((a, b) for a, b in splits(8) if abs(a / b - t["oversubscription"]) < 1e-12)
        return dd / u

    capped = [x for x in rows if x["ok"] and ratio(x["tiers"][0]) <= 1 + 1e-9 and ratio(x["tiers"][1]) <= 3 + 1e-9]
    assert capped
    assert got == pytest.approx(min(x["cost"] for x in capped), rel=1e-9)


@pytest.mark.parametrize("value,says", [
    ("foo=2", "unknown tier"),
    ("super=2", "unknown tier"),
    ("spine=3", "top tier"),            # small.yaml has 2 tiers: its spine has no uplinks
    ("leaf=1,spine=3", "top tier"),
    ("leaf=abc", "expected a number"),
    ("abc", "expected a number"),
    ("leaf=nan", "finite"),
    ("inf", "finite"),
    ("nan", "finite"),
    ("0.5", "below 1"),
    ("leaf=0.9", "below 1"),
    ("leaf", "expected a number"),
    ("leaf=", "expected a number"),
    ("leaf=1,leaf=2", "twice"),
])
def test_bad_forms_exit_2_naming_the_option(value, says):
    r = run("budget", SMALL, "--max-oversubscription", value)
    assert r.exit_code == 2, r.output
    assert "--max-oversubscription" in r.output and says in r.output, r.output


def _small_with_goal(tmp_path, goal):
    d = yaml.safe_load(SMALL.read_text())
    d.setdefault("goals", {})["max_oversubscription"] = goal
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


@pytest.mark.parametrize("goal,says", [
    ({"leaf": 0.5}, "below 1"), ({"core": 2}, "unknown tier"), ("x", "expected a number"), (0.5, "below 1"),
    ({}, "empty"), ({"leaf": "nan"}, "finite"),
])
def test_goal_validated_with_its_path(tmp_path, goal, says):
    with pytest.raises(SpecError) as e:
        load(_small_with_goal(tmp_path, goal))
    assert any(p == "goals.max_oversubscription" and says in m for p, m in e.value.errors), e.value.errors


def test_goal_spine_cap_on_two_tiers_refused(tmp_path):
    r = run("budget", _small_with_goal(tmp_path, {"spine": 2}))
    assert r.exit_code == 2 and "goals.max_oversubscription" in r.output and "top tier" in r.output, r.output


def test_goal_used_by_budget_and_optimize(tmp_path):
    from topo.pipeline import optimize
    p = _small_with_goal(tmp_path, {"leaf": 1})
    d = _budget_json(p)
    assert d["tiers"][0]["oversubscription"] == pytest.approx(1.0)
    assert d["solver"]["max_oversubscription"]["source"] == "goals.max_oversubscription"
    # the option overrides the goal
    d2 = _budget_json(p, "--max-oversubscription", "2")
    assert d2["solver"]["max_oversubscription"] == {"source": "--max-oversubscription", "leaf": 2.0}
    assert 1 + 1e-9 < d2["tiers"][0]["oversubscription"] <= 2 + 1e-9
    plan = optimize(load(p), seed=1, workers=1, failures=False)
    assert plan["budget"]["tiers"][0]["oversubscription"] == pytest.approx(1.0)


def test_for_transport_with_a_per_tier_cap(tmp_path):
    d = _budget_json(SMALL, "--for-transport", "--max-oversubscription", "leaf=1")
    assert d["tiers"][0]["oversubscription"] == pytest.approx(1.0)
    assert d["solver"]["max_oversubscription"]["leaf"] == 1.0
