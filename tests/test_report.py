"""The report: structure, escaping, determinism, self-containment, headless Chromium, `topo report`."""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import no_crash
import yaml
from click.testing import CliRunner

import topo
from topo.io import report as rp
from topo.cli.app import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EVIL = "<script>alert(\"x\")</script>'q\""


# --- a plan made of real results on a small cluster ---------------------------------------
def _with_figure_data(plan: dict) -> dict:
    """Add the compact figure data (utilisation histograms, pod matrix) the pipeline may not store yet.

    Computed from the plan's own placement with the real routing engine, as
    ``topo optimize`` does for its metrics.
    """
    from topo.io.plan import plan_cluster
    from topo.routing.engine import analyze
    from topo.traffic.demand import job_demands
    a = {k: np.asarray(v) for k, v in plan["placement"]["assignment"].items()}
    for which, after in (("before", False), ("after", True)):
        m = plan.get(f"metrics_{which}")
        if not m or ("util_hist" in m and "pod_matrix_gbps" in m):
            continue
        c = plan_cluster(plan, after=after)
        f = topo.build(c)
        if which == "before" and "metrics_placed" in plan:  # the pipeline's "before" is the in-order placement
            from topo.traffic.demand import in_order_placement
            pl = in_order_placement(c, f)
        else:
            pl = a
        an = analyze(c, f, placement=pl, seed=plan.get("seed", 1))
        m.setdefault("util_hist", rp.util_histograms(f, an.utilization))
        m.setdefault("pod_matrix_gbps", rp.pod_matrix_gbps(f, job_demands(c, f, pl)))
    return plan


def real_plan(data: dict, *, with_budget=True, with_failures=True) -> dict:
    """The plan `topo optimize` writes for ``data`` (one worker, fixed seed)."""
    from topo.pipeline import optimize
    from topo.io.plan import to_jsonable
    c = topo.from_dict(data)
    plan = optimize(c, time_limit=5, seed=1, workers=1, failures=with_failures)
    plan = json.loads(json.dumps(to_jsonable(plan)))
    if not with_budget:
        plan.update(budget=None, cluster_file_after=None, describe_after=None, metrics_after=None)
        plan["solver"]["budget"] = None
    return _with_figure_data(plan)


def small_data() -> dict:
    return yaml.safe_load((EXAMPLES / "small.yaml").read_text())


def evil_data() -> dict:
    d = small_data()
    d["name"] = "cl" + EVIL
    d["description"] = "desc " + EVIL
    d["node_types"][0]["name"] = "gpu" + EVIL
    d["racks"][0]["nodes"] = {"gpu" + EVIL: 2, "cpu": 1}
    d["racks"][0]["name"] = "rack" + EVIL
    for j in d["jobs"]:
        j["name"] = j["name"] + EVIL + "<img src=x onerror=alert(1)>"
    return d


@pytest.fixture(scope="module")
def plan():
    return real_plan(small_data())


@pytest.fixture(scope="module")
def html(plan):
    return rp.render_html(plan)


class Tags(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.ids, self.text = [], [], [], []
        self.stack = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        self.ids += [v for k, v in attrs if k == "id"]
        self.stack.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Tags:
    p = Tags()
    p.feed(html)
    return p


SVG_TAGS = {"svg", "g", "path", "defs", "clippath", "use", "text", "rect", "image", "style", "lineargradient",
            "stop", "polyline", "line", "circle", "tspan", "pattern", "mask", "polygon", "symbol", "title"}
HTML_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "h1", "nav", "a", "main", "section", "h2",
             "p", "dl", "dt", "dd", "figure", "figcaption", "strong", "div", "table", "caption", "thead", "tr",
             "th", "tbody", "td", "footer", "span"}


# --- structure -------------------------------------------------------------------------------
def test_sections_and_figures_present(html):
    t = parse(html)
    first_section = re.search(r'<section id="([^"]+)"', html).group(1)
    assert first_section == "overview"
    for sid in ("summary", "fabric", "budget", "utilisation", "traffic", "transport", "power", "bom", "placement",
                "failures", "solver"):
        assert sid in t.ids, sid
    assert "fig-plane-0" not in t.ids       # one plane: the before/after figure's right half, not drawn twice
    for fid in ("fig-tiers", "fig-floor", "fig-before-after", "fig-cost", "fig-peaks", "fig-util", "fig-pods", "fig-transport", "fig-power",
                "fig-failures", "fig-failure-classes"):
        assert fid in t.ids, fid
    assert t.tags.count("svg") >= 6
    text = " ".join(t.text)
    for label in ("What changed", "What it costs", "What it saves", "What is at risk"):
        assert label in text
    assert "Not computed" not in text  # every section has its data in this plan


