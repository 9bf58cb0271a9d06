// `crescent generate`: run one prompt through the model and print the tokens.
#include <cstdio>
#include <memory>

#include <boost/json.hpp>

#include "base/logging.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "engine/generate.h"

namespace crescent::cli {

void RegisterGenerate(CLI::App& app) {
  struct Opts {
    std::string model, dtype = "auto", prompt, prompt_tokens;
    int64_t max_tokens = 16;
    float temperature = 0.0f, top_p = 1.0f, min_p = 0.0f;
    int32_t top_k = 0, logprobs = 0;
    uint64_t seed = 0;
    bool json = false, ignore_eos = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate tokens for one prompt");
  cmd->add_option("--dtype", o->dtype, "Compute and KV dtype: auto | bfloat16 | float32");
  cmd->add_option("--model", o->model, "Model folder (config.json, safetensors, tokenizer)")->required();
  auto* p1 = cmd->add_option("--prompt", o->prompt, "Prompt text");
  auto* p2 = cmd->add_option("--prompt-tokens", o->prompt_tokens, "Prompt token ids, comma-separated");
  p1->excludes(p2);
  cmd->add_option("--max-tokens", o->max_tokens, "Tokens to generate")->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  cmd->add_option("--temperature", o->temperature, "0 = greedy (default)")->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("--top-k", o->top_k, "Top-k (0 = off)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", o->top_p, "Top-p")->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--min-p", o->min_p, "Min-p")->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--seed", o->seed, "Sampling seed");
  cmd->add_option("--logprobs", o->logprobs, "Report the top K log-probs per token")->check(CLI::Range(0, 20));
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at the model's end-of-sequence tokens");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o] {
    if (o->prompt.empty() && o->prompt_tokens.empty()) throw CommandError("give --prompt or --prompt-tokens");
    if (!o->prompt.empty()) throw CommandError("no tokenizer yet: use --prompt-tokens");
    engine::GenerateRequest req;
    req.prompt = ValueOrThrow(ParseIdList(o->prompt_tokens, "--prompt-tokens"));
    auto runner = ValueOrThrow(LoadModel(o->model, o->dtype));
    const auto& cfg = runner->config();
    for (int32_t t : req.prompt) {
      if (t >= cfg.vocab_size) {
        throw CommandError("--prompt-tokens: id " + std::to_string(t) + " is outside the vocabulary (" +
                           std::to_string(cfg.vocab_size) + ")");
      }
    }
    req.max_tokens = o->max_tokens;
    req.seed = o->seed;
    req.sampling.temperature = o->temperature;
    req.sampling.top_k = o->top_k;
    req.sampling.top_p = o->top_p;
    req.sampling.min_p = o->min_p;
    req.sampling.logprobs = o->logprobs;
    if (!o->ignore_eos) {
      for (int64_t e : cfg.eos_token_ids) req.stop_token_ids.push_back(static_cast<int32_t>(e));
    }
    const int64_t total = static_cast<int64_t>(req.prompt.size()) + req.max_tokens;
    if (total > cfg.max_position_embeddings) {
      throw CommandError("prompt + max_tokens = " + std::to_string(total) + " exceeds the model's context of " +
                         std::to_string(cfg.max_position_embeddings) + " tokens");
    }
    engine::KvPagePool pool(runner->kv_shape(), engine::PagesFor(total, 16));
    engine::GenerateTimings tm;
    auto results = ValueOrThrow(engine::GenerateBatch(*runner, pool, {req}, &tm));
    const engine::GenerateResult& r = results[0];
    if (o->json) {
      boost::json::object out;
      boost::json::array pt, toks, lps;
      for (int32_t t : req.prompt) pt.push_back(t);
      for (int32_t t : r.tokens) toks.push_back(t);
      for (const auto& s : r.samples) {
        boost::json::array row;
        for (const auto& [id, lp] : s.top) row.push_back(boost::json::array{id, lp});
        lps.push_back(std::move(row));
      }
      out["prompt_tokens"] = std::move(pt);
      out["tokens"] = std::move(toks);
      out["logprobs"] = std::move(lps);
      out["finish_reason"] = r.finish_reason;
      std::printf("%s\n", boost::json::serialize(out).c_str());
    } else {
      std::string line;
      for (size_t i = 0; i < r.tokens.size(); ++i) line += (i ? "," : "") + std::to_string(r.tokens[i]);
      std::printf("%s\n", line.c_str());
      std::fprintf(stderr, "finish_reason=%s prompt=%zu tokens=%zu prefill %.1f ms, decode %.2f tok/s\n",
                   r.finish_reason.c_str(), req.prompt.size(), r.tokens.size(), tm.prefill_s * 1e3,
                   tm.decode_steps > 0 ? static_cast<double>(tm.decode_steps) / tm.decode_s : 0.0);
    }
  });
}

}  // namespace crescent::cli
