"""A seeded generator of hostile inputs: mutated cluster files, plans, custom graphs and CSVs.

Each case is (kind, file name, bytes). Kinds: ``cluster`` (a cluster file,
JSON or YAML, read by ``topo validate``), ``plan`` (read by ``topo report``),
``graph`` (an edge list or GraphML named by a custom fabric) and ``matrix`` (a
traffic-matrix CSV named by a cluster file). Mutations are structural (set a
field anywhere in the tree to a hostile value, delete, duplicate, retype) and
textual (flip, cut, insert bytes, re-encode, nest, alias bombs).
"""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import yaml

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"

HOSTILE = [
    None, True, False, 0, -1, 1, 2, 3, 7, 10 ** 12, 2 ** 31, 2 ** 63, -(2 ** 63), 10 ** 30, 1e30, 1e-300, -1e-300,
    0.5, 1.5, "", " ", "x", "0", "-1", "1e400", "1e400kW", "1e400G", "1e400GiB", "1e-300G", "NaN", "inf", "-inf",
    "Infinity", "5 furlongs", "400G", "2TiB", "25kW", "$\\undefined$", "=HYPERLINK(\"http://e\")", "+cmd|' /C calc'!A0",
    "@SUM(1)", "\t=1+1", "a\rb", "a\nb", "x,=1+1", "\x1b[31mred\x1b[0m", "<script>alert(1)</script>",
    "https://evil.example/x", "~~strike~~", "| a | b |", "日本語", "\u202eevil", "n[0-99999999999]", "n[5-2]",
    "n[0001-0004,x]", "n0000", "n[0000-0023]", "n0003", "leaf0", "/etc/passwd", ".", "..", "x" * 300,
    "x" * 70000, [], {}, [1, 2, 3], ["n0001", "n0001"], {"a": 1}, {"name": "x"}, [[[[[[]]]]]],
]


def _paths(v, prefix=()):
    """Every path into a tree of dicts and lists (the root excluded)."""
    out = []
    if isinstance(v, dict):
        for k, x in v.items():
            out.append(prefix + (k,))
            out += _paths(x, prefix + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out.append(prefix + (i,))
            out += _paths(x, prefix + (i,))
    return out


def _get_parent(tree, path):
    for p in path[:-1]:
        tree = tree[p]
    return tree


def mutate_tree(rng: random.Random, tree):
    """One to three structural mutations of a copy of ``tree``."""
    t = json.loads(json.dumps(tree))
    for _ in range(rng.randint(1, 3)):
        paths = _paths(t)
        if not paths:
            break
        path = rng.choice(paths)
        parent = _get_parent(t, path)
        op = rng.random()
        try:
            if op < 0.6:
                parent[path[-1]] = copy.deepcopy(rng.choice(HOSTILE))
            elif op < 0.72:
                if isinstance(parent, dict):
                    del parent[path[-1]]
                else:
                    parent.pop(path[-1])
            elif op < 0.82 and isinstance(parent, list):
                parent.append(copy.deepcopy(parent[path[-1]]))
            elif op < 0.9 and isinstance(parent, dict):
                parent[rng.choice(["unknown", "nodes", "name", "count", "k", "planes", "bundle"])] = \
                    copy.deepcopy(rng.choice(HOSTILE))
            else:
                v = parent[path[-1]]
                parent[path[-1]] = [v] if not isinstance(v, list) else {"v": v}
        except (KeyError, IndexError, TypeError):
            continue
    return t


def mutate_text(rng: random.Random, data: bytes) -> bytes:
    """A byte-level mutation of a serialised file."""
    op = rng.randrange(9)
    n = len(data)
    if op == 0 and n:  # flip bytes
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(n)] = rng.randrange(256)
        return bytes(b)
    if op == 1:  # cut
        return data[: rng.randrange(n + 1)]
    if op == 2:  # invalid UTF-8
        i = rng.randrange(n + 1)
        return data[:i] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00"]) + data[i:]
    if op == 3:  # another encoding
        return data.decode("utf-8", "replace").encode(rng.choice(["utf-16", "utf-32", "latin-1"]), "replace")
    if op == 4:  # deep nesting
        d = rng.choice([65, 200, 5000, 100000])
        return (b"[" * d + b"]" * d) if rng.random() < 0.5 else (b"a: " + b"[" * d + b"]" * d + b"\n")
    if op == 5:  # YAML alias bomb
        lv = rng.randint(3, 9)
        s = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in range(1, lv):
            s += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
        return (s + f"name: *a{lv - 1}\n").encode()
    if op == 6:  # huge integer
        return data.replace(b"1", b"1" + b"9" * rng.choice([20, 400, 5000]), 1)
    if op == 7:  # duplicate a line (duplicate keys)
        lines = data.split(b"\n")
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
        return b"\n".join(lines)
    return data + rng.choice([b"\n!!python/object/apply:os.system ['true']\n", b"\n: :\n", b"\t\n", b"\x1b[2J"])


