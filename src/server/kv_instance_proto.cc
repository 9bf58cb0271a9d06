#include "server/kv_instance_proto.h"

#include <algorithm>

namespace crescent::server {

proto::GenParams ToProto(const engine::RequestParams& p) {
  proto::GenParams g;
  g.set_temperature(p.sampling.temperature);
  g.set_top_k(p.sampling.top_k);
  g.set_top_p(p.sampling.top_p);
  g.set_min_p(p.sampling.min_p);
  g.set_repetition_penalty(p.sampling.repetition_penalty);
  g.set_presence_penalty(p.sampling.presence_penalty);
  g.set_frequency_penalty(p.sampling.frequency_penalty);
  g.set_logprobs(p.sampling.logprobs);
  g.set_seed(p.seed);
  g.set_has_seed(p.has_seed);
  g.set_max_tokens(p.max_tokens);
  for (int32_t t : p.stop_token_ids) g.add_stop_token_ids(t);
  g.set_ignore_eos(p.ignore_eos);
  for (const std::string& s : p.stop) g.add_stop(s);
  g.set_include_stop_str_in_output(p.include_stop_str_in_output);
  g.set_skip_special_tokens(p.skip_special_tokens);
  g.set_has_prompt_logprobs(p.prompt_logprobs >= 0);
  g.set_prompt_logprobs(std::max(0, p.prompt_logprobs));
  for (auto [t, b] : p.sampling.logit_bias) {
    g.add_logit_bias_tokens(t);
    g.add_logit_bias_values(b);
  }
  g.set_grammar_spec(p.grammar_spec);
  return g;
}

engine::RequestParams FromProto(const proto::GenParams& g) {
  engine::RequestParams p;
  p.sampling.temperature = g.temperature();
  p.sampling.top_k = g.top_k();
  p.sampling.top_p = g.top_p();
  p.sampling.min_p = g.min_p();
  p.sampling.repetition_penalty = g.repetition_penalty();
  p.sampling.presence_penalty = g.presence_penalty();
  p.sampling.frequency_penalty = g.frequency_penalty();
  p.sampling.logprobs = g.logprobs();
  p.seed = g.seed();
  p.has_seed = g.has_seed();
  p.max_tokens = g.max_tokens();
  p.stop_token_ids.assign(g.stop_token_ids().begin(), g.stop_token_ids().end());
  p.ignore_eos = g.ignore_eos();
  p.stop.assign(g.stop().begin(), g.stop().end());
  p.include_stop_str_in_output = g.include_stop_str_in_output();
  p.skip_special_tokens = g.skip_special_tokens();
  p.prompt_logprobs = g.has_prompt_logprobs() ? g.prompt_logprobs() : -1;
  const int nb = std::min(g.logit_bias_tokens_size(), g.logit_bias_values_size());
  for (int i = 0; i < nb; ++i) p.sampling.logit_bias.emplace_back(g.logit_bias_tokens(i), g.logit_bias_values(i));
  p.grammar_spec = g.grammar_spec();  // compiled by the caller (CompileResponseFormatSpec)
  return p;
}

proto::Sample ToProto(const engine::SampledToken& s) {
  proto::Sample o;
  o.set_token(s.token);
  o.set_logprob(s.logprob);
  for (const auto& [t, lp] : s.top) {
    o.add_top_tokens(t);
    o.add_top_logprobs(lp);
  }
  return o;
}

engine::SampledToken FromProto(const proto::Sample& s) {
  engine::SampledToken o;
  o.token = s.token();
  o.logprob = s.logprob();
  for (int i = 0; i < s.top_tokens_size() && i < s.top_logprobs_size(); ++i) {
    o.top.emplace_back(s.top_tokens(i), s.top_logprobs(i));
  }
  return o;
}

engine::FinishReason FinishReasonFromName(const std::string& name) {
  if (name == "stop") return engine::FinishReason::kStop;
  if (name == "length") return engine::FinishReason::kLength;
  if (name == "abort") return engine::FinishReason::kAbort;
  if (name == "error") return engine::FinishReason::kError;
  return engine::FinishReason::kNone;
}

}  // namespace crescent::server
