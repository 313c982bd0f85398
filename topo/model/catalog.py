"""Hardware catalog: accelerators, node platforms, switches, optics and cables.

Owns the preset values and the public source of each one. Every value can be
overridden in the cluster file (``catalog:`` section); the spec merges overrides
over these presets once, at load time. Figures marked ``unverified`` could not
be checked against a primary source and are flagged in ``describe`` output.

This module holds data only; it must not import the rest of topo.
"""
from __future__ import annotations

# --- accelerators -----------------------------------------------------------
# scaleup_gbps: per-accelerator scale-up bandwidth, one direction, Gb/s.
ACCELERATORS: dict[str, dict] = {
    "H100": {
        "power_w": 700, "scaleup_gbps": 3600, "scaleup_domain": 8, "hbm_gb": 80,
        "source": "NVLink4 900 GB/s bidirectional, 700 W: https://haink.org/knowledge/compare/h100-vs-h200-vs-b200.html",
    },
    "B200": {
        "power_w": 1000, "scaleup_gbps": 7200, "scaleup_domain": 8, "hbm_gb": 192,
        "source": "NVLink5 1.8 TB/s, about 1,000 W: https://achoenix.github.io/optical_io/nvidia_system.html",
    },
    "GB200": {
        "power_w": 1200, "scaleup_gbps": 7200, "scaleup_domain": 72, "hbm_gb": 192,
        "source": "NVL72: 72 x 1.8 TB/s = 129.6 TB/s; ~120 kW per rack: https://setloop.io/blog/gb200-nvl72-architecture",
    },
    "MI300X": {
        "power_w": 750, "scaleup_gbps": 3584, "scaleup_domain": 8, "hbm_gb": 192,
        "source": "750 W, 192 GB: https://aiwiki.ai/wiki/amd_instinct_mi355x; Infinity Fabric ~896 GB/s unverified",
        "unverified": ["scaleup_gbps"],
    },
    "MI355X": {
        "power_w": 1400, "scaleup_gbps": 4280, "scaleup_domain": 8, "hbm_gb": 288,
        "source": "1,400 W liquid: https://www.tomshardware.com/pc-components/gpus/amds-instinct-mi355x-accelerator-will-consume-1-400-watts; IF ~1.07 TB/s derived, unverified",
        "unverified": ["scaleup_gbps"],
    },
    "MI450": {
        "power_w": 2000, "scaleup_gbps": 14400, "scaleup_domain": 72, "hbm_gb": 432,
        "source": "Helios: 72 GPUs, UALink 3.6 TB/s per GPU, 300 GB/s scale-out: https://www.theregister.com/2025/06/12/amd_helios_dc/; power unverified",
        "unverified": ["power_w"],
    },
}
ACCELERATORS["MI455X"] = dict(ACCELERATORS["MI450"])
# Added for examples/bytedance-megascale-12k.yaml (MegaScale ran on "more than 10,000 NVIDIA Ampere GPUs").
ACCELERATORS.update({
    "A100": {
        "power_w": 400, "scaleup_gbps": 2400, "scaleup_domain": 8, "hbm_gb": 80,
        "source": "A100 SXM4: NVLink gen 3 600 GB/s (bidirectional, so 300 GB/s = 2,400 Gb/s each way), 400 W TDP, "
                  "8 per HGX/p4d node: AWS EC2 accelerated-computing table, seen through "
                  "https://gist.github.com/shashankprasanna/10ebe6dc1ba1d8d93db17da4e2cc890e; 80 GB HBM2e: "
                  "https://huggingface.co/spaces/lambdabrendan/Lambda-LLM-Calculator/blob/main/data/gpu_specs.csv (secondary)",
    },
})

