#!/usr/bin/env bash
# Build the programs that read topo's exports, once, into a cache keyed by their sources' hash, and
# print the environment the conformance tests (tests/test_consumers.py) read:
#   eval "$(.ci/consumers.sh)"
# csg-htsim (htsim_ndp, htsim_eqds) and a loader built against the ASTRA-sim analytical network backend
# come from the sources in $TOPO_VENDOR_DIR (default: ../shared/vendor beside this checkout); Debian
# packages (g++/make, libyaml-cpp-dev, slurmctld, slurm-client, munge) are installed with apt-get where
# missing. A consumer that cannot be built is left out: its tests skip and say why.
# Progress and timings go to stderr; stdout carries only the export lines.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
vendor="${TOPO_VENDOR_DIR:-$(pwd)/../shared/vendor}"
cache_root="${TOPO_CONSUMERS_CACHE:-$HOME/.cache/topo-consumers}"
log() { echo "consumers: $*" >&2; }

if [ ! -d "$vendor" ]; then
  log "no consumer sources at $vendor (set TOPO_VENDOR_DIR); the conformance tests will skip"
  exit 0
fi

need=()
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
[ -d /usr/include/yaml-cpp ] || need+=(libyaml-cpp-dev)
command -v slurmctld >/dev/null 2>&1 || [ -x /usr/sbin/slurmctld ] || need+=(slurmctld)
command -v scontrol >/dev/null 2>&1 || need+=(slurm-client)
[ -x /usr/sbin/munged ] || need+=(munge)
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  log "installing ${need[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null) >&2 \
    || log "apt-get could not install ${need[*]}; the tests that need them will skip"
fi

# the cache key: every source file of the consumers and the loader, names and contents
key="$( (cd "$vendor" && find csg-htsim astra-network-analytical -type f -print0 | LC_ALL=C sort -z \
         | xargs -0 sha256sum; sha256sum "$repo/tests/consumers/astra_load_network.cpp" | cut -d' ' -f1) \
       | sha256sum | cut -c1-16)"
cache="$cache_root/$key"
mkdir -p "$cache"

start=$(date +%s)
htsim="$cache/csg-htsim/sim/datacenter"
if [ -x "$htsim/htsim_ndp" ] && [ -x "$htsim/htsim_eqds" ]; then
  log "csg-htsim: cached in $cache"
elif command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1; then
  rm -rf "$cache/csg-htsim"
  cp -R "$vendor/csg-htsim" "$cache/csg-htsim"
  if (cd "$cache/csg-htsim/sim" && make -j2 >/dev/null 2>&1 && cd datacenter \
      && make -j2 htsim_ndp htsim_eqds >/dev/null 2>&1); then
    log "csg-htsim: built in $(( $(date +%s) - start )) s"
  else
    log "csg-htsim: build failed; its tests will skip"
  fi
fi
[ -x "$htsim/htsim_ndp" ] && echo "export TOPO_HTSIM_DIR='$htsim'"

t=$(date +%s)
astra="$vendor/astra-network-analytical"
loader="$cache/astra_load_network"
if [ -x "$loader" ]; then
  log "ASTRA-sim loader: cached in $cache"
elif command -v g++ >/dev/null 2>&1 && [ -d /usr/include/yaml-cpp ]; then
  mapfile -d '' srcs < <(find "$astra/common" "$astra/congestion_unaware" "$astra/congestion_aware" \
                           -name '*.cpp' ! -name example.cpp -print0 | LC_ALL=C sort -z)
  if g++ -std=c++17 -O1 -I"$astra/include/astra-network-analytical" -I"$astra/include" -o "$loader.tmp" \
       tests/consumers/astra_load_network.cpp "${srcs[@]}" -lyaml-cpp >&2; then
    mv "$loader.tmp" "$loader"
    log "ASTRA-sim loader: built in $(( $(date +%s) - t )) s"
  else
    log "ASTRA-sim loader: build failed; its tests will skip"
  fi
fi
[ -x "$loader" ] && echo "export TOPO_ASTRA_LOADER='$loader'"
echo "export TOPO_ASTRA_ANALYTICAL_DIR='$astra'"

crd="$vendor/kueue/kueue.x-k8s.io_topologies.yaml"
[ -f "$crd" ] && echo "export TOPO_KUEUE_CRD='$crd'"
log "ready in $(( $(date +%s) - start )) s (cache $cache)"
