// CostModel: how long things take in the simulated cluster. Defaults are the
// Mooncake paper's (Table 1 / Eq. 1): LLaMA3-70B (l=80, d=8192, a=4, b=22,
// gqa=8, bf16) on 8xA800 (G = 8 x 312 TFLOPS), 128 GB/s host-to-device,
// 800 Gbps NIC, 2*l*d/gqa*2 B = 320 KB of KV per token.
//
//   prefill(n, p)  = l*(a*(n^2-p^2)*d + b*(n-p)*d^2) / (G*mfu)        Eq. 1, prefix p reused
//                  + p * kv_bytes / h2d_bw                             load the prefix into HBM
//   decode step(B, C) = overhead + weight_bytes/(hbm_bw*eff)          read weights once
//                     + C * kv_bytes / (hbm_bw*eff)                   read every KV in the batch
//                     + B * 2*params / (G*mfu_decode)                 per-token compute
//   transfer(t)    = latency + t * kv_bytes / (nic_bits/8)
//
// Every field can be overridden by a profile JSON file with the same keys (a
// profile measured on real crescent instances can replace the defaults).
//
// A measured profile (`crescent bench engine --profile-out`) replaces the two
// formulas by least-squares fits of an instance's own timings:
//   prefill(n, p)     = prefill_fixed_s + prefill_token_s*(n-p) + prefill_pair_s*(n^2-p^2)
//   decode step(B, C) = decode_fixed_s + decode_seq_s*B + decode_context_s*C
// (used when one of a formula's three is > 0), and kv_capacity_tokens,
// when > 0, is an instance's KV pool in tokens (instead of HBM minus weights).
// Values; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "conductor/estimators.h"

namespace crescent::sim {

struct CostProfile {
  // Model (Table 1).
  double layers = 80;
  double hidden = 8192;
  double a = 4;
  double b = 22;
  double gqa = 8;
  double dtype_bytes = 2;
  double params = 70.6e9;
  // Hardware (8 x A800 80 GB).
  double gpu_flops = 8 * 312e12;
  // Achieved fraction of G in prefill. Not in the paper: 0.25 puts the Figure 5
  // replay in the paper's regime (docs/simulator.md, "Calibration").
  double prefill_mfu = 0.25;
  double decode_mfu = 0.5;       // achieved fraction of G in decode's matmuls
  double hbm_bytes_per_s = 8 * 2.039e12;
  double hbm_efficiency = 0.8;
  double hbm_bytes = 8 * 80e9;
  double hbm_usable_fraction = 0.9;  // the rest: activations, workspace
  double h2d_bytes_per_s = 128e9;
  double nic_bits_per_s = 800e9;
  double transfer_latency_s = 0.001;
  double decode_step_overhead_s = 0.005;  // launch, sampling, scheduling per step
  // Serving geometry.
  double block_tokens = 512;     // the traces' hash block
  double chunk_tokens = 2048;    // coupled-chunked token budget per step
  // Prefix cache of a coupled (vLLM-like) instance, in tokens: a fixed share of
  // HBM beside the running requests' KV. -1: half of hbm_kv_tokens(); 0: none
  // (coupled-chunked then runs chunked prefill without prefix caching).
  double coupled_cache_tokens = -1;
  // Measured (see above); 0: the formulas.
  double prefill_fixed_s = 0, prefill_token_s = 0, prefill_pair_s = 0;
  double decode_fixed_s = 0, decode_seq_s = 0, decode_context_s = 0;
  double kv_capacity_tokens = 0;

  double kv_bytes_per_token() const { return 2 * layers * hidden / gqa * dtype_bytes; }
  double weight_bytes() const { return params * dtype_bytes; }
  // KV tokens an instance's HBM holds after the weights.
  int64_t hbm_kv_tokens() const;
  int64_t coupled_cache_token_capacity() const;

  // Eq. 1 FLOPs and seconds for computing tokens [p, n). p is clamped to n-1:
  // at least the last token is always computed.
  double PrefillFlops(int64_t n, int64_t p) const;
  double PrefillComputeSeconds(int64_t n, int64_t p) const;
  // Compute plus loading the reused prefix from DRAM (disaggregated prefill).
  double PrefillSeconds(int64_t n, int64_t p) const;
  double DecodeStepSeconds(int64_t batch, int64_t context_tokens) const;
  // One coupled step that computes prefill chunks taking `prefill_s` beside a
  // decode batch: the sum of the two, less the fixed cost of a step when both
  // are measured (one forward pass pays it once).
  double MixedStepSeconds(double prefill_s, int64_t batch, int64_t context_tokens) const;
  double TransferSeconds(int64_t tokens) const;
};

// Defaults overridden by the numeric fields of a JSON object; unknown keys are
// an error (a typo must not silently fall back to a default), except those
// starting with '_' (notes, the samples a measured profile was fitted to).
Result<CostProfile> ParseCostProfile(std::string_view json_text, std::string_view name);
Result<CostProfile> LoadCostProfile(const std::string& path);

// The Conductor's estimators, fitted by least squares to samples of this cost
// model (as the real cluster fits them to profiling runs). `with_prefix_load`
// selects PrefillSeconds (disaggregated) or PrefillComputeSeconds (coupled).
Result<conductor::Estimators> FitEstimators(const CostProfile& profile, bool with_prefix_load);

}  // namespace crescent::sim