def test_numbers_come_from_the_plan(plan, html):
    text = " ".join(parse(html).text)
    # the summary's capex is the budget's chosen capex; switch counts are the plan's
    assert rp.usd(plan["budget"]["cost"]["chosen"]["capex_usd"]) in text
    for t in plan["describe_after"]["tiers"]:
        assert f"{t['tier']}: " in text
    for job in plan["placement"]["assignment"]:
        assert job in text
    n_racks = len(plan["placement"]["racks"])
    assert f"{n_racks} racks" in text


def test_self_contained(html):
    t = parse(html)
    assert "script" not in t.tags
    assert set(t.tags) <= HTML_TAGS | SVG_TAGS, set(t.tags) - HTML_TAGS - SVG_TAGS
    for k, v in t.attrs:
        if k in ("src", "href", "xlink:href"):
            assert not re.match(r"\s*(https?:)?//", v or ""), (k, v)
    assert "<link" not in html and "@import" not in html and "url(http" not in html
    assert len(html.encode()) < 5_000_000


def test_missing_sections_say_not_computed(plan):
    p = copy.deepcopy(plan)
    p.update(budget=None, cluster_file_after=None, describe_after=None, metrics_after=None, failures=None)
    p["solver"]["budget"] = None
    t = parse(rp.render_html(p))
    text = " ".join(t.text)
    assert "Not computed: the link budget was not computed" in text
    assert "Not computed: failure analysis not computed" in text
    assert "failure headroom not computed" in text  # and the summary says what is at risk
    minimal = {"plan_version": 1, "cluster_file": small_data(), "placement": {"assignment": {}}, "metrics_before": None}
    text = " ".join(parse(rp.render_html(minimal)).text)
    assert text.count("Not computed") >= 6


def test_escaping_of_every_user_name():
    p = real_plan(evil_data(), with_budget=False, with_failures=True)
    html = rp.render_html(p)
    t = parse(html)
    assert "script" not in t.tags and "img" not in t.tags
    assert set(t.tags) <= HTML_TAGS | SVG_TAGS
    assert not [k for k, _ in t.attrs if k.startswith("on")]
    assert EVIL in "".join(t.text)  # shown as text, not markup
    md, images = rp.render_markdown(p)
    assert "<script" not in md and "<img" not in md
    assert "&lt;script>" in md   # `<` an entity, so the `>` after it closes nothing and reads as written


def test_markdown_arrows_as_written():
    """report.md reads as in a terminal: `->` and `>` as written in text, tables and captions; a `>` that
    starts a paragraph (a quote) and every `<` stay escaped."""
    assert rp.md_inline("leaf0->n0000-g0 | 1.0 -> 0.5") == "leaf0->n0000-g0 \\| 1.0 -> 0.5"
    assert rp.md_inline("<b>x</b>") == "&lt;b>x&lt;/b>"
    assert rp.md_paragraph("> not a quote -> x") == "&gt; not a quote -> x"
    assert rp.md_paragraph("  > x") == "&#32;&#32;&gt; x"
    assert rp.md_paragraph("a -> b") == "a -> b"


# --- determinism, Markdown, files ---------------------------------------------------------------
def test_deterministic(plan, html):
    assert rp.render_html(plan) == html
    md1, img1 = rp.render_markdown(plan)
    md2, img2 = rp.render_markdown(plan)
    assert md1 == md2 and img1 == img2


def test_markdown_same_content(plan, html):
    md, images = rp.render_markdown(plan, "imgs")
    heads = re.findall(r"^## (.+)$", md, re.M)
    assert heads[0] == "Summary"
    html_heads = re.findall(r"<h2>(.*?)</h2>", html)
    assert heads == [h.replace("&amp;", "&") for h in html_heads]
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert sorted(links) == sorted(images) and all(l.startswith("imgs/") for l in links)
    assert all(v.startswith(b"\x89PNG\r\n\x1a\n") for v in images.values())
    # every table row has as many cells as its header
    for block in re.findall(r"((?:^\|.*\|\n)+)", md, re.M):
        rows = [r for r in block.splitlines() if r.strip()]
        n = len(re.findall(r"(?<!\\)\|", rows[0]))
        assert all(len(re.findall(r"(?<!\\)\|", r)) == n for r in rows), rows[:3]