# --- node platforms (servers, trays) -------------------------------------------
# power_busy_kw / power_idle_kw: whole node at the wall. idle is an estimate
# (about a quarter of busy) unless stated.
PLATFORMS: dict[str, dict] = {
    "hgx-h100": {
        "accelerator": "H100", "accelerators": 8, "nics": 8, "nic_gbps": 400, "nic_ports": 1,
        "power_busy_kw": 10.2, "power_idle_kw": 2.6,
        "source": "DGX H100 about 10.2 kW, 1x400G per GPU: https://kshirol-dev.github.io/learnAI/AIInfrastructure/08-training-clusters.html (secondary)",
    },
    "hgx-b200": {
        "accelerator": "B200", "accelerators": 8, "nics": 8, "nic_gbps": 400, "nic_ports": 1,
        "power_busy_kw": 14.3, "power_idle_kw": 3.6,
        "source": "B200 about 1,000 W per GPU, 400G/800G NICs: https://docs.vultr.com/inference-cookbook/cuda/getting-started/hardware-overview; node power derived",
        "unverified": ["power_busy_kw"],
    },
    "mi300x-oam": {
        "accelerator": "MI300X", "accelerators": 8, "nics": 8, "nic_gbps": 400, "nic_ports": 1,
        "power_busy_kw": 10.5, "power_idle_kw": 2.7,
        "source": "8 x 750 W OAM + host, 400G per GPU; node power derived",
        "unverified": ["power_busy_kw"],
    },
    "mi355x-oam": {
        "accelerator": "MI355X", "accelerators": 8, "nics": 8, "nic_gbps": 400, "nic_ports": 1,
        "power_busy_kw": 14.0, "power_idle_kw": 3.5,
        "source": "8 x 1,400 W liquid: https://www.theregister.com/2025/06/12/amd_mi355x/; 400G Pollara unverified",
        "unverified": ["power_busy_kw", "nic_gbps"],
    },
    # Helios: 72 GPUs per rack, 300 GB/s (3 x 800G) scale-out per GPU; modelled
    # as 18 trays of 4 GPUs, scale-up domain = the rack.
    "helios-tray": {
        "accelerator": "MI450", "accelerators": 4, "nics": 12, "nic_gbps": 800, "nic_ports": 1,
        "power_busy_kw": 9.5, "power_idle_kw": 2.4,
        "source": "https://www.theregister.com/2025/06/12/amd_helios_dc/ (72 GPUs, 300 GB/s scale-out); tray power unverified",
        "unverified": ["power_busy_kw"],
    },
    "nvl72-tray": {
        "accelerator": "GB200", "accelerators": 4, "nics": 4, "nic_gbps": 400, "nic_ports": 1,
        "power_busy_kw": 6.3, "power_idle_kw": 1.6,
        "source": "NVL72 ~120 kW / 18 compute trays (+ switch trays): https://setloop.io/blog/gb200-nvl72-architecture; CX-7 400G per GPU unverified",
        "unverified": ["nic_gbps"],
    },
    "cpu-host": {
        "accelerator": None, "accelerators": 0, "nics": 1, "nic_gbps": 200, "nic_ports": 1,
        "power_busy_kw": 0.8, "power_idle_kw": 0.3,
        "source": "generic dual-socket front-end host; estimate",
        "unverified": ["power_busy_kw"],
    },
}
# Added for examples/bytedance-megascale-12k.yaml: eight 200G NICs per 8-GPU server (MegaScale, NSDI 2024, sec. 3.6).
PLATFORMS.update({
    "hgx-a100-8x200g": {
        "accelerator": "A100", "accelerators": 8, "nics": 8, "nic_gbps": 200, "nic_ports": 1,
        "power_busy_kw": 6.5, "power_idle_kw": 1.6,
        "source": "8 x A100 with one 200G NIC each: Jiang et al., MegaScale, NSDI 2024 (arXiv 2402.15627) sec. 3.6 "
                  "(\"eight 200G NICs on the server\"); node power is the DGX A100 maximum, 6.5 kW "
                  "(https://pcnews.ru/news/vycislitelnaa_sistema_nvidia_dgx_a100_ampere_osnasaetsa_sestu_blokami_pitania_po_3_kvt-985106.html, "
                  "secondary, citing NVIDIA's DGX A100 documentation); ByteDance does not publish its servers' power",
        "unverified": ["power_busy_kw"],
    },
})

