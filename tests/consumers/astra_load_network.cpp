// Loads an ASTRA-sim analytical network YAML with the backend's own parser and topology builders,
// and prints what they read: NPUs, then bandwidth (GB/s) and latency (ns) per dimension.
#include <iostream>
#include "common/NetworkParser.h"
#include "congestion_unaware/Helper.h"
#include "congestion_aware/Helper.h"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " network.yml" << std::endl;
        return 2;
    }
    const NetworkAnalytical::NetworkParser parser(argv[1]);
    const auto unaware = NetworkAnalyticalCongestionUnaware::construct_topology(parser);
    std::cout << "npus " << unaware->get_npus_count() << std::endl;
    std::cout << "dims " << unaware->get_dims_count() << std::endl;
    const auto npus = unaware->get_npus_count_per_dim();
    const auto bw = parser.get_bandwidths_per_dim();
    const auto lat = parser.get_latencies_per_dim();
    for (int i = 0; i < unaware->get_dims_count(); i++) {
        std::cout << "dim " << i << " npus " << npus[i] << " bandwidth " << bw[i] << " latency " << lat[i] << std::endl;
    }
    // the congestion-aware backend of this version builds one dimension only
    if (parser.get_dims_count() == 1) {
        const auto aware = NetworkAnalyticalCongestionAware::construct_topology(parser);
        std::cout << "aware npus " << aware->get_npus_count() << std::endl;
    }
    return 0;
}
