"""Slurm-style hostlist expressions: ``n[0001-0004,0009]`` <-> names.

Owns only string handling; knows nothing about fabrics.
"""
from __future__ import annotations

import re

from topo.core.limits import MAX_HOSTLIST

_BRACKET = re.compile(r"^(.*?)\[([^\]]+)\](.*)$")


def count(expr: str) -> int:
    """How many names ``expr`` expands to, without expanding it (ValueError if malformed)."""
    m = _BRACKET.match(expr)
    if not m:
        return 1
    n = 0
    for part in m.group(2).split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            if not (a.isdigit() and b.isdigit()) or len(a) > 18 or len(b) > 18 or int(b) < int(a):
                raise ValueError(f"bad range {part!r} in hostlist {expr!r}")
            n += int(b) - int(a) + 1
        else:
            if not part.isdigit() or len(part) > 18:
                raise ValueError(f"bad index {part!r} in hostlist {expr!r}")
            n += 1
    return n


def expand(expr: str, limit: int = MAX_HOSTLIST) -> list[str]:
    """Expand one hostlist expression (one bracket group, comma ranges) to names.

    Refuses (ValueError) an expression of more than ``limit`` names before
    expanding anything."""
    n = count(expr)
    if n > limit:
        raise ValueError(f"hostlist {expr[:60]!r} names {n:,} nodes; at most {limit:,}")
    m = _BRACKET.match(expr)
    if not m:
        return [expr]
    prefix, body, suffix = m.groups()
    out = []
    for part in body.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            w = len(a) if a.startswith("0") or len(a) == len(b) else 0
            out += [f"{prefix}{i:0{w}d}{suffix}" for i in range(int(a), int(b) + 1)]
        else:
            out.append(f"{prefix}{part}{suffix}")
    return out


def collect(names: list[str]) -> str:
    """Compress names sharing a prefix and zero-padded numeric suffix into ranges.

    ``collect(expand(x))`` gives back an equivalent expression; names that do
    not fit one ``prefix + digits`` pattern are joined with commas.
    """
    if not names:
        return ""
    groups: dict[tuple[str, int], list[int]] = {}
    plain: list[str] = []
    for n in names:
        m = re.match(r"^(.*?)(\d+)$", n)
        if not m:
            plain.append(n)
            continue
        groups.setdefault((m.group(1), len(m.group(2))), []).append(int(m.group(2)))
    parts = []
    for (prefix, width), nums in groups.items():
        nums = sorted(set(nums))
        ranges, start, prev = [], nums[0], nums[0]
        for x in nums[1:] + [None]:
            if x is not None and x == prev + 1:
                prev = x
                continue
            ranges.append(f"{start:0{width}d}" if start == prev else f"{start:0{width}d}-{prev:0{width}d}")
            if x is not None:
                start = prev = x
        parts.append(f"{prefix}{ranges[0]}" if len(ranges) == 1 and "-" not in ranges[0] else f"{prefix}[{','.join(ranges)}]")
    return ",".join(parts + plain)