def _base_clusters():
    out = []
    for name in ("small.yaml", "h100-rail-roce.yaml", "helios-mi450-uec.yaml"):
        out.append(yaml.safe_load((EXAMPLES / name).read_text()))
    small = out[0]
    custom = copy.deepcopy(small)
    custom["fabric"] = {"family": "custom", "custom": {"edge_list": "graph.txt", "link_gbps": 400}}
    out.append(custom)
    tm = copy.deepcopy(small)
    tm["traffic"] = [{"pattern": "matrix", "file": "tm.csv"}, {"pattern": "uniform", "bytes": "1GiB"}]
    out.append(tm)
    pinned = copy.deepcopy(small)
    pinned["jobs"][0]["nodes"] = ["n[0006-0007]", "n0009", "n0010", "n[0012-0013]", "n0015", "n0016"]
    pinned["jobs"][1]["pin_racks"] = ["gpu-rack"]
    out.append(pinned)
    return out


def small_edge_list() -> str:
    """An edge list for the small example: 128 GPUs + 8 CPU hosts on 8 leaves, 4 spines."""
    lines = ["# endpoints e<k> to leaves, leaves to spines"]
    n_ep = 8 * (2 * 8 + 1)
    for e in range(n_ep):
        lines.append(f"e{e} leaf{e // 17} 400")
    for leaf in range(8):
        for s in range(4):
            lines.append(f"leaf{leaf},spine{s},1600")
    return "\n".join(lines) + "\n"


def small_matrix() -> str:
    return "src,dst,bytes\nn0000-g0,n0001-g1,2GB\nn0002-g3,n0004-g0,1e6\n# comment\nn0005-g7,n0000-g0,512MiB\n"


def cases(n: int, seed: int = 12):
    """``n`` cases, deterministic for a seed: (kind, file name, bytes)."""
    rng = random.Random(seed)
    bases = _base_clusters()
    plan_text = (GOLDEN / "small-plan.json").read_bytes()
    plan = json.loads(plan_text)
    graph, matrix = small_edge_list().encode(), small_matrix().encode()
    for i in range(n):
        r = rng.random()
        if r < 0.62:
            base = rng.choice(bases)
            tree = mutate_tree(rng, base) if rng.random() < 0.75 else base
            if rng.random() < 0.5:
                suffix, data = ".yaml", yaml.dump(tree, Dumper=_DUMPER, allow_unicode=True).encode()
            else:
                suffix, data = ".json", json.dumps(tree, ensure_ascii=False).encode()
            if tree is base or rng.random() < 0.3:
                data = mutate_text(rng, data)
            yield "cluster", f"c{i}{suffix}", data
        elif r < 0.77:
            tree = mutate_tree(rng, plan)
            data = json.dumps(tree).encode()
            if rng.random() < 0.3:
                data = mutate_text(rng, data)
            yield "plan", f"p{i}.json", data
        elif r < 0.89:
            yield "graph", "graph.txt", mutate_text(rng, graph) if rng.random() < 0.8 else graph
        else:
            if rng.random() < 0.3:
                data = b"src,dst,bytes\n" + b"n0000-g0," + b"x" * 140000 + b",1\n"
            else:
                data = mutate_text(rng, matrix)
            yield "matrix", "tm.csv", data
