// Baselines that `crescent bench transfer` measures in the same run as the
// transfer engine: UCX's own ucx_perftest (server and client subprocesses on
// 127.0.0.1 with the same UCX transports and settings) and a plain TCP socket
// stream over loopback. Thread-safety: free functions, no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace crescent::cli {

struct PerftestOptions {
  std::string transports;  // UCX_TLS
  std::string net_devices = "lo";
  std::vector<std::pair<std::string, std::string>> ucx_settings;  // extra UCX_<name>=value
  bool read = false;  // ucp_get instead of ucp_put_bw
  uint64_t size = 0;
  int64_t iterations = 0;
};

// ucx_perftest's overall bandwidth in GB/s (1e9 bytes). Unavailable when the
// tool is missing or its run fails.
Result<double> RunUcxPerftest(const PerftestOptions& options);

// One TCP stream over 127.0.0.1 (a sender and a receiver thread, writes of
// `size` bytes, at least `total_bytes` moved); GB/s.
Result<double> TcpSocketBandwidth(uint64_t size, uint64_t total_bytes);

}  // namespace crescent::cli
