// `crescent bench engine`: prefill and decode throughput of the serving engine,
// with the machine's limits measured in the same run, and the ratios we track:
//   decode_bandwidth_ratio = decode steps/s at batch 1 x weight bytes per step / bandwidth
//   prefill_peak_ratio     = prefill FLOP/s (prompt-len tokens) / bf16 matmul peak
// plus decode tokens/s by batch size, the time to first token of long prompts
// (one step, and in the server's own step budget, with the FLOPs split into
// attention and matmuls), a prompt with a given fraction already in the prefix
// cache, optionally the chunk-size sweep (TTFT of a long prompt against the
// stall of requests decoding beside it), and decode attention's KV read rate
// at a long context against a bandwidth probe taken beside it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>

#include <boost/json.hpp>

#include "base/logging.h"
#include "base/file.h"
#include "cli/cli_decode_ratio.h"
#include "cli/cli_engine_probe.h"
#include "cli/cli_long_context.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "engine/engine.h"
#include "engine/output_queue.h"
#include "kernels/attention.h"
#include "kernels/roofline.h"

namespace crescent::cli {

namespace {

struct BenchOpts {
  std::string model, dtype = "auto", quantization, batch = "1", prefix_hit = "0,0.9", ttft_lens = "4096", chunk_sweep;
  int64_t prompt_len = 512, gen_len = 64, sweep_prompt = 8192, decode_attention_ctx = 32768;
  uint64_t seed = 1;
  bool json = false;
  std::string profile_out;
  int ratio_pairs = 5;
};

}  // namespace

void RegisterBenchEngine(CLI::App& bench) {
  auto o = std::make_shared<BenchOpts>();
  CLI::App* cmd = bench.add_subcommand("engine", "Prefill and decode throughput vs memory bandwidth and matmul peak");
  cmd->add_option("--model", o->model, "Model folder or .gguf file")->required();
  cmd->add_option("--dtype", o->dtype, "auto | bfloat16 | float32");
  cmd->add_option("--quantization", o->quantization, "Quantize the weights at load: q8_0 | q4_k_m | q5_k_m | q4_0 | q4_k | q5_k | q6_k (GGUF tensors keep their types)");
  cmd->add_option("--ratio-pairs", o->ratio_pairs, "Decode runs, each between two bandwidth probes, for the decode ratio")
      ->check(CLI::Range(1, 50));
  cmd->add_option("--prompt-len", o->prompt_len, "Prompt tokens")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--gen-len", o->gen_len, "Generated tokens per request")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--batch", o->batch, "Decode batch sizes, comma-separated (e.g. 1,8,32)");
  cmd->add_option("--prefix-hit", o->prefix_hit, "Cached fractions for the TTFT test, comma-separated (e.g. 0,0.9)");
  cmd->add_option("--ttft-prompt-len", o->ttft_lens,
                  "Prompt lengths of the TTFT test, comma-separated (e.g. 4096,16384,32768; 0 = skip); the prefix-hit "
                  "points use the first");
  cmd->add_option("--chunk-sweep", o->chunk_sweep,
                  "Step budgets (max_num_batched_tokens) to compare, comma-separated (e.g. 256,512,1024,2048): "
                  "TTFT of a --sweep-prompt-len prompt against the token gaps of 4 requests decoding beside it");
  cmd->add_option("--sweep-prompt-len", o->sweep_prompt, "Prompt tokens of the chunk sweep")
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 20));
  cmd->add_option("--decode-attention-ctx", o->decode_attention_ctx,
                  "Context of the decode attention read-rate probe (0 = skip)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  cmd->add_option("--seed", o->seed, "Prompt seed");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->add_option("--profile-out", o->profile_out,
                  "Also measure prefill(n, prefix) and decode step(batch, context) and write the fitted cost "
                  "profile `crescent simulate --profile` reads");
  cmd->callback([o] {
    std::vector<int64_t> batches = ValueOrThrow(ParseIntList(o->batch, "--batch"));
    std::vector<double> hits;
    for (const auto& part : CLI::detail::split(o->prefix_hit, ',')) {
      double h = -1;
      try {
        h = std::stod(part);
      } catch (...) {
      }
      if (!(h >= 0 && h < 1)) throw CommandError("--prefix-hit: '" + part + "' is not a fraction in [0, 1)");
      hits.push_back(h);
    }
    std::vector<int64_t> ttft_lens;
    if (o->ttft_lens != "0") ttft_lens = ValueOrThrow(ParseIntList(o->ttft_lens, "--ttft-prompt-len"));
    std::vector<int64_t> sweep;
    if (!o->chunk_sweep.empty()) sweep = ValueOrThrow(ParseIntList(o->chunk_sweep, "--chunk-sweep"));
    const int64_t ttft_max = ttft_lens.empty() ? 0 : *std::max_element(ttft_lens.begin(), ttft_lens.end());
    const int64_t ttft_first = ttft_lens.empty() ? 0 : ttft_lens.front();
    auto runner = ValueOrThrow(LoadModel(o->model, o->dtype, o->quantization));
    const auto cfg = runner->config();
    const int64_t max_b = *std::max_element(batches.begin(), batches.end());
    const int64_t longest = std::max({o->prompt_len + o->gen_len + 1, ttft_max + 1,
                                      sweep.empty() ? int64_t{0} : o->sweep_prompt + 1});
    if (longest > cfg.max_position_embeddings) throw CommandError("the prompts exceed the model's context");
    const double wbytes = static_cast<double>(runner->weight_bytes_per_step());
    const double prefill_flops = runner->ForwardFlops(0, o->prompt_len);
    std::vector<double> len_flops;
    for (int64_t n : ttft_lens) len_flops.push_back(runner->ForwardFlops(0, n));
    const DType cfg_kv_dtype = runner->kv_shape().dtype;
    const int64_t page_bytes = runner->kv_shape().page_bytes();

    LOG_INFO("measuring memory bandwidth and matmul peak");
    double bw = kernels::MeasureReadBandwidthGBs();
    const double peak = kernels::MeasureMatmulBf16Gflops();

    engine::EngineOptions eo;
    eo.max_num_seqs = std::max<int64_t>(max_b, o->profile_out.empty() ? 1 : 16);
    eo.max_num_batched_tokens = std::max<int64_t>({2048, o->prompt_len, ttft_max});
    const int64_t tokens = max_b * (o->prompt_len + o->gen_len + 16) + 3 * (ttft_max + 16) +
                           (o->profile_out.empty() ? 0 : 16 * (1024 + 64) + 3 * 2048);
    eo.kv_cache_bytes = (tokens / 16 + 8) * page_bytes;
    std::unique_ptr<engine::Engine> e = ValueOrThrow(engine::Engine::Create(std::move(runner), nullptr, eo));
    PromptMaker pm(o->seed, cfg.vocab_size);

    LOG_INFO("prefill {} tokens", o->prompt_len);
    TimeToFirstToken(*e, pm.Make(o->prompt_len));  // warm-up: oneDNN primitives for this shape
    double prefill_s = 1e30;
    for (int i = 0; i < 2; ++i) prefill_s = std::min(prefill_s, TimeToFirstToken(*e, pm.Make(o->prompt_len)).first);
    std::vector<std::pair<int64_t, double>> decode;
    DecodeRatio ratio;
    for (int64_t b : batches) {
      LOG_INFO("decode batch {}", b);
      if (b == batches.front()) {
        // The ratio's two sides drift with the host's memory speed: pairs of a
        // run and the probes right beside it, the median of their ratios
        // (cli/cli_decode_ratio.h).
        ratio = MeasureDecodeRatio(*e, pm, b, o->prompt_len, o->gen_len, wbytes, o->ratio_pairs);
        decode.emplace_back(b, ratio.tokens_per_s);
        bw = ratio.bandwidth;
        continue;
      }
      decode.emplace_back(b, DecodeRate(*e, pm, b, o->prompt_len, o->gen_len));
    }
    std::vector<std::tuple<double, double, int64_t>> ttft;  // hit, seconds, cached tokens
    std::vector<double> one_step(ttft_lens.size(), 0);       // TTFT of each length in one step
    if (!ttft_lens.empty()) {
      TimeToFirstToken(*e, pm.Make(ttft_first));  // warm-up
      for (double h : hits) {
        LOG_INFO("time to first token, {} tokens, {:.0f}% cached", ttft_first, h * 100);
        std::vector<int32_t> prompt = pm.Make(ttft_first);
        const int64_t shared = static_cast<int64_t>(h * static_cast<double>(ttft_first));
        if (shared > 0) TimeToFirstToken(*e, std::vector<int32_t>(prompt.begin(), prompt.begin() + shared));
        auto [s, cached] = TimeToFirstToken(*e, prompt);
        ttft.emplace_back(h, s, cached);
      }
      for (size_t i = 0; i < ttft_lens.size(); ++i) {
        LOG_INFO("time to first token, {} tokens in one step", ttft_lens[i]);
        one_step[i] = TimeToFirstToken(*e, pm.Make(ttft_lens[i])).first;
      }
    }
    if (!o->profile_out.empty()) {
      LOG_INFO("measuring the cost profile");
      const int64_t max_prompt = std::min<int64_t>({2048, eo.max_num_batched_tokens, cfg.max_position_embeddings - 40});
      if (max_prompt < 64) throw CommandError("--profile-out: the model's context is too short to profile");
      boost::json::object prof = MeasureCostProfile(*e, pm, max_prompt,
                                                    std::min<int64_t>(16, eo.max_num_seqs),
                                                    engine::EngineOptions{}.max_num_batched_tokens);
      prof["_kv_bytes_per_token"] = static_cast<double>(page_bytes) / static_cast<double>(eo.page_tokens);
      ThrowIfError(WriteFileAtomic(o->profile_out, boost::json::serialize(prof) + "\n"));
      LOG_INFO("cost profile written to {}", o->profile_out);
    }
    // The server's step budget: a fresh engine (the budget is fixed at creation).
    const int64_t server_budget = engine::EngineOptions{}.max_num_batched_tokens;
    auto engine_with_budget = [&](int64_t budget, int64_t tokens_held) {
      e.reset();
      engine::EngineOptions so;
      so.max_num_seqs = 8;
      so.max_num_batched_tokens = budget;
      so.kv_cache_bytes = (tokens_held / 16 + 64) * page_bytes;
      e = ValueOrThrow(engine::Engine::Create(ValueOrThrow(LoadModel(o->model, o->dtype, o->quantization)), nullptr, so));
      TimeToFirstToken(*e, pm.Make(std::min<int64_t>(budget, 512)));  // warm-up
    };
    std::vector<double> served(ttft_lens.size(), 0);  // TTFT of each length in server-sized steps
    if (!ttft_lens.empty()) {
      engine_with_budget(server_budget, ttft_max + 64);
      for (size_t i = 0; i < ttft_lens.size(); ++i) {
        LOG_INFO("time to first token, {} tokens in {}-token steps", ttft_lens[i], server_budget);
        served[i] = TimeToFirstToken(*e, pm.Make(ttft_lens[i])).first;
      }
    }
    std::vector<std::pair<int64_t, StallProbe>> stalls;
    for (int64_t budget : sweep) {
      LOG_INFO("chunk sweep: step budget {}, a {}-token prompt beside 4 decoding requests", budget, o->sweep_prompt);
      engine_with_budget(budget, o->sweep_prompt + 4 * (o->prompt_len + 4096));
      stalls.emplace_back(budget, MeasureDecodeStall(*e, pm, 4, o->prompt_len, o->sweep_prompt, 4096));
    }
    e.reset();
    std::vector<double> attn_gflops(ttft_lens.size(), 0);  // one layer's prefill attention, server-sized steps
    for (size_t i = 0; i < ttft_lens.size(); ++i) {
      LOG_INFO("prefill attention of one layer, {} tokens in {}-token steps", ttft_lens[i], server_budget);
      attn_gflops[i] = PrefillAttentionGflops(cfg, ttft_lens[i], server_budget);
    }
    double attn_gbs = 0, attn_bw = 0;
    if (o->decode_attention_ctx > 0) {
      LOG_INFO("decode attention over {} tokens of KV", o->decode_attention_ctx);
      const double bw1 = kernels::MeasureReadBandwidthGBs();
      attn_gbs = DecodeAttentionGBs(cfg, o->decode_attention_ctx);
      attn_bw = std::max(bw1, kernels::MeasureReadBandwidthGBs());
    }
    const double rate512 = static_cast<double>(o->prompt_len) / prefill_s;  // tokens/s at --prompt-len
    const int64_t b0 = decode.front().first;
    const double steps_per_s = decode.front().second / static_cast<double>(b0);
    const double decode_ratio = ratio.median;
    const double prefill_ratio = prefill_flops / prefill_s / (peak * 1e9);
    const double prefill_tps = static_cast<double>(o->prompt_len) / prefill_s;

    if (o->json) {
      boost::json::object out, by_batch, by_hit;
      for (auto [b, tps] : decode) by_batch[std::to_string(b)] = tps;
      for (auto [h, s, cached] : ttft) {
        char key[32];
        std::snprintf(key, sizeof(key), "%g", h);
        by_hit[key] = s;
      }
      out["model"] = o->model;
      out["prompt_len"] = o->prompt_len;
      out["gen_len"] = o->gen_len;
      out["prefill_tokens_per_s"] = prefill_tps;
      out["prefill_gflops"] = prefill_flops / prefill_s / 1e9;
      out["decode_tokens_per_s"] = decode.front().second;
      out["decode_tokens_per_s_by_batch"] = by_batch;
      out["ttft_prompt_len"] = ttft_first;
      out["ttft_s_by_prefix_hit"] = by_hit;
      boost::json::array long_ctx;
      for (size_t i = 0; i < ttft_lens.size(); ++i) {
        const int64_t n = ttft_lens[i];
        const PrefillFlops f = SplitPrefillFlops(cfg, len_flops[i], n);
        long_ctx.push_back(boost::json::object{{"prompt_len", n},
                                               {"ttft_s_server_steps", served[i]},
                                               {"ttft_s_one_step", one_step[i]},
                                               {"step_budget", server_budget},
                                               {"attention_flops", f.attention},
                                               {"matmul_flops", f.matmul},
                                               {"attention_gflops", attn_gflops[i]},
                                               {"vs_prompt_len_rate", served[i] * rate512 / static_cast<double>(n)}});
      }
      out["long_prompts"] = long_ctx;
      boost::json::array sw;
      for (const auto& [b, st] : stalls) {
        sw.push_back(boost::json::object{{"step_budget", b},
                                         {"ttft_s", st.ttft_s},
                                         {"decode_gap_max_s", st.decode_gap_max_s},
                                         {"decode_gap_mean_s", st.decode_gap_mean_s},
                                         {"decode_gap_before_s", st.decode_gap_before_s}});
      }
      out["chunk_sweep"] = sw;
      out["decode_attention_ctx"] = o->decode_attention_ctx;
      out["decode_attention_gb_per_s"] = attn_gbs;
      out["decode_attention_bandwidth_gb_per_s"] = attn_bw;
      out["weight_bytes_per_step"] = wbytes;
      out["bandwidth_gb_per_s"] = bw;
      out["matmul_bf16_gflops"] = peak;
      out["decode_bandwidth_ratio"] = ratio.trusted ? boost::json::value(decode_ratio) : boost::json::value(nullptr);
      out["decode_ratio_trusted"] = ratio.trusted;
      if (!ratio.trusted) out["decode_ratio_why"] = ratio.why;
      boost::json::array pairs;
      for (const auto& p : ratio.pairs) {
        pairs.push_back(boost::json::object{{"tokens_per_s", p.tokens_per_s}, {"bw_before", p.bw_before},
                                            {"bw_after", p.bw_after}, {"ratio", p.ratio}});
      }
      out["decode_ratio_pairs"] = pairs;
      out["decode_ratio_min"] = ratio.min;
      out["decode_ratio_max"] = ratio.max;
      out["other_load_cores"] = ratio.other_load_cores;
      out["prefill_peak_ratio"] = prefill_ratio;
      std::printf("%s\n", boost::json::serialize(out).c_str());
      return;
    }
    std::printf("model                  %s (%s, %.2f GB of weights per decode step)\n", o->model.c_str(),
                std::string(model::ArchitectureName(cfg.architecture)).c_str(), wbytes / 1e9);
    std::printf("memory bandwidth       %.1f GB/s (streaming read, all cores; median of the probes beside the batch-%lld "
                "decode runs)\n",
                bw, static_cast<long long>(batches.front()));
    std::printf("bf16 matmul peak       %.1f GFLOP/s (oneDNN, 4096^3)\n", peak);
    std::printf("prefill                %.1f tokens/s (%lld tokens in %.3f s, %.1f GFLOP/s)\n", prefill_tps,
                static_cast<long long>(o->prompt_len), prefill_s, prefill_flops / prefill_s / 1e9);
    for (auto [b, tps] : decode) {
      std::printf("decode batch %-4lld      %.2f tokens/s (%.1fx batch %lld)\n", static_cast<long long>(b), tps,
                  tps / decode.front().second, static_cast<long long>(b0));
    }
    for (auto [h, s, cached] : ttft) {
      std::printf("TTFT %lld tokens, %2.0f%% cached  %.3f s (%lld tokens from cache, %.1fx vs first; one step)\n",
                  static_cast<long long>(ttft_first), h * 100, s, static_cast<long long>(cached),
                  std::get<1>(ttft.front()) / s);
    }
    if (!ttft_lens.empty()) {
      std::printf("long prompts (attention kernel %s; TTFT in the server's %lld-token steps, one step beside it):\n",
                  kernels::AttentionKernelName(kernels::AutoAttentionKernel(cfg_kv_dtype, cfg.head_dim)),
                  static_cast<long long>(server_budget));
      std::printf("  %7s %9s %8s %9s %10s %10s %8s %8s %8s %9s\n", "tokens", "TTFT s", "tok/s", "one-step",
                  "attn TFLOP", "mm TFLOP", "of peak", "attn GF", "attn/pk", "x 512rate");
      for (size_t i = 0; i < ttft_lens.size(); ++i) {
        const int64_t n = ttft_lens[i];
        const PrefillFlops f = SplitPrefillFlops(cfg, len_flops[i], n);
        std::printf("  %7lld %9.3f %8.1f %9.3f %10.3f %10.3f %8.3f %8.0f %8.3f %9.2f\n", static_cast<long long>(n),
                    served[i], static_cast<double>(n) / served[i], one_step[i], f.attention / 1e12, f.matmul / 1e12,
                    (f.attention + f.matmul) / served[i] / (peak * 1e9), attn_gflops[i], attn_gflops[i] / peak,
                    served[i] * rate512 / static_cast<double>(n));
      }
      std::printf("  (of peak: all FLOPs / TTFT / bf16 matmul peak; attn GF: one layer's prefill attention timed alone "
                  "in the same steps, attn/pk its fraction of the peak; x 512rate: TTFT / (tokens at the %lld-token "
                  "prefill rate))\n",
                  static_cast<long long>(o->prompt_len));
    }
    for (const auto& [b, st] : stalls) {
      std::printf("chunk sweep, budget %5lld: TTFT %lld tokens %.3f s; decoders' token gap %.3f s mean, %.3f s max "
                  "(%.3f s before)\n",
                  static_cast<long long>(b), static_cast<long long>(o->sweep_prompt), st.ttft_s, st.decode_gap_mean_s,
                  st.decode_gap_max_s, st.decode_gap_before_s);
    }
    if (o->decode_attention_ctx > 0) {
      std::printf("decode attention       %.1f GB/s of KV read at %lld tokens (%.2f of the %.1f GB/s probe beside it)\n",
                  attn_gbs, static_cast<long long>(o->decode_attention_ctx), attn_gbs / attn_bw, attn_bw);
    }
    std::printf("decode ratio pairs     ");
    for (const auto& p : ratio.pairs) {
      std::printf("%.3f (%.1f tok/s, %.0f|%.0f GB/s) ", p.ratio, p.tokens_per_s, p.bw_before, p.bw_after);
    }
    std::printf("\n");
    if (ratio.trusted) {
      std::printf("decode_bandwidth_ratio %.3f  (median of %zu pairs, %.3f-%.3f; batch %lld: %.2f steps/s x %.3f GB / "
                  "%.1f GB/s; probes agree within %.0f%%, other load %.2f cores)\n",
                  decode_ratio, ratio.pairs.size(), ratio.min, ratio.max, static_cast<long long>(b0), steps_per_s,
                  wbytes / 1e9, bw, 100 * ratio.probe_disagreement, ratio.other_load_cores);
    } else {
      std::printf("decode_bandwidth_ratio untrusted: %s (pairs' ratios %.3f-%.3f)\n", ratio.why.c_str(), ratio.min,
                  ratio.max);
    }
    std::printf("prefill_peak_ratio     %.3f  (%.1f / %.1f GFLOP/s)\n", prefill_ratio, prefill_flops / prefill_s / 1e9,
                peak);
  });
}

}  // namespace crescent::cli
