"""Every bound topo puts on its input, stated once.

Each limit is checked before anything it sizes is allocated, and a value over
it is refused with its JSON path (exit 2). The limits are generous for real
designs (a 1M-accelerator cluster is 8x under the endpoint limit) and tight
enough that no input can make topo allocate tens of GiB or run for minutes
before saying no. README.md ("Limits") lists them; tests/test_hardening.py and
tests/test_corpus.py check that they are enforced.
"""
from __future__ import annotations

MiB = 1024 * 1024

# --- files ------------------------------------------------------------------------------
MAX_CLUSTER_FILE_BYTES = 16 * MiB   # a cluster or sweep file (JSON or YAML), refused by size before parsing
MAX_PLAN_BYTES = 1024 * MiB         # a plan.json or placement.json
MAX_DATA_FILE_BYTES = 512 * MiB     # a traffic-matrix CSV, an edge list, a GraphML file
MAX_DEPTH = 64                      # nesting of objects and lists in any JSON or YAML input
MAX_VALUES = 1_000_000              # values in one parsed document, YAML aliases counted as expanded
MAX_CSV_FIELD = 4096                # characters in one CSV field
MAX_STRING = 65_536                 # characters in one string value (names are shorter, see below)

# --- names ------------------------------------------------------------------------------
MAX_NAME_LEN = 128                  # a cluster, node type, rack type, job, switch or accelerator name

# --- numbers ------------------------------------------------------------------------------
MAX_INT = 2 ** 53                   # any integer in a file (exact in a JSON double)
MAX_SEED = 2 ** 31 - 1              # goals.seed, traffic[].seed, --seed (CP-SAT takes a 32-bit seed)
MAX_WORKERS = 256                   # goals.workers, --workers
MAX_TIME_LIMIT_S = 7 * 24 * 3600.0  # goals.time_limit_s, --time-limit: one week per solver
MIN_GBPS, MAX_GBPS = 1e-3, 1e6      # any bandwidth: 1 Mb/s to 1 Pb/s
MAX_BYTES = 1e18                    # any byte count of a collective or traffic pattern (1 EB)
MAX_KW = 1e6                        # any power figure (a rack limit of 1 GW is already absurd)
MAX_METRES = 1e5                    # any length on the floor

# --- fabric sizes -----------------------------------------------------------------------
MAX_ENDPOINTS = 8 * 1024 * 1024     # endpoints of all racks together
MAX_PORTS = 32 * 1024 * 1024        # NIC ports of all nodes together (nodes x nics x nic_ports)
MAX_ACCELERATORS_PER_NODE = 1024
MAX_NICS_PER_NODE = 256
MAX_NIC_PORTS = 64                  # ports of one NIC
MAX_RADIX = 4096                    # ports of one switch
MAX_PLANES = 64
MAX_RACK_COUNT = MAX_ENDPOINTS      # racks[].count
MAX_HOSTLIST = MAX_ENDPOINTS        # names one hostlist expression may expand to
MAX_JOBS = 100_000
MAX_TRAFFIC_PATTERNS = 1_000
MAX_COLLECTIVES = 1_000             # per job

# --- transport (RoCE hashing: one hashed flow per (channel, queue pair) of each connection) ---
MAX_CHANNELS = 64                   # transport.channels, --channels
MAX_QPS_PER_CHANNEL = 1024          # transport.qps_per_channel (and qps_per_connection), --qps
MAX_QPS_PER_CONNECTION = 1024       # channels x qps_per_channel
MAX_HASHED_QPS = 64 * 1024 * 1024   # flows x channels x qps_per_channel routed by roce-hash at once
