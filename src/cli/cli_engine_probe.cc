#include "cli/cli_engine_probe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>

#include <boost/json.hpp>

#include "base/logging.h"
#include "cli/commands.h"
#include "conductor/least_squares.h"
#include "engine/output_queue.h"

namespace crescent::cli {
namespace {

namespace json = boost::json;

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Least squares weighted by 1/target (relative error: short and long points
// count alike); the coefficients clamped at 0 (a cost is never negative), and
// the fit's mean relative error.
std::pair<std::vector<double>, double> FitRelative(std::vector<std::vector<double>> rows, std::vector<double> y) {
  std::vector<std::vector<double>> wr = rows;
  std::vector<double> wy(y.size());
  for (size_t i = 0; i < y.size(); ++i) {
    for (double& x : wr[i]) x /= y[i];
    wy[i] = 1.0;
  }
  std::vector<double> w = ValueOrThrow(conductor::FitLeastSquares(wr, wy));
  for (double& c : w) c = std::max(0.0, c);
  double err = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    double pred = 0;
    for (size_t k = 0; k < w.size(); ++k) pred += w[k] * rows[i][k];
    err += std::abs(pred - y[i]) / y[i];
  }
  return {w, err / static_cast<double>(y.size())};
}

}  // namespace

std::vector<int32_t> PromptMaker::Make(int64_t n) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (auto& t : p) t = static_cast<int32_t>(rng_.Next() % static_cast<uint64_t>(vocab_));
  return p;
}

engine::EngineRequest GreedyRequest(std::vector<int32_t> prompt, int64_t max_tokens) {
  engine::EngineRequest r;
  r.prompt = std::move(prompt);
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  r.params.sampling.temperature = 0;
  r.params.has_seed = true;
  return r;
}

std::pair<double, int64_t> TimeToFirstToken(engine::Engine& e, std::vector<int32_t> prompt) {
  engine::OutputQueue q;
  ValueOrThrow(e.Submit(GreedyRequest(std::move(prompt), 1), q.Callback()));
  engine::RequestOutput o = q.Next();
  if (o.finish_reason == engine::FinishReason::kError) throw CommandError(o.error.message());
  return {o.first_token_time_s, o.usage.cached_tokens};
}

double DecodeRate(engine::Engine& e, PromptMaker& pm, int64_t b, int64_t prompt_len, int64_t gen_len) {
  std::mutex mu;
  std::vector<double> stamps;
  std::vector<double> first(static_cast<size_t>(b), 0);
  int64_t done = 0;
  std::condition_variable cv;
  for (int64_t i = 0; i < b; ++i) {
    ValueOrThrow(e.Submit(GreedyRequest(pm.Make(prompt_len), gen_len + 1), [&, i](engine::RequestOutput out) {
      std::lock_guard<std::mutex> lock(mu);
      const double t = Now();
      if (first[static_cast<size_t>(i)] == 0) first[static_cast<size_t>(i)] = t;
      for (size_t k = 0; k < out.tokens.size(); ++k) stamps.push_back(t);
      if (out.finished) {
        ++done;
        cv.notify_all();
      }
    }));
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done == b; });
  if (stamps.empty()) return 0.0;
  const double start = *std::max_element(first.begin(), first.end());
  const double end = *std::max_element(stamps.begin(), stamps.end());
  const int64_t n = std::count_if(stamps.begin(), stamps.end(), [&](double t) { return t > start; });
  return end > start ? static_cast<double>(n) / (end - start) : 0.0;
}

json::object MeasureCostProfile(engine::Engine& e, PromptMaker& pm, int64_t max_prompt, int64_t max_batch,
                                int64_t chunk_tokens) {
  // Prefill: fresh prompts (no hit) and prompts whose first half is cached.
  std::vector<std::vector<double>> rows;
  std::vector<double> secs;
  json::array prefill_samples;
  TimeToFirstToken(e, pm.Make(std::min<int64_t>(64, max_prompt)));  // warm-up
  for (int64_t n = 16; n <= max_prompt; n *= 2) {
    for (bool half : {false, true}) {
      if (half && n < 256) continue;
      const int64_t p = half ? n / 2 : 0;
      double best = 1e30;
      int64_t cached = 0;
      for (int rep = 0; rep < 2; ++rep) {
        std::vector<int32_t> prompt = pm.Make(n);
        if (p > 0) TimeToFirstToken(e, std::vector<int32_t>(prompt.begin(), prompt.begin() + p));
        auto [s, c] = TimeToFirstToken(e, prompt);
        if (s < best) {
          best = s;
          cached = c;
        }
      }
      const double dn = static_cast<double>(n), dp = static_cast<double>(cached);
      rows.push_back({1.0, dn - dp, dn * dn - dp * dp});
      secs.push_back(best);
      prefill_samples.push_back(json::object{{"input_tokens", n}, {"prefix_tokens", cached}, {"seconds", best}});
      LOG_INFO("profile: prefill {} tokens ({} cached) {:.4f} s", n, cached, best);
    }
  }
  auto [pw, perr] = FitRelative(rows, secs);
  // Decode steps: batch x context.
  rows.clear();
  secs.clear();
  json::array decode_samples;
  constexpr int64_t kGen = 32;
  for (int64_t b = 1; b <= max_batch; b *= 4) {
    for (int64_t ctx : {int64_t{64}, std::min<int64_t>(1024, max_prompt)}) {
      const double rate = DecodeRate(e, pm, b, ctx, kGen);
      if (rate <= 0) continue;
      const double step = static_cast<double>(b) / rate;
      const double context = static_cast<double>(b) * (static_cast<double>(ctx) + kGen / 2.0);
      rows.push_back({1.0, static_cast<double>(b), context});
      secs.push_back(step);
      decode_samples.push_back(json::object{{"batch", b}, {"context_tokens", context}, {"step_seconds", step}});
      LOG_INFO("profile: decode batch {} context {} step {:.5f} s", b, ctx, step);
    }
  }
  auto [dw, derr] = FitRelative(rows, secs);
  return json::object{{"prefill_fixed_s", pw[0]},
                      {"prefill_token_s", pw[1]},
                      {"prefill_pair_s", pw[2]},
                      {"decode_fixed_s", dw[0]},
                      {"decode_seq_s", dw[1]},
                      {"decode_context_s", dw[2]},
                      {"chunk_tokens", chunk_tokens},
                      {"_measured", json::object{{"prefill", std::move(prefill_samples)},
                                                 {"decode", std::move(decode_samples)},
                                                 {"prefill_fit_mean_relative_error", perr},
                                                 {"decode_fit_mean_relative_error", derr}}}};
}

}  // namespace crescent::cli
