// The machine's limits, measured in the same run as the figure they judge
// (DESIGN.md: bandwidth swings 2-4x with load, so a ratio needs both sides now).
// Each call takes a fraction of a second to a few seconds; not for hot paths.
#pragma once

#include <cstdint>

namespace crescent::kernels {

// Streaming-read bandwidth in GB/s (1e9 bytes/s): all cores summing a buffer
// of `bytes` (>= 1 GiB by default, in huge pages as weights are) that was
// written first; best of `repeats` passes of each of three read patterns
// (loads as fast as they issue; one line per two dependent FMAs, in one and in
// two streams per thread), because the fastest loop is not what memory
// serves best on every host.
double MeasureReadBandwidthGBs(int64_t bytes = int64_t{1} << 30, int repeats = 5);

// oneDNN bf16 matmul throughput in GFLOP/s for [n x n] x [n x n] with weights in
// the blocked layout, f32 output; best of `repeats`.
double MeasureMatmulBf16Gflops(int64_t n = 4096, int repeats = 3);

}  // namespace crescent::kernels
