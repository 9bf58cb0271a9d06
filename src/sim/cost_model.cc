#include "sim/cost_model.h"

#include <boost/json/value.hpp>

#include <algorithm>
#include <utility>
#include <vector>

#include "base/file.h"
#include "base/json.h"

namespace crescent::sim {

int64_t CostProfile::hbm_kv_tokens() const {
  if (kv_capacity_tokens > 0) return static_cast<int64_t>(kv_capacity_tokens);
  const double free_bytes = hbm_bytes * hbm_usable_fraction - weight_bytes();
  return std::max<int64_t>(0, static_cast<int64_t>(free_bytes / kv_bytes_per_token()));
}

int64_t CostProfile::coupled_cache_token_capacity() const {
  return coupled_cache_tokens >= 0 ? static_cast<int64_t>(coupled_cache_tokens) : hbm_kv_tokens() / 2;
}

double CostProfile::PrefillFlops(int64_t n, int64_t p) const {
  p = std::clamp<int64_t>(p, 0, n - 1);
  const double dn = static_cast<double>(n), dp = static_cast<double>(p);
  return layers * (a * (dn * dn - dp * dp) * hidden + b * (dn - dp) * hidden * hidden);
}

double CostProfile::PrefillComputeSeconds(int64_t n, int64_t p) const {
  if (prefill_fixed_s > 0 || prefill_token_s > 0 || prefill_pair_s > 0) {
    p = std::clamp<int64_t>(p, 0, n - 1);
    const double dn = static_cast<double>(n), dp = static_cast<double>(p);
    return prefill_fixed_s + prefill_token_s * (dn - dp) + prefill_pair_s * (dn * dn - dp * dp);
  }
  return PrefillFlops(n, p) / (gpu_flops * prefill_mfu);
}

double CostProfile::PrefillSeconds(int64_t n, int64_t p) const {
  p = std::clamp<int64_t>(p, 0, n - 1);
  return PrefillComputeSeconds(n, p) + static_cast<double>(p) * kv_bytes_per_token() / h2d_bytes_per_s;
}

double CostProfile::DecodeStepSeconds(int64_t batch, int64_t context_tokens) const {
  if (decode_fixed_s > 0 || decode_seq_s > 0 || decode_context_s > 0) {
    return decode_fixed_s + decode_seq_s * static_cast<double>(batch) +
           decode_context_s * static_cast<double>(context_tokens);
  }
  const double bw = hbm_bytes_per_s * hbm_efficiency;
  return decode_step_overhead_s + weight_bytes() / bw +
         static_cast<double>(context_tokens) * kv_bytes_per_token() / bw +
         static_cast<double>(batch) * 2 * params / (gpu_flops * decode_mfu);
}

double CostProfile::MixedStepSeconds(double prefill_s, int64_t batch, int64_t context_tokens) const {
  const bool measured = (prefill_fixed_s > 0 || prefill_token_s > 0 || prefill_pair_s > 0) &&
                        (decode_fixed_s > 0 || decode_seq_s > 0 || decode_context_s > 0);
  const double shared = measured ? std::min(prefill_fixed_s, decode_fixed_s) : 0.0;
  return prefill_s + DecodeStepSeconds(batch, context_tokens) - shared;
}

double CostProfile::TransferSeconds(int64_t tokens) const {
  if (tokens <= 0) return 0;
  return transfer_latency_s + static_cast<double>(tokens) * kv_bytes_per_token() / (nic_bits_per_s / 8);
}

Result<CostProfile> ParseCostProfile(std::string_view json_text, std::string_view name) {
  ASSIGN_OR_RETURN(boost::json::value v, ParseJson(json_text, name));
  CostProfile p;
  std::vector<std::pair<const char*, double*>> fields = {
      {"layers", &p.layers}, {"hidden", &p.hidden}, {"a", &p.a}, {"b", &p.b}, {"gqa", &p.gqa},
      {"dtype_bytes", &p.dtype_bytes}, {"params", &p.params}, {"gpu_flops", &p.gpu_flops},
      {"prefill_mfu", &p.prefill_mfu}, {"decode_mfu", &p.decode_mfu},
      {"hbm_bytes_per_s", &p.hbm_bytes_per_s}, {"hbm_efficiency", &p.hbm_efficiency},
      {"hbm_bytes", &p.hbm_bytes}, {"hbm_usable_fraction", &p.hbm_usable_fraction},
      {"h2d_bytes_per_s", &p.h2d_bytes_per_s}, {"nic_bits_per_s", &p.nic_bits_per_s},
      {"transfer_latency_s", &p.transfer_latency_s}, {"decode_step_overhead_s", &p.decode_step_overhead_s},
      {"block_tokens", &p.block_tokens}, {"chunk_tokens", &p.chunk_tokens},
      {"coupled_cache_tokens", &p.coupled_cache_tokens},
      {"prefill_fixed_s", &p.prefill_fixed_s}, {"prefill_token_s", &p.prefill_token_s},
      {"prefill_pair_s", &p.prefill_pair_s}, {"decode_fixed_s", &p.decode_fixed_s},
      {"decode_seq_s", &p.decode_seq_s}, {"decode_context_s", &p.decode_context_s},
      {"kv_capacity_tokens", &p.kv_capacity_tokens}};
  JsonReader r(v, std::string(name));
  RETURN_IF_ERROR(r.status());
  for (const auto& kv : *r.object()) {
    const std::string_view key(kv.key().data(), kv.key().size());
    if (key.starts_with('_')) continue;  // notes and measurements that came with the profile
    bool known = false;
    for (auto& [k, dst] : fields) {
      if (key != k) continue;
      known = true;
      *dst = r.Number(key);
    }
    if (!known) r.Fail(key, "unknown cost profile field");
  }
  RETURN_IF_ERROR(r.status());
  for (auto& [k, dst] : fields) {
    const std::string_view key = k;
    if (key == "coupled_cache_tokens") {
      if (*dst < 0 && *dst != -1) return InvalidArgument(std::string(name) + ": field '" + k + "': must be -1 or >= 0");
      continue;
    }
    const bool may_be_zero = key == "transfer_latency_s" || key == "decode_step_overhead_s" ||
                             (key.size() > 7 && (key.starts_with("prefill_") || key.starts_with("decode_")) &&
                              key.ends_with("_s")) ||
                             key == "kv_capacity_tokens";
    if (*dst < 0 || (*dst == 0 && !may_be_zero)) {
      return InvalidArgument(std::string(name) + ": field '" + k + "': must be positive");
    }
  }
  if (p.block_tokens < 1 || p.chunk_tokens < 1) return InvalidArgument(std::string(name) + ": token counts must be >= 1");
  return p;
}

Result<CostProfile> LoadCostProfile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseCostProfile(text, path);
}