# Arm server CPU node (for CPU agent tiers). One NVIDIA Grace CPU Superchip per node: two Grace
# dies of 72 Arm Neoverse V2 cores (144 cores), up to 960 GB LPDDR5X with ECC at up to 1 TB/s, a
# module TDP of 500 W (CPU and memory together). NVIDIA's own product page was not readable here; the
# figures agree across the secondary reports cited, hence unverified. power_busy_kw is the superchip's
# 500 W alone: the node's fans, drives and NIC are not counted (no node-level figure was found). The NIC
# is one 400G BlueField-3 class port (NVIDIA lists a single-port 400GbE BlueField-3, B3140L; HARDWARE.md has
# "1 x 400G (CX-7 / BF-3) typical" for a host NIC): a configuration choice, not a property of the CPU.
PLATFORMS.update({
    "grace-cpu-superchip": {
        "accelerator": None, "accelerators": 0, "nics": 1, "nic_gbps": 400, "nic_ports": 1,
        "power_busy_kw": 0.5, "power_idle_kw": 0.125,
        "cpu": "NVIDIA Grace CPU Superchip (Arm Neoverse V2)", "cpu_cores": 144, "memory_gb": 960,
        "tdp_w": 500,
        "source": "Grace CPU Superchip: 144 Neoverse V2 cores, up to 960 GB LPDDR5X, 1 TB/s, TDP 500 W: "
                  "https://hardwaretimes.com/nvidia-announces-grace-cpu-up-2x-faster-than-amd-epyc-and-intel-xeon-parts-with-better-power-efficiency/ ; "
                  "https://meterpreter.org/nvidia-introduces-grace-cpu-superchip-design (both secondary, reporting "
                  "NVIDIA's Hot Chips 2022 figures); 144 cores also in MLCommons inference v6.1 system "
                  "descriptions (host_processor_core_count of Grace nodes); 400G NIC: a BlueField-3 B3140L class host "
                  "NIC, \"400GbE / NDR IB, Single-port QSFP112, PCIe Gen5.0 x16\": "
                  "https://docs.nvidia.com/networking/display/BlueFieldDPUBSPv422/Supported+Platforms+and+Interoperability "
                  "(the NIC exists at 400G; one per Grace node is a configuration choice); "
                  "node power = the superchip's 500 W only; idle a quarter of busy (estimate)",
        "unverified": ["cpu_cores", "memory_gb", "tdp_w", "power_busy_kw", "power_idle_kw", "nic_gbps"],
    },
})

# --- switches -------------------------------------------------------------------
# latency_ns: port-to-port forwarding latency of one switch hop (cut-through, unloaded), used by the
# collective-time model's alpha term. No primary (vendor datasheet) figure was found for any preset, so
# every preset leaves it None: the model then counts no switch latency for that tier and says so
# (`topo analyze --explain`, the report); state catalog.switches.<name>.latency_ns from the vendor's
# datasheet to count it.
SWITCH_LATENCY_SOURCE = ("no primary source found for the presets (Broadcom and NVIDIA publish no port-to-port "
                         "latency for Tomahawk 4/5 or Spectrum-4 systems in the material read); set latency_ns "
                         "per switch model from its datasheet")
