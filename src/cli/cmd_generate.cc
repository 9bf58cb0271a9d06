// `crescent generate`: one prompt through the serving engine (the same request
// path as the server), printing the text or, with --json, one JSON object.
#include <cstdio>
#include <memory>

#include <boost/json.hpp>

#include "base/logging.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "engine/engine.h"
#include "engine/output_queue.h"
#include "model/tokenizer.h"

namespace crescent::cli {

void RegisterGenerate(CLI::App& app) {
  struct Opts {
    std::string model, dtype = "auto", quantization, prompt, prompt_tokens;
    int64_t max_tokens = 16;
    float temperature = 0.0f, top_p = 1.0f, min_p = 0.0f;
    float repetition_penalty = 1.0f, presence_penalty = 0.0f, frequency_penalty = 0.0f;
    int32_t top_k = 0, logprobs = 0;
    uint64_t seed = 0;
    std::vector<std::string> stop;
    bool json = false, ignore_eos = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate a completion for one prompt");
  cmd->add_option("--model", o->model, "Model folder (config.json, safetensors, tokenizer) or a .gguf file")->required();
  cmd->add_option("--dtype", o->dtype, "Compute and KV dtype: auto | bfloat16 | float32");
  cmd->add_option("--quantization", o->quantization, "Quantize the weights at load: q8_0 | q4_k_m | q5_k_m | q4_0 | q4_k | q5_k | q6_k (GGUF tensors keep their types)");
  auto* p1 = cmd->add_option("--prompt", o->prompt, "Prompt text (tokenized with the model's tokenizer)");
  auto* p2 = cmd->add_option("--prompt-tokens", o->prompt_tokens, "Prompt token ids, comma-separated");
  p1->excludes(p2);
  cmd->add_option("--max-tokens", o->max_tokens, "Tokens to generate")->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--temperature", o->temperature, "0 = greedy (default)")->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("--top-k", o->top_k, "Top-k (0 = off)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", o->top_p, "Top-p")->check(CLI::Range(0.0001f, 1.0f));
  cmd->add_option("--min-p", o->min_p, "Min-p")->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--repetition-penalty", o->repetition_penalty, "Repetition penalty (1 = off)")->check(CLI::Range(0.01f, 100.0f));
  cmd->add_option("--presence-penalty", o->presence_penalty, "Presence penalty")->check(CLI::Range(-2.0f, 2.0f));
  cmd->add_option("--frequency-penalty", o->frequency_penalty, "Frequency penalty")->check(CLI::Range(-2.0f, 2.0f));
  cmd->add_option("--seed", o->seed, "Sampling seed");
  cmd->add_option("--stop", o->stop, "Stop string (repeatable)");
  cmd->add_option("--logprobs", o->logprobs, "Report the top K log-probs per token")->check(CLI::Range(0, 20));
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at the model's end-of-sequence tokens");
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o] {
    if (o->prompt.empty() && o->prompt_tokens.empty()) throw CommandError("give --prompt or --prompt-tokens");
    std::unique_ptr<model::Tokenizer> tok;
    auto t = model::Tokenizer::FromDirectory(o->model);
    if (t.ok()) {
      tok = std::make_unique<model::Tokenizer>(std::move(t).value());
    } else if (!o->prompt.empty() || !o->stop.empty()) {
      throw CommandError("--prompt and --stop need the model's tokenizer: " + t.status().message());
    }
    engine::EngineRequest req;
    req.prompt = o->prompt.empty() ? ValueOrThrow(ParseIdList(o->prompt_tokens, "--prompt-tokens"))
                                   : tok->Encode(o->prompt, /*add_special_tokens=*/true);
    auto runner = ValueOrThrow(LoadModel(o->model, o->dtype, o->quantization));
    engine::RequestParams& p = req.params;
    p.max_tokens = o->max_tokens;
    p.seed = o->seed;
    p.has_seed = true;
    p.sampling.temperature = o->temperature;
    p.sampling.top_k = o->top_k;
    p.sampling.top_p = o->top_p;
    p.sampling.min_p = o->min_p;
    p.sampling.repetition_penalty = o->repetition_penalty;
    p.sampling.presence_penalty = o->presence_penalty;
    p.sampling.frequency_penalty = o->frequency_penalty;
    p.sampling.logprobs = o->logprobs;
    p.ignore_eos = o->ignore_eos;
    p.stop = o->stop;
    const int64_t tokens = static_cast<int64_t>(req.prompt.size()) + p.max_tokens;
    engine::EngineOptions eo;
    eo.max_num_seqs = 1;
    eo.max_num_batched_tokens = 2048;
    const int64_t page_bytes = runner->kv_shape().page_bytes();
    eo.kv_cache_bytes = (tokens + 15) / 16 * page_bytes + page_bytes;
    auto engine = ValueOrThrow(engine::Engine::Create(std::move(runner), tok.get(), eo));
    engine::OutputQueue q;
    ValueOrThrow(engine->Submit(req, q.Callback()));
    engine::Completion c = engine::Collect(q.WaitFinished(1)[0]);
    if (c.finish_reason == engine::FinishReason::kError) throw CommandError(c.error.message());
    if (o->json) {
      boost::json::object out;
      boost::json::array pt, toks, lps;
      for (int32_t id : req.prompt) pt.push_back(id);
      for (int32_t id : c.tokens) toks.push_back(id);
      for (const auto& s : c.samples) {
        boost::json::array row;
        for (const auto& [id, lp] : s.top) row.push_back(boost::json::array{id, lp});
        lps.push_back(std::move(row));
      }
      out["prompt_tokens"] = std::move(pt);
      out["tokens"] = std::move(toks);
      out["logprobs"] = std::move(lps);
      if (tok) out["text"] = c.text;
      out["finish_reason"] = engine::FinishReasonName(c.finish_reason);
      std::printf("%s\n", boost::json::serialize(out).c_str());
      return;
    }
    if (tok) {
      std::printf("%s\n", c.text.c_str());
    } else {
      std::string line;
      for (size_t i = 0; i < c.tokens.size(); ++i) line += (i ? "," : "") + std::to_string(c.tokens[i]);
      std::printf("%s\n", line.c_str());
    }
    std::fprintf(stderr, "finish_reason=%s prompt_tokens=%lld completion_tokens=%lld\n",
                 engine::FinishReasonName(c.finish_reason), static_cast<long long>(c.usage.prompt_tokens),
                 static_cast<long long>(c.usage.completion_tokens));
  });
}

}  // namespace crescent::cli