Result<conductor::Estimators> FitEstimators(const CostProfile& profile, bool with_prefix_load) {
  std::vector<conductor::PrefillSample> ps;
  for (int64_t n = 128; n <= 256 * 1024; n *= 2) {
    for (int64_t q = 0; q < 4; ++q) {
      // p < n always (the cost model computes at least one token).
      const int64_t p = n * q / 4;
      ps.push_back({n, p, with_prefix_load ? profile.PrefillSeconds(n, p) : profile.PrefillComputeSeconds(n, p)});
    }
  }
  std::vector<conductor::DecodeSample> ds;
  for (int64_t batch : {1, 4, 16, 64, 256})
    for (int64_t ctx : {1000, 10000, 100000})
      ds.push_back({batch, batch * ctx, profile.DecodeStepSeconds(batch, batch * ctx)});
  conductor::Estimators e;
  ASSIGN_OR_RETURN(e.prefill, conductor::PrefillTimeEstimator::Fit(ps));
  ASSIGN_OR_RETURN(e.decode, conductor::DecodeStepEstimator::Fit(ds));
  e.transfer = conductor::TransferTimeEstimator{profile.kv_bytes_per_token(), profile.nic_bits_per_s / 8,
                                                profile.transfer_latency_s};
  return e;
}

}  // namespace crescent::sim