SWITCHES: dict[str, dict] = {
    "th5-64x800": {
        "radix": 64, "port_gbps": 800, "power_w": 1800, "cost_usd": 60000, "ru": 2, "latency_ns": None,
        "source": "Tomahawk 5, 51.2 Tb/s, 64x800G: https://chipcraft.tech/field-studies/broadcom-tomahawk5-switch; ASIC ~450-500 W; system power and price are estimates",
        "unverified": ["power_w", "cost_usd"],
    },
    "th5-128x400": {
        "radix": 128, "port_gbps": 400, "power_w": 1800, "cost_usd": 60000, "ru": 2, "latency_ns": None,
        "source": "Tomahawk 5 / Spectrum-4 SN5600, 51.2 Tb/s as 128x400G: https://convergedigest.blogspot.com/2022_08_21_archive.html; system power and price are estimates",
        "unverified": ["power_w", "cost_usd"],
    },
    "th4-64x400": {
        "radix": 64, "port_gbps": 400, "power_w": 1100, "cost_usd": 30000, "ru": 2, "latency_ns": None,
        "source": "Tomahawk 4, 25.6 Tb/s, 64x400G: https://www.tomshardware.com/news/broadcom-ships-first-256tbps-switch-on-7nm; power and price are estimates",
        "unverified": ["power_w", "cost_usd"],
    },
    "deep-buffer-576x400": {
        "radix": 576, "port_gbps": 400, "power_w": 16000, "cost_usd": 900000, "ru": 30, "latency_ns": None,
        "source": "Jericho-class chassis (Arista 7800 class), up to 576x400G; power and price are estimates",
        "unverified": ["power_w", "cost_usd"],
    },
}
# 102.4 Tb/s switch silicon (issue 13): the port configurations are public, a system's power and price are
# not, so these are reference figures, not presets (a preset needs power_w and cost_usd, and topo does not
# invent them). State such a switch inline in the cluster file (catalog.switches or tiers[].switch) with the
# vendor's power and price.
SWITCH_SILICON = {
    # Broadcom Tomahawk 6 (BCM78910 / BCM78914), shipping since June 2025: 102.4 Tb/s from 512 x 200G or
    # 1,024 x 100G SerDes, up to 64 x 1.6TbE, 3 nm.
    "tomahawk6": {
        "capacity_gbps": 102_400, "port_configs": [(64, 1600), (128, 800), (256, 400), (512, 200)],
        "source": "Tomahawk 6, 102.4 Tb/s, up to 64 x 1.6TbE: "
                  "https://www.servethehome.com/broadcom-tomahawk-6-launched-for-1-6tbe-generation/ ; Broadcom press "
                  "release 2025-06-03 via https://electronics-journal.com/news/96096-broadcom-ships-tomahawk-6-world%E2%80%99s-first-102-4-tbps-switch",
    },
}
# Not presets yet, with the reason:
# - NVIDIA Spectrum-4 SN5600: 64 x 800GbE, 128 x 400GbE or 256 x 200GbE
#   (https://docs.nvidia.com/networking/display/sn5000/data+interfaces); th5-64x800 / th5-128x400 above have
#   the same ports and stand for it (no SN5600 power or price was found, so a separate preset would only repeat
#   the th5 estimates).
# - NVIDIA Quantum-2 QM9700 (NDR InfiniBand, 64 x 400G in 32 OSFP cages, 1U:
#   https://docs.nvidia.com/networking/display/QM97X0PUB/Interfaces): an InfiniBand switch is not a candidate
#   for an Ethernet budget, and `--switch-choice catalog` does not tell protocols apart, so the DGX SuperPOD
#   examples (examples/dgx-superpod-*.yaml) define it in their own catalog section with this source.
# - NVIDIA Quantum-X800 (Q3400, XDR 800G) and Spectrum-X800 / Spectrum-6 102.4T: user manuals exist
#   (https://docs.nvidia.com/networking/display/XDRSwitchesHWUM/) but no port count could be read from a
#   primary source here.

# --- collective-time model (alpha term) ------------------------------------------------
# Signal propagation in fibre and twinax copper: about 200 m per microsecond (70% of c), 5 ns per metre.
PROPAGATION_NS_PER_M = 5.0
PROPAGATION_SOURCE = ("about 200,000 km/s (70% of the speed of light) in fibre, copper a little faster: "
                      "https://blog.ipspace.net/2021/04/switching-latency-relevant.html")
# Software + NIC overhead of one step of a collective over the network, in microseconds: NCCL's own tuner
# figure for a ring step over the network with its low-latency protocol (hwLat[NCCL_HW_NET][Ring][LL] = 2.7 us,
# NVIDIA/nccl src/graph/tuning.cc, commit 01afd20a77b5804e0ecf1042509dd9d20ebf9e93). NCCL fitted it on its
# reference systems, so it holds their switch hops and cables too: treated here as the host-side overhead
# only (unverified as such), which double counts at most those systems' few hops.
STEP_OVERHEAD_US = 2.7
STEP_OVERHEAD_SOURCE = ("NCCL tuner, hwLat[NET][Ring][LL] = 2.7 us per step: https://github.com/NVIDIA/nccl/blob/"
                        "01afd20a77b5804e0ecf1042509dd9d20ebf9e93/src/graph/tuning.cc (unverified as a pure "
                        "software + NIC figure)")

