"""Traffic as flows: collectives, parallelism groups and patterns expanded to (source, destination,
bytes) demands at line rate, and queue admission (which jobs fit, in order).

Imports topo.model and topo.core only; nothing here routes.
"""
