"""Foundations every stage uses: topo's errors (with their exit codes), the bounds on every input
(limits), bounded file reading and parsing (inputs), text made safe for terminals, CSV, Markdown and
HTML (textsafe), signal handling (signals), atomic output files and directories (atomic) and JSON
conversion (jsonable).

Owns no model of a cluster. Must not import any other topo package.
"""
