"""Questions asked of a solved design: failure analysis (single failures, k-sets, planes, power feeds),
parameter sweeps and the executors that run their tasks (local processes or a Dask cluster).

Imports solve and the layers below; never an output format or the CLI.
"""
