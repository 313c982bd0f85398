"""Names as text in every output: one place that knows each output's escaping.

Names (cluster, jobs, node and rack types, switches of a custom graph) come
from the user's files and plans and may hold anything a YAML or JSON string
can. Every output shows them as text, never as markup, formulas or commands:

* terminal: :func:`terminal_safe` (one value) and :func:`terminal_safe_text`
  (composed text, keeping its line breaks) replace C0 controls (tab and line
  breaks included), DEL, C1 controls, Unicode line/paragraph separators and
  bidirectional overrides/isolates with visible escapes (``\\x1b``, ``\\n``,
  ``\\u202e``), so no escape sequence reaches the terminal and no name can
  reorder or split the text around it. :func:`visible` is the same transform,
  used by the report and the figures. A backslash already in a name is left as
  it is, so ``\\x1b`` in the output may also be those four characters.
* CSV: :class:`CsvWriter` writes through :func:`csv.writer` (QUOTE_MINIMAL, LF
  line ends) and quotes any field holding a comma, a quote, CR or LF, so a row
  never splits; :func:`csv_cell` prefixes ``'`` to a text cell that starts with
  ``=``, ``+``, ``-``, ``@``, tab or CR (OWASP's rule against formula
  injection), except cells that are numbers (int/float values, or text that is
  a plain decimal number such as ``-0.5``), which stay numbers. A reader that
  wants the name back drops that one leading ``'``.
* Markdown: :func:`md_escape` backslash-escapes the metacharacters, writes
  ``& < >`` as entities and breaks auto-linking of URLs, ``www.`` and e-mail
  addresses; :func:`md_block` also guards the start of a paragraph.
* matplotlib: :func:`mpl_text` makes a name literal text (mathtext is off: every
  ``$`` is escaped; the report draws with ``text.usetex`` off).
* HTML: the report's Jinja environment autoescapes; :func:`html_text` is the
  same for code that builds HTML by hand.
* shell: :func:`sh_quote` (:func:`shlex.quote`).
* formats with their own name syntax (Slurm, Kubernetes labels, XML) check
  names with the predicates below and refuse what the format cannot carry.
"""
from __future__ import annotations

import csv
import numbers
import re
import shlex

# --- visible control characters ------------------------------------------------------------
# C0 (with tab, LF, CR), DEL, C1, the Unicode line/paragraph separators, the
# Arabic letter mark, LRM/RLM and the bidi embeddings/overrides/isolates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _esc(m: "re.Match") -> str:
    c = m.group(0)
    if c in _NAMED:
        return _NAMED[c]
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def visible(s) -> str:
    """``s`` with every control, line-break and bidi-control character as a visible escape."""
    s = str(s)
    return _CONTROL.sub(_esc, s) if _CONTROL.search(s) else s


def terminal_safe(s) -> str:
    """One value for the terminal: no ESC, no control byte, no line break, no bidi override."""
    return visible(s)


def terminal_safe_text(text) -> str:
    """Composed terminal text: every line made :func:`terminal_safe`, the line breaks kept."""
    return "\n".join(visible(line) for line in str(text).split("\n"))


def terminal_safe_data(x):
    """A copy of nested dicts/lists/tuples with every string (keys too) made :func:`terminal_safe`."""
    if isinstance(x, str):
        return visible(x)
    if isinstance(x, dict):
        return {terminal_safe_data(k): terminal_safe_data(v) for k, v in x.items()}
    if isinstance(x, list):
        return [terminal_safe_data(v) for v in x]
    if isinstance(x, tuple):
        return tuple(terminal_safe_data(v) for v in x)
    return x


# --- CSV --------------------------------------------------------------------------------------
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")


def csv_cell(x):
    """A CSV cell that no spreadsheet evaluates: ``'`` before a text cell starting with ``= + - @``, tab or CR.

    Numbers (int/float values, and text that is a plain decimal number such as
    ``-0.5`` or ``-1e-05``) are returned unchanged, so they stay numbers.
    ``None`` becomes an empty cell.
    """
    if x is None:
        return ""
    if isinstance(x, numbers.Number) and not isinstance(x, bool):
        return x
    s = str(x)
    if s.startswith(FORMULA_START) and not _NUMBER.match(s):
        return "'" + s
    return s


class _LFLines:
    """File adaptor: csv.writer writes one record per call ending in CRLF; store it with LF.

    The writer is given ``lineterminator="\\r\\n"`` so that QUOTE_MINIMAL quotes a
    field holding either CR or LF (Python before 3.12 quotes only the characters
    of the line terminator), and the files keep their LF line ends.
    """

    def __init__(self, fh):
        self.fh = fh

    def write(self, s: str):
        return self.fh.write(s[:-2] + "\n" if s.endswith("\r\n") else s)


