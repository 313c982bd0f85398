"""Names are text in every output: CSV, Markdown, HTML, figures, shell, Slurm/Kueue/GraphML, terminal.

A copy of examples/small.yaml whose cluster, job, node type and rack names are
hostile (formula injection, markup, mathtext, escape sequences, URLs, bidi
overrides, line breaks, 200+ characters) goes through the whole `topo
optimize` command once; every file it writes and its terminal output are
checked. Smaller tests drive each renderer and the helpers in topo.core.textsafe.
"""
from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import topo
import topo.io.exports as ex
from topo.io import report as rp
from topo.cli.app import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

JOB_NAMES = [
    '=HYPERLINK("https://evil.example/x","click")$\\undefined$',
    "+cmd|' /C calc'!A0 $\\undefined$",
    "@SUM(1+1) ~~strike~~ | table | $x^2$",
    "-2+3 \x1b[31mred\x1b]0;title\x07",
    "\t=1+1 a\rb\nc",
    "x,=1+1 <script>alert(1)</script> \"'><img src=x onerror=1>",
    "\u202e日本語 " + "L" * 120,    # cluster files cap names at 128 characters (topo.core.limits.MAX_NAME_LEN)
]
LONG = "=L" + "\u202e" + "L" * 200 + "\x1b[0m"   # plans carry longer names; renderers take them
NODE_TYPES = ["gpu$\\undefined$<b>bold</b>", "=cpu|~~x~~"]
RACK = "@rack https://evil.example/r | t |\x1b[1m"
CLUSTER = "- cl$x^2$ <script>alert(1)</script> ~~s~~ https://evil.example/x www.evil.example a@evil.example " \
          "\x1b[31m\u202e|#*_`[y](z)"
ALL_NAMES = JOB_NAMES + NODE_TYPES + [RACK, CLUSTER]
# pieces of the names that would be markup, formulas, links or control sequences if written raw
RAW_PIECES = ["<script", "<img", "<b>", "~~", "$x^2$", "$\\undefined$", "| table |", "| t |", "[y](z)",
              "https://", "www.evil", "a@evil", "\x1b", "\x07", "\u202e", "\r"]
FORMULA = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")


