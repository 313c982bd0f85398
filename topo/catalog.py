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

# --- switches -------------------------------------------------------------------
SWITCHES: dict[str, dict] = {
    "th5-64x800": {
        "radix": 64, "port_gbps": 800, "power_w": 1800, "cost_usd": 60000, "ru": 2,
        "source": "Tomahawk 5, 51.2 Tb/s, 64x800G: https://chipcraft.tech/field-studies/broadcom-tomahawk5-switch; ASIC ~450-500 W; system power and price are estimates",
        "unverified": ["power_w", "cost_usd"],
    },
    "th5-128x400": {
        "radix": 128, "port_gbps": 400, "power_w": 1800, "cost_usd": 60000, "ru": 2,
        "source": "Tomahawk 5 / Spectrum-4 SN5600, 51.2 Tb/s as 128x400G: https://convergedigest.blogspot.com/2022_08_21_archive.html; system power and price are estimates",
        "unverified": ["power_w", "cost_usd"],
    },
    "th4-64x400": {
        "radix": 64, "port_gbps": 400, "power_w": 1100, "cost_usd": 30000, "ru": 2,
        "source": "Tomahawk 4, 25.6 Tb/s, 64x400G: https://www.tomshardware.com/news/broadcom-ships-first-256tbps-switch-on-7nm; power and price are estimates",
        "unverified": ["power_w", "cost_usd"],
    },
    "deep-buffer-576x400": {
        "radix": 576, "port_gbps": 400, "power_w": 16000, "cost_usd": 900000, "ru": 30,
        "source": "Jericho-class chassis (Arista 7800 class), up to 576x400G; power and price are estimates",
        "unverified": ["power_w", "cost_usd"],
    },
}

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
