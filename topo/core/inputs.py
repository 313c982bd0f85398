"""Reading input files safely: size first, strict UTF-8, bounded parsing.

Every file topo reads (cluster and sweep files, plans, placement files,
traffic-matrix CSVs, edge lists, GraphML) comes through here, so each is
refused by size before it is read, must be UTF-8 text, and parses into a tree
that is bounded in depth and in the number of values (YAML aliases counted as
expanded) and holds no non-finite number, no huge integer and no duplicate
key. Every refusal is a :class:`SpecError` naming the field that names the file
(or ``(file)``) and the limit; the message quotes the path and a line number,
never the file's contents.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from topo.core import limits
from topo.core.errors import SpecError


def read_bytes(path, field: str = "(file)", *, limit: int, what: str = "file", source: str = "") -> bytes:
    """The bytes of ``path``, refused when missing, not a regular file or over ``limit``."""
    p = Path(path)
    src = source or str(p)
    try:
        st = os.stat(p)
    except OSError as e:
        raise SpecError([(field, f"cannot read {what} {str(p)!r}: {e.strerror}")], src)
    import stat
    if stat.S_ISDIR(st.st_mode):
        raise SpecError([(field, f"{what} {str(p)!r} is a directory, not a file")], src)
    if stat.S_ISREG(st.st_mode) and st.st_size > limit:
        raise SpecError([(field, f"{what} {str(p)!r} is {st.st_size:,} bytes; topo reads at most {limit:,}")], src)
    try:
        with open(p, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as e:
        raise SpecError([(field, f"cannot read {what} {str(p)!r}: {e.strerror}")], src)
    if len(data) > limit:
        raise SpecError([(field, f"{what} {str(p)!r} is over {limit:,} bytes; topo reads at most {limit:,}")], src)
    return data


def decode(data: bytes, path, field: str = "(file)", what: str = "file", source: str = "") -> str:
    """UTF-8 text (a UTF-8 byte-order mark is dropped); anything else is refused."""
    src = source or str(path)
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:4] in (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00"):
        raise SpecError([(field, f"{what} {str(path)!r} is UTF-16 or UTF-32 text; save it as UTF-8")], src)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SpecError([(field, f"{what} {str(path)!r} is not UTF-8 text: byte 0x{data[e.start]:02x} "
                                 f"at line {line}")], src)
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise SpecError([(field, f"{what} {str(path)!r} holds a NUL character at line {line}; it is not a text file")],
                        src)
    return text


def read_text(path, field: str = "(file)", *, limit: int, what: str = "file", source: str = "") -> str:
    """:func:`read_bytes` then :func:`decode`."""
    return decode(read_bytes(path, field, limit=limit, what=what, source=source), path, field, what, source)


# --- JSON and YAML ----------------------------------------------------------------------
def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise _Duplicate(k)
        out[k] = v
    return out


class _Duplicate(ValueError):
    def __init__(self, key):
        super().__init__(key)
        self.key = key


def _bad_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise ValueError(f"{s[:40]} is too large for a floating-point number")
    return v


def _bounded_int(s: str) -> int:
    if len(s.lstrip("-")) > len(str(limits.MAX_INT)) or abs(int(s)) > limits.MAX_INT:
        raise ValueError(f"an integer of {len(s.lstrip('-'))} digits; topo reads integers up to {limits.MAX_INT:,}")
    return int(s)


def parse_json(text: str, source: str = "", walk: bool = True) -> Any:
    """JSON with duplicate keys, NaN/Infinity, overflowing numbers and huge integers
    refused; with ``walk`` the tree is also checked by :func:`check_tree` (depth,
    string sizes). Plans skip the walk: JSON has no aliases, so its size is bounded
    by the file's, and its numbers are checked as they are parsed."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_bad_constant,
                          parse_float=_finite_float, parse_int=_bounded_int)
    except json.JSONDecodeError as e:
        raise SpecError([("(file)", f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}")], source)
    except _Duplicate as e:
        raise SpecError([("(file)", f"key {_quote(e.key)} appears twice in one object")], source)
    except RecursionError:
        raise SpecError([("(file)", f"objects and lists nest too deep; topo reads at most {limits.MAX_DEPTH}")], source)
    except ValueError as e:  # NaN/Infinity, overflowing numbers, huge integers
        raise SpecError([("(file)", f"malformed JSON: {_first_line(e)}")], source)
    if walk:
        check_tree(data, source)
    return data


def parse_yaml(text: str, source: str = "") -> Any:
    """Safe YAML (no Python tags) with duplicate keys, deep nesting and alias bombs refused."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's C parser when present

    class _Loader(base):
        pass

    def mapping(loader, node, deep=False):
        loader.flatten_mapping(node)
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            try:
                dup = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value",
                                                        key_node.start_mark)
            if dup:
                raise yaml.constructor.ConstructorError(None, None, f"key {_quote(key)} appears twice in one mapping",
                                                        key_node.start_mark)
            seen.add(key)
        return loader.construct_mapping(node, deep=deep)

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        # the nesting depth first, from the parser's events (no recursion): composing a
        # deeper document would recurse (in C with libyaml, where it cannot be caught)
        depth = 0
        for ev in yaml.parse(text, Loader=base):
            if isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > limits.MAX_DEPTH:
                    m = ev.start_mark
                    raise SpecError([("(file)", f"mappings and lists nest more than {limits.MAX_DEPTH} deep "
                                                f"(line {m.line + 1}); topo reads at most {limits.MAX_DEPTH}")], source)
            elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise SpecError([("(file)", f"malformed YAML at {where}: {_first_line(getattr(e, 'problem', None) or e)}")],
                        source)
    except RecursionError:
        raise SpecError([("(file)", f"mappings and lists nest too deep; topo reads at most {limits.MAX_DEPTH}")], source)
    except (ValueError, OverflowError) as e:  # integers over Python's digit limit, dates out of range
        raise SpecError([("(file)", f"malformed YAML: {_first_line(e)}")], source)
    check_tree(data, source)
    return data


def check_tree(data: Any, source: str = "") -> None:
    """Refuse a parsed document that nests too deep, holds too many values (aliases
    counted as expanded), a non-finite float, an integer over ``MAX_INT`` or a
    string over ``MAX_STRING``; the error names the first offending value's path.

    A container reached again (a YAML alias) is not walked again: its expanded
    size and height are remembered, so the work is bounded by the document's
    text, not by its expansion."""
    memo: dict[int, tuple[int, int]] = {}  # id(container) -> (values, height)

    def fail(path, msg):
        raise SpecError([(_clip(path) or "(root)", msg)], source)

    def visit(v, path: str, depth: int) -> tuple[int, int]:
        if isinstance(v, (dict, list, tuple)):
            if depth > limits.MAX_DEPTH:
                fail(path, f"nests deeper than {limits.MAX_DEPTH} levels")
            seen = memo.get(id(v))
            if seen is not None:
                if depth + seen[1] > limits.MAX_DEPTH:
                    fail(path, f"nests deeper than {limits.MAX_DEPTH} levels")
                return seen
            n, h = 1, 0
            if isinstance(v, dict):
                items = []
                for k, x in v.items():
                    if not isinstance(k, (str, int, float, bool)) and k is not None:
                        fail(path, "a key must be a plain value")
                    key = str(k)
                    if len(key) > limits.MAX_STRING:
                        fail(path, f"a key is {len(key):,} characters; at most {limits.MAX_STRING:,}")
                    items.append((f"{path}.{key}" if path else key, x))
            else:
                items = [(f"{path}[{i}]", x) for i, x in enumerate(v)]
            for p, x in items:
                cn, ch = visit(x, p, depth + 1)
                n += cn
                h = max(h, ch + 1)
                if n > limits.MAX_VALUES:
                    raise SpecError([("(file)", f"the document holds more than {limits.MAX_VALUES:,} values "
                                                "(counting each use of a YAML alias); topo refuses it")], source)
            memo[id(v)] = (n, h)
            return n, h
        if isinstance(v, bool) or v is None:
            pass
        elif isinstance(v, int):
            if abs(v) > limits.MAX_INT:
                fail(path, f"integer of {len(str(abs(v)))} digits; at most {limits.MAX_INT:,}")
        elif isinstance(v, float):
            if not math.isfinite(v):
                fail(path, f"must be a finite number (found {v!r})")
        elif isinstance(v, str):
            if len(v) > limits.MAX_STRING:
                fail(path, f"a string of {len(v):,} characters; at most {limits.MAX_STRING:,}")
        return 1, 0

    visit(data, "", 0)


def parse(text: str, suffix: str, source: str = "") -> Any:
    """YAML for ``.yaml``/``.yml``, JSON otherwise."""
    if suffix in (".yaml", ".yml"):
        return parse_yaml(text, source)
    return parse_json(text, source)


def _clip(path: str) -> str:
    return path if len(path) <= 80 else path[:77] + "..."


def _quote(k) -> str:
    s = repr(k)
    return s if len(s) <= 40 else s[:37] + "..."


def _first_line(e) -> str:
    s = str(e).strip().splitlines()
    s = s[0] if s else type(e).__name__
    return s if len(s) <= 200 else s[:197] + "..."