class CsvWriter:
    """``csv.writer`` (QUOTE_MINIMAL, LF line ends) whose cells go through :func:`csv_cell`."""

    def __init__(self, fh):
        self._w = csv.writer(_LFLines(fh), quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")

    def writerow(self, row) -> None:
        self._w.writerow([csv_cell(c) for c in row])

    def writerows(self, rows) -> None:
        for r in rows:
            self.writerow(r)

    def writerow_guarded(self, row) -> None:
        """A row whose cells are already :func:`csv_cell` values (or numbers): written as is."""
        self._w.writerow(row)


def csv_text(header, rows) -> str:
    """A whole CSV document (header row first) as text, through :class:`CsvWriter`."""
    import io
    buf = io.StringIO()
    w = CsvWriter(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def write_loads_csv(fh, table: dict) -> None:
    """The per-link load table (``link,src,dst,tier,gbps,load_gbps,util`` columns) as CSV into ``fh``.

    ``table`` is :meth:`topo.routing.engine.Analysis.loads_table`: the same numbers as
    ``topo analyze --loads`` always wrote (``gbps`` with ``%g``, load and
    utilisation with six significant digits), with node names quoted and guarded.
    """
    cols = list(table)
    w = CsvWriter(fh)
    w.writerow(cols)
    seen: dict = {}

    def name(n):
        g = seen.get(n)
        if g is None:
            g = seen[n] = csv_cell(n)
        return g
    for r in zip(*(table[c] for c in cols)):
        w.writerow_guarded([int(r[0]), name(r[1]), name(r[2]), name(r[3]), f"{float(r[4]):g}",
                            f"{float(r[5]):.6g}", f"{float(r[6]):.6g}"])


# --- Markdown -------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#~!@])")
# a '$' that could close inline math (pandoc, GitHub, markdown-it: the closing '$' has a
# non-space on its left); '$' after a space or at the start and before a digit ("$1,200")
# can only open one, and with every possible closer escaped no math is made
_MD_DOLLAR = re.compile(r"(?<![^\s])\$(?=\d)|(\$)")
_MD_SCHEME = re.compile(r"(?i)(?<=[a-z0-9+.\-]):(?=//)")
_MD_WWW = re.compile(r"(?i)(?<![a-z0-9])(www)\.")
_MD_EMOJI = re.compile(r"(?i)(?<![a-z0-9]):(?=[a-z_+\-][a-z0-9_+\-]*:)")
_MD_LEAD_SPACE = re.compile(r" +")
_MD_BLOCK_START = re.compile(r"([-+=])|(\d{1,9})([.)])")


def md_escape(text) -> str:
    """Text that a Markdown renderer shows as written: no emphasis, links, math, tables or HTML.

    Escapes ``\\ ` * _ [ ] | # ~ ! @`` with a backslash and ``& < >`` as
    entities; escapes ``$`` except a ``$`` that starts a word and precedes a
    digit (a price, which cannot close math); breaks URL, ``www.`` and e-mail
    auto-links (``https\\://``, ``www\\.``, ``\\@``); control characters become
    visible escapes and line breaks spaces (a table row stays one row).
    """
    t = str(text).replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    t = visible(t)
    t = t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    t = _MD_SPECIAL.sub(r"\\\1", t)
    t = _MD_DOLLAR.sub(lambda m: "\\$" if m.group(1) else "$", t)
    t = _MD_SCHEME.sub(r"\\:", t)
    t = _MD_EMOJI.sub(r"\\:", t)
    return _MD_WWW.sub(r"\1\\.", t)


def md_block(text) -> str:
    """:func:`md_escape` for text that starts a Markdown block (a paragraph).

    Also escapes what would open another block at the start: ``-``, ``+``,
    ``=``, ``1.``/``1)`` (a list or a heading underline) and leading spaces (an
    indented code block; written as ``&#32;``).
    """
    t = md_escape(text)
    m = _MD_LEAD_SPACE.match(t)
    lead = "&#32;" * (m.end() if m else 0)
    t = t[m.end():] if m else t
    m = _MD_BLOCK_START.match(t)
    if m:
        t = ("\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3)) + t[m.end():]
    return lead + t


# --- matplotlib, HTML, shell ------------------------------------------------------------------
def mpl_text(s) -> str:
    """A name as literal matplotlib text: controls made visible, ``$`` escaped (no mathtext).

    matplotlib reads text as mathtext only when it holds an unescaped ``$`` (with
    ``text.usetex`` off, which the report sets); it turns ``\\$`` back into
    ``$``, so the name is drawn exactly as written.
    """
    return visible(s).replace("$", "\\$")


def html_text(s) -> str:
    """A name as HTML text (controls visible, ``& < > " '`` escaped)."""
    from markupsafe import escape
    return str(escape(visible(s)))


def sh_quote(s) -> str:
    """One shell word holding ``s`` exactly (:func:`shlex.quote`)."""
    return shlex.quote(str(s))


# --- names a format can carry -----------------------------------------------------------------
SLURM_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
K8S_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_K8S_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
# XML 1.0 Char production (GraphML is XML)
_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def slurm_name_ok(s) -> bool:
    """A switch/node/block name Slurm's topology.conf and topology.yaml take: letters, digits, ``_ . -``."""
    return bool(SLURM_NAME.fullmatch(str(s)))


def dns_subdomain_ok(s) -> bool:
    """A Kubernetes object name / label-key prefix (DNS-1123 subdomain)."""
    s = str(s)
    return 0 < len(s) <= 253 and all(_DNS_LABEL.fullmatch(p) for p in s.split("."))


def k8s_label_key_ok(key) -> bool:
    """A Kubernetes label key: ``[prefix/]name``, prefix a DNS subdomain, name 1-63 of ``[A-Za-z0-9_.-]``."""
    key = str(key)
    prefix, _, name = key.rpartition("/")
    if "/" in key and not dns_subdomain_ok(prefix):
        return False
    return len(name) <= 63 and bool(_K8S_NAME.fullmatch(name))


def k8s_label_value_ok(v) -> bool:
    """A Kubernetes label value: at most 63 of ``[A-Za-z0-9_.-]``, alphanumeric at both ends (or empty)."""
    v = str(v)
    return len(v) <= 63 and bool(K8S_LABEL_VALUE.fullmatch(v))


def xml_text_ok(s) -> bool:
    """``s`` holds only characters XML 1.0 can carry (no C0 control but tab, LF, CR; no U+FFFE/FFFF)."""
    return not _XML_BAD.search(str(s))