def test_tables_are_capped():
    t = rp.make_table([{"name": f"r{i}", "v": i} for i in range(500)], limit=40)
    assert len(t.rows) == 40 and t.total == 500 and "40 of 500" in t.note


def test_write_report_atomic(plan, tmp_path):
    out = tmp_path / "out"
    written = rp.write_report(plan, out)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["report-images", "report.html", "report.md"]
    assert {p.name for p in written} >= {"report.html", "report.md"}
    md = (out / "report.md").read_text()
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / link).is_file()
    with pytest.raises(topo.SpecError, match="--force"):
        rp.write_report(plan, out)
    (out / "report-images" / "stale.png").write_bytes(b"x")
    rp.write_report(plan, out, force=True)
    assert not (out / "report-images" / "stale.png").exists()
    assert sorted(p.name for p in out.iterdir()) == ["report-images", "report.html", "report.md"]


def test_cli_report(plan, html, tmp_path):
    pp = tmp_path / "plan.json"
    pp.write_text(json.dumps(plan))
    r = CliRunner().invoke(main, ["report", str(pp), "-o", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r" / "report.html").read_text() == html
    r = CliRunner().invoke(main, ["report", str(pp), "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and "--force" in r.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"plan_version": 1, "cluster_file": {}, "metrics_before": {}}))
    r = CliRunner().invoke(main, ["report", str(bad), "-o", str(tmp_path / "b")])
    assert r.exit_code == 2 and "placement" in r.output and no_crash(r)
    assert not (tmp_path / "b").exists()


# --- headless Chromium ------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium); "
                                             "the report screenshot test needs it")
def test_report_renders_in_headless_chromium(plan, tmp_path):
    from PIL import Image
    rp.write_report(plan, tmp_path / "out")
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,3000",
           (tmp_path / "out" / "report.html").resolve().as_uri()]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    assert img.shape[0] >= 2000 and img.shape[1] >= 1200
    # not blank: many distinct colours (text, figure fills) and dark text pixels in the top part
    flat = img.reshape(-1, 3)
    assert len(np.unique(flat[:: 7], axis=0)) > 50
    top = img[:800]
    assert (top.sum(axis=2) < 200).mean() > 0.001
    # the figures are on screen below the summary: the accent blue, solid or as the 60% fill of
    # the utilisation histograms (the navigation links above are the same blue)
    accent = np.array([31, 111, 235])
    fill = 255 - 0.6 * (255 - accent)
    blue = (np.abs(img - accent).sum(axis=2) < 40) | (np.abs(img - fill).sum(axis=2) < 40)
    assert blue[800:].mean() > 0.001


def test_transport_check_in_summary_and_budget(plan):
    tc = plan["budget"]["transport_check"]
    assert tc["routing"] == plan["metrics_after"]["routing"]
    text = " ".join(parse(rp.render_html(plan)).text)
    assert "Transport check (" in text and "Targets tried by the transport check" in text
    what = f"summed collective time is {rp.show(tc['total'], 'x')}"
    if tc["accepted"]:
        assert what in text.split("What it saves")[1].split("What is at risk")[0]
    # a check that failed is a risk in the summary
    p = copy.deepcopy(plan)
    p["budget"]["transport_check"].update(accepted=False, total=1.4, tail=2.0)
    text = " ".join(parse(rp.render_html(p)).text)
    risk = text.split("What is at risk")[1]
    assert "slows the jobs under" in risk and "summed collective time is 1.40x" in risk
    assert "NOT met" in text


# --- written for a reader ----------------------------------------------------------------------------
class Headers(HTMLParser):
    """Column headers (``th scope=col``), row headers and figures of a report."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.cols, self.rows, self.ths, self.figures, self.labels, self.h = [], [], [], [], [], []
        self._in = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "th":
            self.ths.append(a.get("scope"))
            self._in = a.get("scope")
            (self.cols if a.get("scope") == "col" else self.rows).append("")
        elif tag == "figure":
            self.figures.append(a.get("id"))
        elif tag == "div" and a.get("role") == "img":
            self.labels.append(a.get("aria-label", ""))
        elif tag in ("h1", "h2", "h3"):
            self.h.append(int(tag[1]))

    def handle_endtag(self, tag):
        if tag == "th":
            self._in = None

    def handle_data(self, data):
        if self._in == "col":
            self.cols[-1] += data
        elif self._in == "row":
            self.rows[-1] += data


_raw_name = rp.raw_field_name     # `_` or `.` outside a unit in parentheses (a decimal point aside)


def test_no_table_header_is_a_raw_field_name(plan, html):
    h = Headers()
    h.feed(html)
    assert len(h.cols) > 50
    raw = sorted({c for c in h.cols if _raw_name(c)})
    assert not raw, raw
    # the name column of a (quantity, value) table is written for a reader too
    keyed = [r for r in h.rows if _raw_name(r) and not re.search(r"\d", r)]
    names = {str(x) for x in plan["placement"]["assignment"]} | {"n/a"}
    assert not [r for r in keyed if r not in names and "->" not in r and "plane" not in r], keyed
    # and the test itself can fail
    assert _raw_name("cost_each_usd") and _raw_name("links_by_optic.aec") and not _raw_name("Bisection (Tb/s)")


def test_accessible_structure(html):
    h = Headers()
    h.feed(html)
    assert all(s in ("col", "row") for s in h.ths)
    assert h.h[0] == 1 and all(b - a <= 1 for a, b in zip(h.h, h.h[1:]))   # headings in order
    assert len(h.labels) == len(h.figures) and all(len(x) > 20 for x in h.labels)
    assert "fig-floor" in h.figures
    assert "@media print" in html and "@page" in html


def test_values_shown_with_units():
    assert rp.show(1.11e-16, "pct") == "0%" and rp.show(0.0969, "pct") == "9.7%"
    assert rp.show(6.111111, "ratio") == "6.11:1" and rp.show(1234567.8, "usd") == "$1,234,568"
    assert rp.column("cost_each_usd") == ("Cost each", "usd")
    assert rp.column("worst_util_after_failure")[1] == "pct"
    assert rp.column("some_new_kw") == ("Some new (kW)", "kw")     # an unlisted field gets words and its unit


def test_columns_in_a_deliberate_order():
    t = rp.make_table([{"watts_each": 10, "model": "m", "kw": 1.0, "count": 3, "cost_usd": 5.0, "cost_each_usd": 2.0,
                        "tier": "leaf"}])
    assert t.columns == ["Tier", "Switch model", "Count", "Power (kW)", "Power each (W)", "Cost each", "Cost"]


def test_identical_racks_are_grouped():
    racks = [{"rack": f"rack{i:03d}", "kw": 171.0, "limit_kw": 180.0, "share": 0.95} for i in range(56)]
    racks += [{"rack": "rack056", "kw": 90.0, "limit_kw": 180.0, "share": 0.5}]
    t = rp.make_table(racks, group=True)
    assert t.rows == [["56: rack000 ... rack055", "171", "180", "95.0%"], ["rack056", "90", "180", "50.0%"]]
    assert t.total == 2 and t.note == ""


def test_budget_optimum_is_a_design_in_words(plan):
    p = copy.deepcopy(plan)
    p["budget"]["alternatives"]["cost"]["decisions"].update(b2=10, partial_pod_bundle=1)
    sec = next(s for s in rp.build_sections(p) if s.id == "budget")
    t = next(t for t in sec.tables if t.caption.startswith("Optimum of each objective"))
    first = [r[0] for r in t.rows]
    assert "Links from each spine to each super-spine, last pod" in first
    assert "Links from each leaf to each spine" in first
    assert not any(re.fullmatch(r"[dub]\d", x) for x in first)
    row = t.rows[first.index("Links from each spine to each super-spine")]
    assert row[t.columns.index("Cost")] == "10"
    assert rp.design_words({"b1": 2, "b2": 10, "partial_pod_bundle": 1}) == \
        "links from each leaf to each spine 2; links from each spine to each super-spine 10; last pod 1"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_nothing_wider_than_1280_px(plan):
    """Layout measured in the browser (a copy of the report with a probe script; the report itself
    has none): no element past a 1280 px window's right edge or scrolling sideways."""
    m = rp.measure_layout(rp.render_html(plan), browser=CHROMIUM)
    assert m["doc"] <= 1280 and m["bad"] == [], m


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed")
def test_report_pdf(plan, tmp_path):
    f = tmp_path / "plan.json"
    from topo.io.plan import dumps
    f.write_text(dumps(plan))
    r = CliRunner().invoke(main, ["report", str(f), "-o", str(tmp_path / "r"), "--pdf"])
    assert r.exit_code == 0, r.output
    pdf = (tmp_path / "r" / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) >= 2            # the print stylesheet makes pages
    assert re.search(rb"/MediaBox\s*\[0 0 59[45]\.\d+ 84[12]\.\d+\]", pdf)  # A4


def test_report_pdf_without_chromium_says_so_and_writes_nothing(plan, tmp_path, monkeypatch):
    import shutil as sh
    monkeypatch.setattr(sh, "which", lambda name, *a, **k: None)
    f = tmp_path / "plan.json"
    from topo.io.plan import dumps
    f.write_text(dumps(plan))
    r = CliRunner().invoke(main, ["report", str(f), "-o", str(tmp_path / "r"), "--pdf"])
    assert r.exit_code == 1
    assert "needs headless Chromium" in r.output and "print it to PDF" in r.output
    assert not (tmp_path / "r" / "report.html").exists()


# --- the summary a director reads, the design search, cable runs, failure columns -------------
def test_summary_first_with_key_figures_and_jobs(plan):
    sec = rp.build_sections(plan)[0]
    assert sec.id == "overview"
    labels = [k for k, _, _ in sec.kpis]
    assert labels[:3] == ["Cost", "Network power", "Saves"] and "Worst single failure" in labels
    assert "Headroom" in labels
    cost = plan["budget"]["cost"]
    assert dict((k, v) for k, v, _ in sec.kpis)["Cost"] == rp.usd(cost["chosen"]["total_usd"])
    assert sec.paragraphs[0].startswith("Chosen design: a 2-tier Clos fabric")
    t = sec.tables[0]
    assert t.columns[2:] == ["Collective time, chosen fabric (s)", "Slowdown vs ideal", "Goodput"]
    after = {j["name"]: j for j in plan["metrics_after"]["jobs"]}
    for r in t.rows:
        j = after[r[0]]
        assert r[2] == rp.show(j["time_s"], "s") and r[3] == rp.show(j["time_s"] / j["ideal_s"], "x")
    sl = [float(r[3].rstrip("x")) for r in t.rows]
    assert sl == sorted(sl, reverse=True)          # slowest against ideal first
    # goodput shown where the plan has it
    p = copy.deepcopy(plan)
    p["goodput"]["jobs"][0]["goodput"] = 0.9123
    sec = rp.build_sections(p)[0]
    assert ("Goodput", "91.2%") in [(k, v) for k, v, _ in sec.kpis]
    assert "91.2%" in [r[4] for r in sec.tables[0].rows]


@pytest.fixture(scope="module")
def design_plan(plan):
    """The plan with a design section from the real design search on a small cluster."""
    from conftest import cluster_dict
    d = cluster_dict(n_racks=4, nodes_per_rack=2, accel=4, tiers=[{"switch": "th4-64x400"}, {"switch": "th4-64x400"}])
    d["transport"] = {"protocol": "ideal"}
    d["goals"] = {"time_limit_s": 10, "survive": "none", "seed": 3, "workers": 1}
    d["jobs"] = [{"name": "moe", "accelerators": 16, "ep": 16, "collectives": [
                     {"op": "alltoall", "group": "ep", "bytes": "64MiB"}]},
                 {"name": "dense", "accelerators": 16, "tp": 4, "collectives": [
                     {"op": "allreduce", "group": "dp", "bytes": "1GiB"}]}]
    # every candidate sized (no pruning by bound), so the figure has several families and a front line
    r = topo.design(topo.from_dict(d), families=["clos", "rail_optimized", "rail_only"], tiers=(1, 2), seed=3,
                    time_limit=10, prune=False).to_dict()
    for c in r["candidates"]:
        c.pop("cluster_after", None)
    p = copy.deepcopy(plan)
    p["design"] = json.loads(json.dumps(r))
    return p


def test_design_front_figure_and_table(design_plan, plan):
    ds = design_plan["design"]
    secs = rp.build_sections(design_plan)
    sec = next(s for s in secs if s.id == "design")
    assert [s.id for s in secs].index("design") == 2         # right after the summaries
    assert [f.id for f in sec.figures] == ["fig-design-front"]
    t = sec.tables[0]
    assert [r[0] for r in t.rows] == sorted(ds["front"], key=lambda i: next(
        c["total_usd"] for c in ds["candidates"] if c["id"] == i))
    assert t.columns[:2] == ["Name", "Capex + energy"] and "Summed collective time (s)" in t.columns
    assert sum(1 for r in t.rows if r[-1] == "yes") == (1 if ds["chosen"] else 0)
    text = " ".join(sec.paragraphs)
    assert f"{len(ds['candidates'])} candidate designs" in text and (ds["chosen"] or "No candidate") in text
    svg = rp.figure_svg(sec.figures[0])
    assert "Pareto front" in svg and "chosen" in svg and "rail only" in svg
    # a design search with no sized candidate still has its counts and no figure
    p = copy.deepcopy(design_plan)
    for c in p["design"]["candidates"]:
        c.update(status="infeasible", total_usd=None, job_time_s=None)
    p["design"].update(front=[], chosen=None)
    sec = next(s for s in rp.build_sections(p) if s.id == "design")
    assert not sec.figures and not sec.tables and "No candidate was chosen" in sec.paragraphs[0]
    # without the section, no design search in the report
    assert "design" not in [s.id for s in rp.build_sections(plan)]
    # and a malformed section is refused by its JSON path
    p["design"]["candidates"][0]["tiers"] = "two"
    with pytest.raises(topo.SpecError, match=r"design\.candidates\[0\]\.tiers"):
        rp.build_sections(p)


def test_cable_runs_aggregate_every_link(plan):
    from topo.io.plan import plan_cluster
    f = topo.build(plan_cluster(plan))
    runs = rp.cable_runs(f, eor=True)
    assert sum(k for *_, k in runs) == f.n_links // 2          # every physical link once
    assert runs == sorted(runs) and len(runs) < f.n_links // 2
    from topo.model.fabric import REACH_NAMES
    reach = np.asarray(f.link_reach)[np.asarray(f.node_tier)[f.link_src] < np.asarray(f.node_tier)[f.link_dst]]
    for r in set(REACH_NAMES):
        assert sum(k for *_, rr, k in runs if rr == r) == int((reach == REACH_NAMES.index(r)).sum())
    # leaves at the end of their row: every endpoint run ends in the network column
    C = int(np.asarray(f.rack_col).max()) + 1
    assert {c for _, _, c, _, _, _ in runs if c < C + 1} == {C}
    # a tight cap merges runs onto a coarser grid and keeps the link count
    few = rp.cable_runs(f, eor=True, max_runs=4)
    assert len(few) < len(runs) and sum(k for *_, k in few) == f.n_links // 2


def test_single_failures_columns_in_order(plan):
    sec = next(s for s in rp.build_sections(plan) if s.id == "failures")
    t = next(t for t in sec.tables if t.caption.startswith("Single failures"))
    cols = t.columns
    assert cols[:3] == ["Kind", "Name", "Alike"]
    first_lost = min(i for i, c in enumerate(cols) if c.startswith("Lost"))
    assert all(i < first_lost for i, c in enumerate(cols) if c.startswith(("Jobs", "Endpoints", "Worst slowdown")))


def test_sweep_report_says_what_slowdown_is_against():
    from topo.study import sweep
    rows = [{"variant": "v", "scenario": "leaf", "status": "ok", "slowdown_max": 1.5}]
    for text in (sweep.report_md(rows, [], "s"), sweep.report_html(rows, [], "s")):
        assert "slowdown_max (worst job, vs the same variant healthy; not vs ideal)" in text


def test_times_figures_two_decimals(plan):
    from topo.io.render import optimize_text
    text = " ".join(" ".join(s.paragraphs + [v for _, v in s.bullets]) for s in rp.build_sections(plan))
    times = re.findall(r"(?<![\d.,])\d[\d,]*(?:\.\d+)?x\b", text)
    assert times and all(re.fullmatch(r"[\d,]+\.\d\dx", t) for t in times), times
    s = {"cluster": "c", "files": 1, "out_dir": "o", "placement": {"status": "OPTIMAL", "objective": 1, "bound": 1,
         "gap": 0.0, "placed": 1, "unplaced": {}},
         "budget": {"status": "optimal", "gap": 0.0, "capex_usd": 1.0, "energy_usd": 1.0, "network_kw": 1.0,
                    "transport_check": {"total": 1.0, "tail": 1.04106, "accepted": True, "routing": "roce-hash",
                                        "max_slowdown": 1.05, "chosen_target_utilization": 0.56}},
         "max_util_before": {}, "max_util_after": {}}
    out = optimize_text(s)
    assert "summed job time 1.00x, 95th-percentile job penalty 1.04x" in out and "within 1.05x" in out


# --- serving deployments (examples/serving-disagg.yaml) ----------------------------------------
@pytest.fixture(scope="module")
def serving_plan():
    from topo.pipeline import optimize
    from topo.io.plan import to_jsonable
    c = topo.from_dict(yaml.safe_load((EXAMPLES / "serving-disagg.yaml").read_text()), base_dir=str(EXAMPLES))
    return json.loads(json.dumps(to_jsonable(optimize(c, time_limit=2, seed=1, workers=1, failures=False))))


def _serving(plan):
    return next(s for s in rp.build_sections(plan) if s.id == "serving")


def _col(t, name):
    """{row header: value} of one column of a table."""
    i = t.columns.index(name)
    return {r[0]: r[i] for r in t.rows}


def test_serving_section_from_the_plan(serving_plan):
    sv = serving_plan["serving"]
    sec = _serving(serving_plan)
    assert [f.id for f in sec.figures] == ["fig-serving"]
    assert "llama70b, moe" in sec.figures[0].caption and "RoCE hashing" in sec.figures[0].caption
    dep = {d["name"]: d for d in sv["deployments"]}
    t = sec.tables[0]
    llama, moe = _col(t, "llama70b"), _col(t, "moe")
    # closed forms: KV 2 x 80 layers x 8 KV heads x 128 x 2 B; MoE dispatch 4,096 hidden x 4 experts x 2 B
    assert llama["KV cache per prompt token (B)"] == "327,680" and moe["MoE dispatch per token per layer (B), each way"] == "32,768"
    assert llama["MoE dispatch per token per layer (B), each way"] == "0 (dense)"
    assert llama["TP all-reduce per token per layer (B)"] == "16,384"          # 8,192 hidden x 2 B
    e = dep["moe"]["time_per_token"]["models"]["roce-hash"]
    assert moe["First link saturates at (requests/s)"] == rp.fmt(round(e["saturating_requests_per_s"], 2))
    assert moe["Link that saturates first"] == e["saturating_link"] != "n/a"
    assert moe["Network time per output token at the stated load (us)"] == f"{e['at_rate_s'] * 1e6:,.1f}"
    # traffic by kind: a request's KV cache is 2,000 prompt tokens x 327,680 B = 655.36 MB
    kinds = {(r[0], r[1]): r for r in sec.tables[1].rows}
    assert kinds[("llama70b", "KV-cache transfer, prefill to decode")][3] == "655.4"
    assert ("moe", "KV-cache transfer, prefill to decode") not in kinds and ("moe", "MoE dispatch") in kinds
    # every routing model's saturating rate; the CPU tier: (20 + 50) requests/s x (64 + 8) KiB = 5.161 MB/s
    assert len(sec.tables[2].rows) == 2 * 3 and {r[1] for r in sec.tables[2].rows} >= {"RoCE hashing", "UEC spraying"}
    tier = sec.tables[3]
    assert tier.rows == [["agents", "cpu", "every host of the type", "llama70b, moe", "64", "8", "5.161"]]
    assert sec.tables[4].columns[0] == "Training job" and sec.tables[4].rows[0][0] == "train"
    # the summary's card: the deployment closest to saturation (llama70b: ~96 of 20 requests/s)
    sat = {n: d["time_per_token"]["models"]["roce-hash"]["saturating_requests_per_s"] / d["requests_per_s"]
           for n, d in dep.items()}
    card = next(k for k in rp.build_sections(serving_plan)[0].kpis if k[0] == "Serving headroom")
    assert card[1] == f"{min(sat.values()):.2f}x" and card[2].startswith(f"least, {min(sat, key=sat.get)}: saturates")
    html = rp.render_html(serving_plan)
    assert 'id="fig-serving"' in html and "Network time per output token against request rate" in html
    md, images = rp.render_markdown(serving_plan)
    assert "## Serving deployments" in md and "report-images/fig-serving.png" in images


def test_serving_chart_shows_saturated_points(serving_plan):
    p = copy.deepcopy(serving_plan)
    e = p["serving"]["deployments"][0]["time_per_token"]["models"]["roce-hash"]
    e["curve"].append([2.0 * e["saturating_requests_per_s"], None])
    e["at_rate_s"] = None
    sec = _serving(p)
    svg = rp.figure_svg(sec.figures[0])
    assert "x along the top: saturated" in svg and "saturates at" in svg
    assert "x along the top" not in rp.figure_svg(_serving(serving_plan).figures[0])
    row = next(r for r in sec.tables[2].rows if r[:2] == ["llama70b", "RoCE hashing"])
    assert row[3] == "saturated"


def test_serving_section_refuses_a_malformed_curve_and_is_absent_without_deployments(serving_plan, plan, tmp_path):
    assert "serving" not in [s.id for s in rp.build_sections(plan)]
    p = copy.deepcopy(serving_plan)
    p["serving"]["deployments"][1]["time_per_token"]["models"]["roce-hash"]["curve"][0] = [0, 1e-4]
    with pytest.raises(topo.SpecError, match=r"serving\.deployments\[1\]\.time_per_token\.models\.roce-hash\.curve\[0\]"):
        rp.build_sections(p)
    from topo.io.plan import dumps
    f = tmp_path / "plan.json"
    f.write_text(dumps(p))
    r = CliRunner().invoke(main, ["report", str(f), "-o", str(tmp_path / "r")])
    assert r.exit_code == 2 and "curve[0]" in r.output and "Traceback" not in r.output
    # the file states deployments but the plan has no serving section: said, not dropped
    p = copy.deepcopy(serving_plan)
    del p["serving"]
    assert "not in the plan" in _serving(p).missing


def test_floor_legend_names_the_part_bought_for_a_reach_class(plan):
    p = copy.deepcopy(plan)
    optics = p["budget"]["bill_of_materials"]["optics"]
    o = next(o for o in optics if o["reach"] not in ("dac", "aec"))
    o["part"] = "lpo"
    fig = next(f for s in rp.build_sections(p) for f in s.figures if f.id == "fig-floor")
    assert f"buys lpo parts for the {o['reach']} reach" in fig.caption
    assert f"{o['reach']} reach, lpo part" in rp.figure_svg(fig)
    same = next(f for s in rp.build_sections(plan) for f in s.figures if f.id == "fig-floor")
    assert "buys" not in same.caption


def test_opening_line_says_which_pod_count_is_chosen(plan):
    first = next(s for s in rp.build_sections(plan) if s.id == "summary").paragraphs[0]
    assert "1 plane, 1 pod." in first and "as given" not in first        # the same shape: said once
    p = copy.deepcopy(plan)
    p["describe_before"]["pods"] = 5
    p["describe_after"]["pods"] = 6
    first = next(s for s in rp.build_sections(p) if s.id == "summary").paragraphs[0]
    assert "fabric as given: Clos, 1 plane, 5 pods; chosen design: Clos, 1 plane, 6 pods" in first


def test_rack_power_figure_stays_small_with_many_racks(plan):
    """A large cluster's sorted rack-power profile is drawn at POWER_PROFILE_POINTS ranks, not one
    vertex per rack (0.42 MB of the 131k report before)."""
    p = copy.deepcopy(plan)
    n = 20 * rp.POWER_PROFILE_POINTS
    p["placement"]["racks"] = [{"rack": f"r{i:05d}", "kw": float(i % 97), "limit_kw": 90.0, "share": (i % 97) / 90.0}
                               for i in range(n)]
    sec = next(s for s in rp.build_sections(p) if s.id == "power")
    svg = rp.figure_svg(sec.figures[0])
    small = rp.figure_svg(next(s for s in rp.build_sections(plan) if s.id == "power").figures[0])
    assert len(svg) < 6 * len(small) and "th rank drawn" in svg
    assert f"{sum(1 for i in range(n) if i % 97 > 90):,} over their limit" in sec.paragraphs[0]   # every rack counted


def test_summary_cards_show_billions_short_and_smaller_sums_whole():
    from topo.io.report import usd_card
    assert usd_card(3_818_692_485) == "$3.819B"
    assert usd_card(2_020_426_053) == "$2.020B"
    assert usd_card(999_999_999) == "$999,999,999"
    assert usd_card(124_591_512) == "$124,591,512"
    assert usd_card(None) == "n/a"
