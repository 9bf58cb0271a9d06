// `crescent bench engine`: prefill and decode throughput on a model, with the
// machine's streaming-read bandwidth and bf16 matmul peak measured in the same run,
// and the two ratios the project tracks:
//   decode_bandwidth_ratio = decode steps/s (batch 1) x weight bytes per step / bandwidth
//   prefill_peak_ratio     = prefill FLOP/s / matmul peak
#include <chrono>
#include <cstdio>
#include <memory>

#include <boost/json.hpp>

#include "base/logging.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "kernels/roofline.h"

namespace crescent::cli {

namespace {
double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct BenchOpts {
  std::string model;
  std::string dtype = "auto";
  int64_t prompt_len = 512, gen_len = 64;
  std::string batch = "1";
  bool json = false;
  uint64_t seed = 1;
};

struct Figures {
  double prefill_tps = 0, prefill_s = 0, prefill_flops = 0;
  std::vector<std::pair<int64_t, double>> decode_tps;  // batch -> tokens/s
};

std::vector<int32_t> RandomPrompt(int64_t len, int64_t vocab, engine::Rng& rng) {
  std::vector<int32_t> p(static_cast<size_t>(len));
  for (auto& t : p) t = static_cast<int32_t>(rng.Next() % static_cast<uint64_t>(vocab));
  return p;
}

// One prefill of `len` tokens; returns seconds.
double TimePrefill(engine::ModelRunner& runner, engine::KvPagePool& pool, const std::vector<int32_t>& prompt) {
  engine::SequenceKv kv;
  ThrowIfError(pool.Reserve(kv, static_cast<int64_t>(prompt.size())));
  std::vector<float> logits;
  engine::ForwardSeq s{prompt, 0, &kv, true};
  double t0 = Now();
  ThrowIfError(runner.Forward({&s, 1}, pool, &logits));
  double dt = Now() - t0;
  pool.Release(kv);
  return dt;
}

// Decode throughput at batch b: prefill b prompts, then gen_len greedy steps.
double TimeDecode(engine::ModelRunner& runner, engine::KvPagePool& pool, int64_t b, const BenchOpts& o,
                  engine::Rng& rng) {
  std::vector<engine::GenerateRequest> reqs(static_cast<size_t>(b));
  for (auto& r : reqs) {
    r.prompt = RandomPrompt(o.prompt_len, runner.config().vocab_size, rng);
    r.max_tokens = o.gen_len + 1;  // first token comes from prefill
    r.sampling.temperature = 0;
  }
  engine::GenerateTimings tm;
  ValueOrThrow(engine::GenerateBatch(runner, pool, reqs, &tm));
  return static_cast<double>(tm.decode_steps * b) / tm.decode_s;
}

}  // namespace

void RegisterBenchEngine(CLI::App& bench) {
  auto o = std::make_shared<BenchOpts>();
  CLI::App* cmd = bench.add_subcommand("engine", "Prefill and decode throughput vs memory bandwidth and matmul peak");
  cmd->add_option("--dtype", o->dtype, "Compute and KV dtype: auto | bfloat16 | float32");
  cmd->add_option("--model", o->model, "Model folder")->required();
  cmd->add_option("--prompt-len", o->prompt_len, "Prompt tokens")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--gen-len", o->gen_len, "Generated tokens per request")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--batch", o->batch, "Decode batch sizes, comma-separated (e.g. 1,8,32)");
  cmd->add_option("--seed", o->seed, "Prompt seed");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o] {
    std::vector<int64_t> batches = ValueOrThrow(ParseIntList(o->batch, "--batch"));
    auto runner = ValueOrThrow(LoadModel(o->model, o->dtype));
    const auto& cfg = runner->config();
    if (o->prompt_len + o->gen_len + 1 > cfg.max_position_embeddings) throw CommandError("prompt + gen length exceed the model's context");
    int64_t max_b = *std::max_element(batches.begin(), batches.end());
    const int64_t per_seq = engine::PagesFor(o->prompt_len + o->gen_len + 1, 16);
    engine::KvPagePool pool(runner->kv_shape(), per_seq * std::max<int64_t>(max_b, 2));
    engine::Rng rng(o->seed);

    LOG_INFO("measuring memory bandwidth and matmul peak");
    const double bw = kernels::MeasureReadBandwidthGBs();
    const double peak = kernels::MeasureMatmulBf16Gflops();

    LOG_INFO("prefill {} tokens", o->prompt_len);
    TimePrefill(*runner, pool, RandomPrompt(o->prompt_len, cfg.vocab_size, rng));  // warm-up
    double best = 1e30;
    for (int i = 0; i < 2; ++i) best = std::min(best, TimePrefill(*runner, pool, RandomPrompt(o->prompt_len, cfg.vocab_size, rng)));
    Figures f;
    f.prefill_s = best;
    f.prefill_tps = static_cast<double>(o->prompt_len) / best;
    f.prefill_flops = runner->ForwardFlops(0, o->prompt_len) / best;

    for (int64_t b : batches) {
      LOG_INFO("decode batch {}", b);
      f.decode_tps.emplace_back(b, TimeDecode(*runner, pool, b, *o, rng));
    }
    // The ratio is defined at batch 1; use the first batch size given.
    const int64_t b0 = f.decode_tps.front().first;
    const double steps_per_s = f.decode_tps.front().second / static_cast<double>(b0);
    const double wbytes = static_cast<double>(runner->weight_bytes_per_step());
    const double decode_ratio = steps_per_s * wbytes / (bw * 1e9);
    const double prefill_ratio = f.prefill_flops / (peak * 1e9);

    if (o->json) {
      boost::json::object out, by_batch;
      for (auto [b, tps] : f.decode_tps) by_batch[std::to_string(b)] = tps;
      out["model"] = o->model;
      out["prompt_len"] = o->prompt_len;
      out["gen_len"] = o->gen_len;
      out["prefill_tokens_per_s"] = f.prefill_tps;
      out["prefill_gflops"] = f.prefill_flops / 1e9;
      out["decode_tokens_per_s"] = f.decode_tps.front().second;
      out["decode_tokens_per_s_by_batch"] = by_batch;
      out["weight_bytes_per_step"] = wbytes;
      out["bandwidth_gb_per_s"] = bw;
      out["matmul_bf16_gflops"] = peak;
      out["decode_bandwidth_ratio"] = decode_ratio;
      out["prefill_peak_ratio"] = prefill_ratio;
      std::printf("%s\n", boost::json::serialize(out).c_str());
      return;
    }
    std::printf("model                 %s (%s, %.2f GB of weights per decode step)\n", o->model.c_str(),
                std::string(model::ArchitectureName(cfg.architecture)).c_str(), wbytes / 1e9);
    std::printf("memory bandwidth      %.1f GB/s (streaming read, 1 GiB, all cores)\n", bw);
    std::printf("bf16 matmul peak      %.1f GFLOP/s (oneDNN, 4096^3)\n", peak);
    std::printf("prefill               %.1f tokens/s (%lld tokens in %.3f s, %.1f GFLOP/s)\n", f.prefill_tps,
                static_cast<long long>(o->prompt_len), f.prefill_s, f.prefill_flops / 1e9);
    for (auto [b, tps] : f.decode_tps) std::printf("decode batch %-4lld     %.2f tokens/s\n", static_cast<long long>(b), tps);
    std::printf("decode_bandwidth_ratio %.3f  (batch %lld: %.2f steps/s x %.2f GB / %.1f GB/s)\n", decode_ratio,
                static_cast<long long>(b0), steps_per_s, wbytes / 1e9, bw);
    std::printf("prefill_peak_ratio     %.3f  (%.1f / %.1f GFLOP/s)\n", prefill_ratio, f.prefill_flops / 1e9, peak);
  });
}

}  // namespace crescent::cli