# --- optics and cables by reach class ------------------------------------------
# Reach classes in increasing reach. max_m is the longest link of the class.
# watts and cost are per link end (transceiver) for optics, per cable for copper;
# `ends` says how many units a link needs. Values for 800G; 400G parts are
# scaled by OPTIC_SPEED_SCALE below.
REACH_CLASSES = ("dac", "aec", "mmf", "smf_dr", "smf_fr")
OPTICS: dict[str, dict] = {
    "dac": {"max_m": 3.0, "watts": 0.1, "cost_usd": 150, "ends": 1,
            "source": "passive copper ~0 W, 0.5-3 m: https://docs.nvidia.com/networking/display/mcp4y10nxxx2x400pub",
            "unverified": ["cost_usd"]},
    "aec": {"max_m": 7.0, "watts": 12.0, "cost_usd": 600, "ends": 1,
            "source": "active electrical cable; power and price unverified",
            "unverified": ["watts", "cost_usd"]},
    "mmf": {"max_m": 50.0, "watts": 14.0, "cost_usd": 700, "ends": 2,
            "source": "800G DSP pluggable ~14-16 W: https://www.axiomupgrades.com/inside-the-stack-detail/800g-lpo-vs-dsp-in-ai-clusters-measured-power-thermal-load-and-failure-domains/",
            "unverified": ["cost_usd"]},
    "smf_dr": {"max_m": 500.0, "watts": 15.0, "cost_usd": 900, "ends": 2,
               "source": "800G DR8 single-mode, 100-500 m (MMS4X00-NS class); ~15 W DSP",
               "unverified": ["cost_usd"]},
    "smf_fr": {"max_m": 2000.0, "watts": 16.0, "cost_usd": 1200, "ends": 2,
               "source": "800G 2xFR4 2 km (MMS4X50-NM class); ~16 W",
               "unverified": ["cost_usd"]},
}
# Linear-drive pluggable: replaces DSP optics up to its reach where allowed.
LPO = {"max_m": 500.0, "watts": 8.5, "cost_usd": 650, "ends": 2,
       "source": "800G LPO ~8-9 W: https://www.axiomupgrades.com/inside-the-stack-detail/800g-lpo-vs-dsp-in-ai-clusters-measured-power-thermal-load-and-failure-domains/",
       "unverified": ["cost_usd"]}
# 400G parts draw and cost roughly 60% of 800G ones (assumption, unverified).
OPTIC_SPEED_SCALE = {800: 1.0, 400: 0.6, 200: 0.4, 100: 0.25, 1600: 1.6}


def optic_scale(gbps: float) -> float:
    """Price and power of a part at ``gbps`` against the 800G figures: the nearest speed in
    OPTIC_SPEED_SCALE (ties to the slower). Optic figures, the catalog's and a file's overrides alike,
    are 800G figures."""
    keys = sorted(OPTIC_SPEED_SCALE)
    return OPTIC_SPEED_SCALE[min(keys, key=lambda s: abs(s - gbps))]


def optic_part(optics: dict, reach_class: str, allow_lpo: bool) -> str:
    """The part a link of ``reach_class`` uses: linear-drive (``lpo``) in place of a DSP optic where
    LPO is allowed and its reach covers the whole class, else the class's own part."""
    if (allow_lpo and reach_class not in ("dac", "aec")
            and optics[reach_class].max_m <= optics["lpo"].max_m):
        return "lpo"
    return reach_class


# Reference figures for single parts: not read by the bill of materials, which prices a
# link by its reach class (OPTICS) and speed (OPTIC_SPEED_SCALE). They back the ranges above with primary
# sources where one exists, and say where none does (1.6T).
OPTIC_PARTS: dict[str, dict] = {
    "osfp-800g-2xdr4-smf": {
        "gbps": 800, "max_m": 500.0, "watts": 17.0,
        "source": "NVIDIA twin-port 800G single-mode OSFP: \"Twin-port single mode OSFP transceivers remain at 17 "
                  "Watts for all configurations\": https://docs.nvidia.com/networking/display/800gmms4x00nst/overview "
                  "(100 m part; the 2xDR4 500 m MMS4X00-NM-HGX and 2xFR4 2 km MMS4X50-NM are the same class)",
    },
    "osfp-800g-2xsr4-mmf": {
        "gbps": 800, "max_m": 50.0, "watts": 15.0,
        "source": "NVIDIA MMA4Z00-NS-T 800G twin-port multimode 50 m: \"remain at 15 Watts\": "
                  "https://docs.nvidia.com/networking/display/800gmma4z00nst/overview",
    },
    "osfp-400g-dr4-smf": {
        "gbps": 400, "max_m": 100.0, "watts": 9.0,
        "source": "NVIDIA MMS4X00-NS400 400G single-port OSFP DR4: 9 W maximum (5 W at 200G): "
                  "https://docs.nvidia.com/networking/display/mms4x00ns400/overview",
    },
    # 1.6T pluggables (OSFP, 8 x 200G lanes; DR8 500 m, 2xFR4 2 km). No vendor datasheet power was found; the
    # secondary figures agree on about 25 W, which OPTIC_SPEED_SCALE[1600] = 1.6 applied to the 800G classes
    # above (14-16 W) reproduces (22.4-25.6 W).
    "osfp-1600g-dr8-smf": {
        "gbps": 1600, "max_m": 500.0, "watts": 25.0,
        "source": "\"power efficiency below 25W per module\" (DR8 500 m, 2 km variants): "
                  "https://www.100gmodules.com/info/1-6t-optical-transceiver-suits-high-capacity-l-103197433.html ; "
                  "about 27 W at 17 pJ/bit: https://chinacryo.com.cn/en/4/2/2104564 (both secondary)",
        "unverified": ["watts"],
    },
    "osfp-1600g-2xfr4-smf": {
        "gbps": 1600, "max_m": 2000.0, "watts": 25.0,
        "source": "2 km 1.6T variant, same secondary sources as osfp-1600g-dr8-smf; no primary figure found",
        "unverified": ["watts"],
    },
}

