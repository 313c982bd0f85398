"""The writers' fast paths write the bytes of the plain ones: the plan's JSON text, the
conversion to JSON values, the link-loads CSV, GraphML and the fabric's node names. The
reference functions below are the earlier implementations, kept as the oracle."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import EXAMPLES, cluster_dict
from helpers.fabrics import fat_tree
from topo.core.jsonable import to_jsonable
from topo.io.exports import _combos, _loads_csv, write_graphml
from topo.io.plan import _dumps_json, dumps
from topo.model.fabric import build
from topo.model.spec import from_dict, load


def _old_to_jsonable(obj):
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return _old_to_jsonable(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): _old_to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_old_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return _old_to_jsonable(obj.item())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


class _Result:
    def to_dict(self):
        return {"b": (1, np.float32(0.5)), "a": [np.nan, -0.0]}


def _tricky():
    """Values of every kind a plan holds, and the awkward ones."""
    rng = np.random.default_rng(7)
    return {
        "plan_version": 1,
        "cluster_file": {"z": 1, "a": {"y": [3, 2], "b": "x"}, "racks": [{"nodes": {"b": 2, "a": 1}}]},
        "cluster_file_after": {"b": None, "a": []},
        "floats": [0.1, -0.0, 1e-300, 1e16, 2.5e-7, float("nan"), float("inf"), -float("inf"), 123456789.0],
        "ints": [0, -1, 2**63, True, False, None],
        "numpy": {"arr": np.arange(5), "f": np.float64("nan"), "f32": np.float32(1.1), "i": np.int16(3),
                  "b": np.bool_(True), "m": rng.random((2, 3))},
        "strings": ["a,b", 'q"uote', "line\nbreak", "tab\t", "\u00e9t\u00e9", "\x00nul", "", "😀", "\\"],
        "mixed": [1, "a", [2, [3.5, {}]], {"k": []}, None, (4, 5)],
        "tuple": (1, 2.5, "x"),
        "result": _Result(),
        "empty": {"d": {}, "l": [], "t": ()},
        "nested": {"b": {"d": 1, "c": [{"y": 1, "x": 2}]}, "a": 0},
        3: "an int key",
    }


def test_to_jsonable_gives_what_the_general_path_gives():
    for v in (_tricky(), [1.5, np.float64(2.5), float("nan")], (np.nan,), float("inf"), -0.0, "s", None, 7):
        new, old = to_jsonable(v), _old_to_jsonable(v)
        assert json.dumps(new, sort_keys=True) == json.dumps(old, sort_keys=True)
        assert repr(new) == repr(old)


def test_plan_text_is_the_json_modules():
    data = to_jsonable(_tricky())
    assert dumps(data) == _dumps_json(data)
    # the text is json.dumps(indent=1, sort_keys=True) but for the cluster files' own key order
    assert json.loads(dumps(data)) == json.loads(json.dumps(data))
    assert dumps(data).index('"z"') < dumps(data).index('"a": {')
    small = json.loads((EXAMPLES.parent / "tests" / "golden" / "small-plan.json").read_text())
    assert dumps(small) == _dumps_json(to_jsonable(small))


def test_plan_text_of_a_value_json_refuses_is_refused_as_before():
    with pytest.raises(TypeError):
        _dumps_json({"x": object()})
    with pytest.raises(TypeError):
        dumps({"x": object()})


def test_combinations_keep_negative_zero_apart():
    a = np.array([0.0, -0.0, 1.0, 0.0, -0.0, 1.0])
    b = np.array([1, 1, 1, 2, 1, 1], np.int8)
    rows, k = _combos(a, b)
    assert k.tolist() == [1, 0, 3, 2, 0, 3] and rows.tolist() == [1, 0, 3, 2]


def _fabrics():
    yield build(load(EXAMPLES / "small.yaml"))
    yield build(load(EXAMPLES / "helios-mi450-uec.yaml"))     # planes, scale-up domains
    yield fat_tree(4)
    d = cluster_dict(n_racks=6, family="rail_optimized", tiers=[{"switch": "th5-64x800"}, {"switch": "th5-64x800"}])
    yield build(from_dict(d))


def test_node_names_are_node_name_of_every_id():
    for f in _fabrics():
        assert f.node_names() == [f.node_name(i) for i in range(f.n_nodes)]


def _old_loads_csv(fabric, load):
    raw = fabric.node_names()
    src, dst, tier, cap = fabric.link_src.tolist(), fabric.link_dst.tolist(), fabric.link_tier.tolist(), fabric.link_gbps.tolist()
    ld = load.tolist()
    from topo.model.fabric import LINK_TIER_NAMES as tn
    lines = ["link,src,dst,tier,gbps,load_gbps,util"]
    lines += [f"{l},{raw[src[l]]},{raw[dst[l]]},{tn[tier[l]]},{cap[l]:g},{ld[l]:.6g},"
              + (f"{ld[l] / cap[l]:.6g}" if cap[l] > 0 else "") for l in range(fabric.n_links)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(3))
def test_link_loads_csv_is_the_per_link_one(seed):
    rng = np.random.default_rng(seed)
    for f in _fabrics():
        L = f.n_links
        # a few distinct loads (as a plan's rounded utilisations give), some -0.0, some unique
        load = rng.choice([0.0, -0.0, 12.5, 400.0, 1 / 3], L) * f.link_gbps / 400.0
        many = rng.random(L) < 0.2
        load[many] = rng.random(int(many.sum())) * 1e3
        assert _loads_csv(f, load) == _old_loads_csv(f, load)


def _old_write_graphml(fabric, path, chunk=65536):
    from xml.sax.saxutils import escape, quoteattr

    from topo.io.exports import _GRAPHML_HEAD
    from topo.model.fabric import REACH_NAMES
    names = [quoteattr(n) for n in fabric.node_names()]
    tier, plane, pod = fabric.node_tier.tolist(), fabric.node_plane.tolist(), fabric.node_pod.tolist()
    up = np.arange(0, fabric.n_links, 2, dtype=np.int64)
    u, v = fabric.link_src[up], fabric.link_dst[up]
    reach = [escape(r) for r in REACH_NAMES]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(_GRAPHML_HEAD)
        for lo in range(0, fabric.n_nodes, chunk):
            fh.write("".join(f'    <node id={names[i]}><data key="d0">{tier[i]}</data><data key="d1">{plane[i]}</data>'
                             f'<data key="d2">{pod[i]}</data></node>\n' for i in range(lo, min(lo + chunk, fabric.n_nodes))))
        gb, lt, lm, rc = fabric.link_gbps[up], fabric.link_tier[up], fabric.link_length_m[up], fabric.link_reach[up]
        for lo in range(0, up.size, chunk):
            sl = slice(lo, lo + chunk)
            rows = zip(u[sl].tolist(), v[sl].tolist(), up[sl].tolist(), gb[sl].tolist(),
                       lt[sl].tolist(), lm[sl].astype(np.float64).tolist(), rc[sl].tolist())
            fh.write("".join(f'    <edge source={names[a]} target={names[b]} id="e{l}"><data key="d3">{l}</data>'
                             f'<data key="d4">{g!r}</data><data key="d5">{t}</data><data key="d6">{m!r}</data>'
                             f'<data key="d7">{reach[r]}</data></edge>\n' for a, b, l, g, t, m, r in rows))
        fh.write("  </graph>\n</graphml>\n")


def test_graphml_is_the_per_row_one(tmp_path):
    for i, f in enumerate(_fabrics()):
        write_graphml(f, tmp_path / f"new{i}.graphml", chunk=7)
        _old_write_graphml(f, tmp_path / f"old{i}.graphml", chunk=7)
        assert (tmp_path / f"new{i}.graphml").read_bytes() == (tmp_path / f"old{i}.graphml").read_bytes()


def test_graphml_names_that_need_escaping_are_escaped(tmp_path):
    from topo.model.fabric import fabric_from_arrays
    f = fabric_from_arrays(2, np.array([0, 1]), np.array([2, 2]), 100.0, np.array([0, 0, 1], np.int8),
                           family="custom")
    f.meta["custom_names"] = ['a&"b', "c<'d>", "e\tf"]
    write_graphml(f, tmp_path / "new.graphml")
    _old_write_graphml(f, tmp_path / "old.graphml")
    assert (tmp_path / "new.graphml").read_bytes() == (tmp_path / "old.graphml").read_bytes()
    assert "&amp;" in (tmp_path / "new.graphml").read_text()
