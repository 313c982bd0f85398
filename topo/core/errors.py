"""Errors topo raises to its users, with the exit code the CLI gives each."""
from __future__ import annotations

import re

# C0 and C1 control characters (but tab, and newline, which separates errors), DEL, and the
# bidirectional overrides: shown escaped, so a name in a message cannot drive the terminal
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes (``\x1b`` for ESC)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                        else f"\\u{ord(m.group()):04x}", str(text))


class TopoError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""
    exit_code = 1


class SpecError(TopoError):
    """Input is wrong. ``errors`` is a list of (json_path, message)."""
    exit_code = 2

    def __init__(self, errors: list[tuple[str, str]], source: str = ""):
        self.errors = list(errors)
        self.source = source
        head = f"{printable(source)}: " if source else ""
        lines = [f"{head}{len(self.errors)} error(s) in input"] + [
            f"  {printable(p)}: {printable(m).replace(chr(10), ' ')}" for p, m in self.errors]
        super().__init__("\n".join(lines))

    def renamed(self, names: dict[str, str]) -> "SpecError":
        """The same errors with each path found in ``names`` replaced (the CLI names its flags
        where the library names its parameters: ``time_limit`` -> ``--time-limit``)."""
        def rename(path: str) -> str:
            head, sep, rest = re.match(r"([^.\[]*)(.?)(.*)", path, re.S).groups()
            return names[head] + sep + rest if head in names else path
        return SpecError([(rename(p), m) for p, m in self.errors], self.source)


class SolverError(TopoError):
    """A solver found nothing usable within its limits (exit code 1)."""
    exit_code = 1


class TimeLimitError(SolverError):
    """A solver ran out of time before it had an answer: says nothing about whether one exists."""