def hostile_yaml(path: Path) -> Path:
    d = yaml.safe_load((EXAMPLES / "small.yaml").read_text())
    d["name"] = CLUSTER
    gpu, cpu = NODE_TYPES
    d["node_types"][0]["name"], d["node_types"][1]["name"] = gpu, cpu
    d["racks"][0]["name"] = RACK
    d["racks"][0]["nodes"] = {gpu: 2, cpu: 1}
    d["jobs"] = [{"name": n, "accelerators": 16, "tp": 8,
                  "collectives": [{"op": "allreduce", "group": "dp", "bytes": "1GiB"}]} for n in JOB_NAMES]
    d["goals"]["time_limit_s"] = 2
    path.write_text(yaml.safe_dump(d, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """`topo optimize` on the hostile cluster, in-process: (output dir, terminal output)."""
    tmp = tmp_path_factory.mktemp("hostile")
    cluster = hostile_yaml(tmp / "hostile.yaml")
    out = tmp / "out"
    r = CliRunner().invoke(main, ["optimize", str(cluster), "-o", str(out), "--no-failures", "--time-limit", "2",
                                  "--seed", "7", "--workers", "1"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out, r.output


def raw(path: Path) -> str:
    """A file's text exactly as written (no newline translation)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def is_guarded(cell: str) -> bool:
    """No spreadsheet formula: the cell does not start with a formula character, or is a number."""
    return not cell.startswith(FORMULA) or bool(NUMBER.match(cell))


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def check_csv(text: str) -> list[list[str]]:
    rows = read_csv(text)
    assert rows and all(len(r) == len(rows[0]) for r in rows), "a row splits or has extra fields"
    bad = [c for r in rows for c in r if not is_guarded(c)]
    assert not bad, f"cells a spreadsheet would run as formulas: {bad[:3]}"
    return rows


def unguard(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA) else cell


# --- the whole pipeline --------------------------------------------------------------------------
def test_optimize_writes_every_output_and_csvs_are_guarded(run):
    out, _ = run
    csvs = sorted(out.rglob("*.csv"))
    assert {p.name for p in csvs} >= {"rank-map.csv", "link-loads.csv"}
    for p in csvs:
        check_csv(raw(p))
    rows = check_csv(raw(out / "exports" / "rank-map.csv"))
    assert rows[0] == ["job", "rank", "node", "accelerator"]
    # every job name comes back whole (line breaks and commas included) once the guard is dropped
    assert {unguard(r[0]) for r in rows[1:]} == set(JOB_NAMES)
    assert sum(1 for r in rows[1:]) == 16 * len(JOB_NAMES)


def md_to_html(md: str) -> str:
    from markdown_it import MarkdownIt
    return MarkdownIt("commonmark").enable("table").enable("strikethrough").render(md)


class Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Tags:
    t = Tags()
    t.feed(html)
    return t


def test_report_md_holds_names_as_text(run):
    out, _ = run
    md = raw(out / "report.md")
    for piece in RAW_PIECES:
        assert piece not in md, f"{piece!r} from a name is raw in report.md"
    # no math: every '$' is escaped but a price's ('$' after a space and before a digit)
    assert not re.search(r"(?<!\\)\$(?!\d)", md)
    # rendered by a CommonMark renderer with GFM tables and strikethrough: no markup from names
    html = md_to_html(md)
    t = parse(html)
    assert set(t.tags) <= {"h1", "h2", "p", "ul", "li", "strong", "em", "img", "table", "thead", "tbody", "tr", "th",
                           "td", "hr"}, sorted(set(t.tags))
    assert all(v.startswith("report-images/") for tag, k, v in t.attrs if k == "src")
    assert t.tags.count("ul") == 1  # the summary bullets; the cluster name starting with "- " is no list
    text = "".join(t.text)
    assert '=HYPERLINK("https\\://evil.example/x","click")$\\undefined$' not in text  # (escaped ':' is shown)
    assert '=HYPERLINK("https://evil.example/x","click")$\\undefined$' in text
    assert "x,=1+1 <script>alert(1)</script> \"'><img src=x onerror=1>" in text
    assert "@SUM(1+1) ~~strike~~ | table | $x^2$" in text
    assert "- cl$x^2$ <script>" in text
    # table rows keep their cell count whatever the names hold
    for block in re.findall(r"((?:^\|.*\|\n)+)", md, re.M):
        rows = [r for r in block.splitlines() if r.strip()]
        n = len(re.findall(r"(?<!\\)\|", rows[0]))
        assert all(len(re.findall(r"(?<!\\)\|", r)) == n for r in rows), rows[:3]


def test_report_html_holds_names_as_text(run):
    out, _ = run
    html = raw(out / "report.html")
    t = parse(html)
    assert "script" not in t.tags and "img" not in t.tags and "b" not in t.tags
    assert not [k for _, k, _ in t.attrs if k.startswith("on")]
    for piece in ("<script", "<img", "<b>", "\x1b", "\x07", "\u202e", "\r"):
        assert piece not in html
    text = "".join(t.text)
    assert "x,=1+1 <script>alert(1)</script> \"'><img src=x onerror=1>" in text
    assert "-2+3 \\x1b[31mred\\x1b]0;title\\x07" in text   # escape sequences shown, not sent
    assert "\\u202e日本語 " + "L" * 120 in text
    # the figures' text (inline SVG) holds the names literally, '$' included
    import html as htmllib
    svg_text = htmllib.unescape("".join(re.findall(r"<text[^>]*>(.*?)</text>", html, re.S)))
    assert "+cmd|' /C calc'!A0 $\\undefined$" in svg_text


def test_figures_render_with_mathtext_in_names(run):
    out, _ = run
    pngs = sorted((out / "report-images").glob("*.png"))
    assert {p.name for p in pngs} >= {"fig-transport.png", "fig-power.png", "fig-tiers.png"}
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)


def test_terminal_output_has_no_control_characters(run):
    _, text = run
    for raw in ("\x1b", "\x07", "\u202e", "\r", "\t"):
        assert raw not in text
    assert "-2+3 \\x1b[31mred\\x1b]0;title\\x07" in text
    assert "\\t=1+1 a\\rb\\nc" in text


def test_describe_output_has_no_control_characters(tmp_path):
    r = CliRunner().invoke(main, ["describe", str(hostile_yaml(tmp_path / "h.yaml"))], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.output and "\u202e" not in r.output
    assert "\\x1b[31m\\u202e|#*_`[y](z)" in r.output


def test_exports_write_names_in_their_own_syntax(run):
    out, _ = run
    conf = raw(out / "exports" / "slurm-jobs.conf")
    jobs = re.findall(r"^JobName=(\S+) Nodes=\S+ Accelerators=\d+$", conf, re.M)
    assert len(jobs) == len(JOB_NAMES) and all(re.fullmatch(r"[\w.\-]+", j) for j in jobs)
    for name in ("topology-tree.conf", "topology-block.conf", "topology.yaml", "kueue-topology.yaml",
                 "node-labels.yaml", "node-labels.sh", "slurm-jobs.conf", "astra-sim-network.yml"):
        text = raw(out / "exports" / name)
        assert "\x1b" not in text and "\r" not in text and "\u202e" not in text, name
    for name in ("topology.yaml", "kueue-topology.yaml", "node-labels.yaml", "astra-sim-network.yml"):
        docs = list(yaml.safe_load_all((out / "exports" / name).read_text(encoding="utf-8")))
        assert docs, name
    topo_doc = yaml.safe_load((out / "exports" / "kueue-topology.yaml").read_text(encoding="utf-8"))
    from topo.core import textsafe as ts
    assert ts.dns_subdomain_ok(topo_doc["metadata"]["name"])
    sh = (out / "exports" / "node-labels.sh").read_text(encoding="utf-8")
    r = subprocess.run(["sh", "-n"], input=sh, text=True, capture_output=True)
    assert r.returncode == 0, r.stderr


# --- renderers on their own ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    c = topo.load(EXAMPLES / "small.yaml")
    f = topo.build(c)
    acc = np.flatnonzero(f.ep_is_accel)
    plan = {"placement": {"assignment": {n: acc[8 * i:8 * i + 8] for i, n in enumerate(JOB_NAMES + [LONG])}}}
    return c, f, plan


def test_rank_map_guards_and_quotes_job_names(small):
    _, f, plan = small
    rows = check_csv(ex.render_rank_map(f, plan)["rank-map.csv"])
    assert {unguard(r[0]) for r in rows[1:]} == set(JOB_NAMES + [LONG])
    assert [r[0] for r in rows[1:] if r[0].startswith("'")]  # the guard was needed and applied


def test_slurm_jobs_names_and_collisions(small):
    _, f, plan = small
    text = ex.render_slurm_jobs(f, plan)["slurm-jobs.conf"]
    assert "\x1b" not in text and "\r" not in text
    body = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert len(body) == len(JOB_NAMES) + 1
    assert all(re.fullmatch(r"JobName=[\w.\-]+ Nodes=\S+ Accelerators=8", ln) for ln in body), body
    acc = np.flatnonzero(f.ep_is_accel)
    with pytest.raises(topo.SpecError, match="both written"):
        ex.render_slurm_jobs(f, {"placement": {"assignment": {"a b": acc[:8], "a=b": acc[8:16]}}})


def test_kueue_refuses_label_keys_kubernetes_refuses(small):
    _, f, _ = small
    with pytest.raises(topo.SpecError, match="label_prefix"):
        ex.render_kueue(f, None, label_prefix="bad$/x-")
    with pytest.raises(topo.SpecError, match="domain_label"):
        ex.render_kueue(f, None, domain_label="evil.example/<b>")
    with pytest.raises(topo.SpecError, match="topology_name"):
        ex.render_kueue(f, None, topology_name="Bad Name")
    from topo.core import textsafe as ts
    assert ex._dns_name(CLUSTER) and ts.dns_subdomain_ok(ex._dns_name(CLUSTER))
    assert ex._dns_name("x.-y") == "x.y"


def custom_fabric(tmp_path, switch_names):
    g = nx.Graph()
    for i in range(8):
        g.add_node(f"e{i}", tier=0)
        g.add_edge(f"e{i}", switch_names[0] if i < 4 else switch_names[1], gbps=400.0)
    for leaf in switch_names[:2]:
        for spine in switch_names[2:]:
            g.add_edge(leaf, spine, gbps=400.0)
    nx.write_graphml(g, str(tmp_path / "g.graphml"))
    d = {"name": "custom", "node_types": [{"name": "h", "platform": "cpu-host"}],
         "racks": [{"name": "r", "count": 8, "nodes": {"h": 1}}],
         "fabric": {"family": "custom", "custom": {"graphml": "g.graphml"}}}
    c = topo.from_dict(d, base_dir=str(tmp_path))
    return c, topo.build(c)


SWITCHES = ["x,=1+1", "=SUM(1)", "@x", "-1+1 \"q\"\nz"]


def test_csvs_of_a_custom_graph_with_hostile_switch_names(tmp_path):
    c, f = custom_fabric(tmp_path, SWITCHES)
    plan = {"metrics_after": {"link_util": np.linspace(0.0, 1.0, f.n_links).tolist()}}
    rows = check_csv(ex.render_linkloads_csv(f, plan)["link-loads.csv"])
    assert rows[0] == ["link", "src", "dst", "tier", "gbps", "load_gbps", "util"] and len(rows) == f.n_links + 1
    assert {unguard(r[1]) for r in rows[1:]} == set(f.node_names())
    hosts = check_csv(ex.render_htsim(f)["htsim-hosts.csv"])
    assert {unguard(r[3]) for r in hosts[1:]} == set(SWITCHES[:2])
    # the writer for `topo analyze --loads`
    from topo.core import textsafe as ts
    from topo.routing.engine import analyze
    table = analyze(c, f, traffic="uniform").loads_table(f)
    buf = io.StringIO()
    ts.write_loads_csv(buf, table)
    rows = check_csv(buf.getvalue())
    assert len(rows) == f.n_links + 1 and len(rows[0]) == 7
    assert {unguard(r[2]) for r in rows[1:]} == set(f.node_names())
    # Slurm cannot take these names: refused, nothing rendered
    with pytest.raises(topo.SpecError, match="Slurm"):
        ex.render_slurm_conf_tree(f)


def test_graphml_refuses_names_xml_cannot_carry(tmp_path):
    (tmp_path / "edges.txt").write_text("".join(f"e{i} sw\x1b[31m 400\n" for i in range(4)))
    d = {"name": "custom", "node_types": [{"name": "h", "platform": "cpu-host"}],
         "racks": [{"name": "r", "count": 4, "nodes": {"h": 1}}],
         "fabric": {"family": "custom", "custom": {"edge_list": "edges.txt"}}}
    f = topo.build(topo.from_dict(d, base_dir=str(tmp_path)))
    with pytest.raises(topo.SpecError, match="GraphML"):
        ex.render_graphml(f)
    with pytest.raises(topo.SpecError):
        ex.export("graphml", f, None, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_report_renders_a_plan_with_mathtext_names(small):
    """`topo report` on a plan whose names matplotlib would parse as mathtext."""
    plan = {"plan_version": 1, "placement": {"racks": [{"rack": n, "kw": 10.0, "limit_kw": 20.0}
                                                       for n in ("$\\undefined$", "$x^2$", "\x1b[31m")]},
            "metrics_before": {"roce_vs_uec": {"roce-hash": {"jobs": {n: 0.1 for n in JOB_NAMES}, "max_util": 1.0},
                                               "uec-spray": {"jobs": {n: 0.05 for n in JOB_NAMES}, "max_util": 0.5}}}}
    html = rp.render_html(plan)
    assert html.count("<svg") >= 2
    md, images = rp.render_markdown(plan)
    assert len(images) >= 2 and "$\\undefined$" not in md


# --- the helpers --------------------------------------------------------------------------------
def test_terminal_safe():
    from topo.core import textsafe as ts
    assert ts.terminal_safe("a\x1b[31mb\x07\x9b\x7f\u202e\u2066\n\t\r") == \
        "a\\x1b[31mb\\x07\\x9b\\x7f\\u202e\\u2066\\n\\t\\r"
    assert ts.terminal_safe("日本語 plain") == "日本語 plain"
    assert ts.terminal_safe_text("a\x1b\nb") == "a\\x1b\nb"
    assert ts.terminal_safe_data({"k\x1b": ["v\x07", 1]}) == {"k\\x1b": ["v\\x07", 1]}


def test_csv_cell_guard_keeps_numbers():
    from topo.core import textsafe as ts
    assert ts.csv_cell("=1+1") == "'=1+1" and ts.csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert ts.csv_cell("+cmd") == "'+cmd" and ts.csv_cell("-x") == "'-x"
    assert ts.csv_cell("\t=1") == "'\t=1" and ts.csv_cell("\r=1") == "'\r=1"
    assert ts.csv_cell(-1.5) == -1.5 and ts.csv_cell(-3) == -3
    assert ts.csv_cell("-0.5") == "-0.5" and ts.csv_cell("-1e-05") == "-1e-05" and ts.csv_cell("+2") == "+2"
    assert ts.csv_cell("-1+1") == "'-1+1" and ts.csv_cell("plain") == "plain" and ts.csv_cell(None) == ""
    text = ts.csv_text(["a", "b"], [["x\ry", -2], ["p\nq", "=1"], ['"', "a,b"]])
    assert text.endswith("\n") and not text.endswith("\r\n")
    assert read_csv(text) == [["a", "b"], ["x\ry", "-2"], ["p\nq", "'=1"], ['"', "a,b"]]


def test_md_escape_and_block():
    from topo.core import textsafe as ts
    e = ts.md_escape("~~s~~ https://x.example/a www.x.example a@x.example $x^2$ $5 <b> | [l](u) ! # * _ ` \\")
    assert "~~" not in e and "https://" not in e and "www." not in e and "a@" not in e and "<b>" not in e
    assert not re.search(r"(?<!\\)\$(?!\d)", e) and " $5" in e
    assert ts.md_escape("a\r\nb\rc\nd") == "a b c d" and ts.md_escape("\x1b[1m") == "\\\\x1b\\[1m"
    assert ts.md_block("- x") == "\\- x" and ts.md_block("1. x") == "1\\. x" and ts.md_block("    code") == "&#32;" * 4 + "code"
    assert ts.md_escape("small-2tier: 128 accelerators, $262,200") == "small-2tier: 128 accelerators, $262,200"


def test_mpl_text_draws_names_exactly():
    from topo.core import textsafe as ts
    from matplotlib.figure import Figure
    fig = Figure()
    ax = fig.add_subplot(111)
    names = ["$\\undefined$", "$x^2$", "a\\$b", "\x1b[31m"]
    ax.set_yticks(range(len(names)), [ts.mpl_text(n) for n in names])
    ax.set_title(ts.mpl_text("$\\frac{1}{0$"))
    buf = io.StringIO()
    fig.savefig(buf, format="svg")   # no mathtext error
    from matplotlib.text import Text
    shown = [t._preprocess_math(t.get_text())[0] for t in fig.findobj(Text) if t.get_text()]
    for n in ["$\\undefined$", "$x^2$", "a\\$b", "\\x1b[31m", "$\\frac{1}{0$"]:
        assert n in shown


def test_format_predicates():
    from topo.core import textsafe as ts
    assert ts.slurm_name_ok("leaf-0.a_b") and not ts.slurm_name_ok("a b") and not ts.slurm_name_ok("a=b")
    assert ts.k8s_label_key_ok("fabric.topograph.run/tier-0") and ts.k8s_label_key_ok("tier-0")
    assert not ts.k8s_label_key_ok("Bad_Prefix/x") and not ts.k8s_label_key_ok("a/-x")
    assert ts.k8s_label_value_ok("") and ts.k8s_label_value_ok("leaf0") and not ts.k8s_label_value_ok("-x")
    assert ts.xml_text_ok("a\tb\n<&>") and not ts.xml_text_ok("a\x1bb")
    assert ts.sh_quote("a'b; rm -rf /") == "'a'\"'\"'b; rm -rf /'"


# --- headless browser ------------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed; the screenshot of the hostile report needs it")
def test_hostile_report_renders_in_headless_chromium(run, tmp_path):
    from PIL import Image
    out, _ = run
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
           (out / "report.html").resolve().as_uri()]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[0] >= 1500 and len(np.unique(img.reshape(-1, 3)[::7], axis=0)) > 50