# --- transports -------------------------------------------------------------------
TRANSPORTS: dict[str, dict] = {
    "roce": {
        # Eth 14 + IPv4 20 + UDP 8 + BTH 12 + ICRC 4 + FCS 4 = 62 B; preamble/SFD 8 + IFG 12.
        "header_bytes": 62, "wire_bytes": 20,
        "source": "https://pingdo.net/ai-infrastructure/roce-v2-header-overhead/ (field sizes per IBTA RoCEv2 annex)",
    },
    "uec": {
        # UET header sizes are unverified: modelled as RoCEv2's 62 B plus a 16 B
        # PDS/SES allowance. Override transport.header_bytes when known.
        "header_bytes": 78, "wire_bytes": 20,
        "source": "Ultra Ethernet 1.0 (June 2025): https://arxiv.org/html/2508.08906v1; header bytes unverified",
        "unverified": ["header_bytes"],
    },
    "ideal": {"header_bytes": 0, "wire_bytes": 0, "source": "no protocol overhead (reference)"},
}

# Rack defaults by cooling (kW): air ~30 kW practical, direct liquid 100-140 kW.
RACK_LIMIT_KW = {
    "air": {"kw": 30.0, "source": "https://michaelbommarito.com/wiki/datacenters/technology/rack-density"},
    "liquid": {"kw": 140.0, "source": "https://aiofthecoast.dcxps.com/p/warning-the-cooling-threshold-your"},
}

# Scale-up domains (added for issue 13): the largest domain each technology allows, with its source. A node
# type states its own domain (node_types[].scaleup.size, up to topo/limits.py's MAX_ENDPOINTS; a domain larger
# than a node spans nodes of one type in one rack), so these are reference limits, not defaults.
# gbps_per_accelerator is one direction, as ACCELERATORS[...]["scaleup_gbps"] (1.8 TB/s both ways = 7,200 Gb/s).
SCALEUP_DOMAINS: dict[str, dict] = {
    "nvlink5-nvl72": {
        "accelerators": 72, "gbps_per_accelerator": 7200,
        "source": "GB200 NVL72: 72 GPUs, 1.8 TB/s each, 130 TB/s per rack: https://setloop.io/blog/gb200-nvl72-architecture",
    },
    "nvlink5-max": {
        "accelerators": 576, "gbps_per_accelerator": 7200,
        "source": "NVLink (5th generation) connects at most 576 GPUs directly: https://reportify.ai/social-media/756305623073375 "
                  "(secondary, comparing UALink 1.0 with NVLink)",
        "unverified": ["accelerators"],
    },
    "ualink-helios": {
        "accelerators": 72, "gbps_per_accelerator": 14400,
        "source": "AMD Helios: 72 MI450 per rack, UALink 3.6 TB/s per GPU: https://www.theregister.com/2025/06/12/amd_helios_dc/",
    },
    "ualink-1.0": {
        "accelerators": 1024, "gbps_per_accelerator": None,
        "source": "UALink 200G 1.0 (April 2025): \"One UALink system supports up to 1,024 accelerators\", 200 GT/s per "
                  "lane, x1/x2/x4 links: https://www.tomshardware.com/tech-industry/ualink-has-nvidias-nvlink-in-the-crosshairs-final-specs-support-up-to-1-024-gpus-with-200-gt-s-bandwidth ; "
                  "https://en.wikipedia.org/wiki/UALink ; bandwidth per accelerator depends on the links a design "
                  "gives it (not a property of the specification)",
    },
}
