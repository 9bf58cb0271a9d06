#include "cli/cli_trace_replay.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include <boost/json.hpp>

namespace crescent::cli {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

uint64_t SplitMix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The seed of block i: its key, or (past the keys) the request's salt.
uint64_t BlockSeed(std::span<const sim::BlockKey> keys, int64_t i, uint64_t salt) {
  if (i < static_cast<int64_t>(keys.size())) {
    const sim::BlockKey& k = keys[static_cast<size_t>(i)];
    return k.lo * 0x9E3779B97F4A7C15ull ^ k.hi;
  }
  return (salt + 1) * 0xD1B54A32D192ED03ull ^ static_cast<uint64_t>(i);
}

// Common English words: with GPT-style BPE tokenizers " word" is one token.
constexpr const char* kWords[] = {
    "the",   "of",    "and",   "to",    "in",    "is",    "you",   "that",  "it",    "he",    "was",   "for",
    "on",    "are",   "as",    "with",  "his",   "they",  "at",    "be",    "this",  "have",  "from",  "or",
    "one",   "had",   "by",    "word",  "but",   "not",   "what",  "all",   "were",  "we",    "when",  "your",
    "can",   "said",  "there", "use",   "an",    "each",  "which", "she",   "do",    "how",   "their", "if",
    "will",  "up",    "other", "about", "out",   "many",  "then",  "them",  "these", "so",    "some",  "her",
    "would", "make",  "like",  "him",   "into",  "time",  "has",   "look",  "two",   "more",  "write", "go",
    "see",   "number", "no",   "way",   "could", "people", "my",   "than",  "first", "water", "been",  "call",
    "who",   "oil",   "its",   "now",   "find",  "long",  "down",  "day",   "did",   "get",   "come",  "made",
    "may",   "part",  "over",  "new",   "sound", "take",  "only",  "little", "work", "know",  "place", "year",
    "live",  "me",    "back",  "give",  "most",  "very",  "after", "thing", "our",   "just",  "name",  "good",
    "sea",   "sun",   "city",  "tree",  "river", "stone", "light", "house"};
constexpr size_t kNumWords = sizeof(kWords) / sizeof(kWords[0]);

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kOk: return "ok";
    case Outcome::kRejected: return "rejected";
    case Outcome::kFailed: return "failed";
    case Outcome::kCancelled: return "cancelled";
  }
  return "?";
}

std::vector<PlannedRequest> PlanArrivals(const sim::Trace& trace, const ReplayOptions& o) {
  std::vector<PlannedRequest> plan;
  std::mt19937_64 rng(o.seed);
  const double shape = std::max(1e-3, o.burstiness);
  std::gamma_distribution<double> gap(shape, o.request_rate > 0 ? 1.0 / (o.request_rate * shape) : 1.0);
  const int64_t t0 = trace.requests.empty() ? 0 : trace.requests.front().timestamp_ms;
  double at = 0;
  for (size_t i = 0; i < trace.requests.size(); ++i) {
    if (o.max_requests > 0 && static_cast<int64_t>(plan.size()) >= o.max_requests) break;
    const sim::TraceRequest& r = trace.requests[i];
    if (o.request_rate > 0) {
      if (i > 0) at += gap(rng);
    } else {
      at = static_cast<double>(r.timestamp_ms - t0) / 1000.0 * o.time_scale;
    }
    if (o.duration_s > 0 && at > o.duration_s) break;
    PlannedRequest p;
    p.at_s = at;
    p.prompt_tokens = std::max<int64_t>(1, std::llround(static_cast<double>(r.input_tokens) * o.length_scale));
    p.max_tokens = std::max<int64_t>(1, std::llround(static_cast<double>(r.output_tokens) * o.output_scale));
    p.keys = trace.Keys(r);
    plan.push_back(p);
  }
  return plan;
}

std::vector<int32_t> SynthesizeTokens(std::span<const sim::BlockKey> keys, int64_t tokens, int64_t block_tokens,
                                      int64_t vocab, uint64_t salt) {
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(tokens));
  const uint64_t range = static_cast<uint64_t>(std::max<int64_t>(1, vocab - 100));
  for (int64_t b = 0; static_cast<int64_t>(out.size()) < tokens; ++b) {
    uint64_t s = BlockSeed(keys, b, salt);
    for (int64_t i = 0; i < block_tokens && static_cast<int64_t>(out.size()) < tokens; ++i) {
      out.push_back(static_cast<int32_t>(100 + SplitMix(s) % range));
    }
  }
  return out;
}

std::string SynthesizeText(std::span<const sim::BlockKey> keys, int64_t tokens, int64_t block_tokens, uint64_t salt) {
  std::string out;
  int64_t n = 0;
  for (int64_t b = 0; n < tokens; ++b) {
    uint64_t s = BlockSeed(keys, b, salt);
    for (int64_t i = 0; i < block_tokens && n < tokens; ++i, ++n) {
      if (!out.empty()) out += ' ';
      out += kWords[SplitMix(s) % kNumWords];
    }
  }
  return out;
}

std::string RequestBody(const PlannedRequest& r, const ReplayOptions& o, int64_t i) {
  const int64_t block = std::max<int64_t>(1, std::llround(static_cast<double>(o.block_tokens) * o.length_scale));
  json::object b;
  if (!o.model.empty()) b["model"] = o.model;
  if (o.chat) {
    b["messages"] = json::array{json::object{
        {"role", "user"}, {"content", SynthesizeText(r.keys, r.prompt_tokens, block, static_cast<uint64_t>(i))}}};
  } else {
    json::array p;
    for (int32_t t : SynthesizeTokens(r.keys, r.prompt_tokens, block, o.vocab, static_cast<uint64_t>(i))) p.push_back(t);
    b["prompt"] = std::move(p);
  }
  b["max_tokens"] = r.max_tokens;
  b["ignore_eos"] = true;
  b["temperature"] = 0;
  b["stream"] = true;
  b["stream_options"] = json::object{{"include_usage", true}};
  return json::serialize(b);
}

namespace {

// One request, sent now; fills `rec` (its plan fields are set).
void RunOne(HttpCall& call, const std::string& body, const ReplayOptions& o, Clock::time_point t0, RequestRecord& rec) {
  rec.sent_s = Since(t0);
  const auto sent = Clock::now();
  double last = -1;
  int64_t events = 0;
  bool usage_seen = false;
  std::string stream_error;
  auto on_event = [&](std::string_view data) {
    const double now = Since(sent);
    boost::system::error_code ec;
    json::value v = json::parse(data, ec);
    if (ec || !v.is_object()) {
      if (stream_error.empty()) stream_error = "a stream event that is not JSON";
      return;
    }
    const json::object& e = v.as_object();
    if (const json::value* err = e.if_contains("error")) {
      const json::value* m = err->is_object() ? err->as_object().if_contains("message") : nullptr;
      stream_error = m && m->is_string() ? std::string(m->as_string()) : json::serialize(*err);
      return;
    }
    if (const json::value* u = e.if_contains("usage"); u && u->is_object()) {
      const json::object& uo = u->as_object();
      if (const json::value* c = uo.if_contains("completion_tokens"); c && c->is_int64()) {
        rec.output_tokens = c->as_int64();
        usage_seen = true;
      }
      if (const json::value* c = uo.if_contains("prompt_tokens"); c && c->is_int64()) rec.server_prompt_tokens = c->as_int64();
      if (const json::value* d = uo.if_contains("prompt_tokens_details"); d && d->is_object()) {
        if (const json::value* c = d->as_object().if_contains("cached_tokens"); c && c->is_int64()) {
          rec.cached_tokens = c->as_int64();
        }
      }
    }
    const json::value* ch = e.if_contains("choices");
    if (!ch || !ch->is_array()) return;
    bool token = false;
    for (const json::value& c : ch->as_array()) {
      if (!c.is_object()) continue;
      const json::object& co = c.as_object();
      const json::value* text = co.if_contains("text");
      if (const json::value* d = co.if_contains("delta"); d && d->is_object()) text = d->as_object().if_contains("content");
      if (text && text->is_string() && !text->as_string().empty()) token = true;
    }
    if (!token) return;
    ++events;
    if (last < 0) {
      rec.ttft_s = now;
    } else {
      rec.itl_s.push_back(now - last);
    }
    last = now;
  };
  Result<HttpReply> r = call.Run(o.url, "POST", o.chat ? "/v1/chat/completions" : "/v1/completions", body,
                                 o.api_key, o.timeout_s, on_event);
  rec.latency_s = Since(sent);
  if (!usage_seen) rec.output_tokens = events;
  if (!r.ok()) {
    rec.outcome = r.status().code() == StatusCode::kCancelled ? Outcome::kCancelled : Outcome::kFailed;
    rec.error = r.status().message();
    return;
  }
  rec.http_status = r->status;
  if (r->status == 429 || r->status == 503) {
    rec.outcome = Outcome::kRejected;
    rec.error = r->body.substr(0, 300);
  } else if (r->status != 200) {
    rec.outcome = Outcome::kFailed;
    rec.error = "HTTP " + std::to_string(r->status) + ": " + r->body.substr(0, 300);
  } else if (!stream_error.empty()) {
    rec.outcome = Outcome::kFailed;
    rec.error = stream_error;
  } else if (!r->stream_done && !usage_seen) {
    rec.outcome = Outcome::kFailed;
    rec.error = "the stream ended without [DONE]";
  } else {
    rec.outcome = Outcome::kOk;
  }
}

}  // namespace

std::vector<RequestRecord> Replay(const std::vector<PlannedRequest>& plan, const ReplayOptions& o,
                                  const std::atomic<bool>& stop, bool* interrupted, double* elapsed_s,
                                  const std::function<void(const ReplayProgress&)>& on_progress) {
  std::vector<RequestRecord> recs(plan.size());
  std::vector<char> sent(plan.size(), 0);
  std::mutex mu;
  std::condition_variable cv;
  std::deque<size_t> ready;  // GUARDED_BY(mu): due, waiting for a worker
  bool closing = false;      // GUARDED_BY(mu)
  ReplayProgress progress;   // GUARDED_BY(mu)
  progress.total = static_cast<int64_t>(plan.size());
  const int workers = std::max(1, std::min<int>(o.max_concurrency, static_cast<int>(plan.size())));
  std::vector<std::unique_ptr<HttpCall>> calls;
  for (int w = 0; w < workers; ++w) calls.push_back(std::make_unique<HttpCall>());
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w) {
    pool.emplace_back([&, w] {
      for (;;) {
        size_t i;
        {
          std::unique_lock<std::mutex> l(mu);
          cv.wait(l, [&] { return !ready.empty() || closing; });
          if (ready.empty()) return;
          i = ready.front();
          ready.pop_front();
          progress.sent++;
        }
        RequestRecord& rec = recs[i];
        rec.index = static_cast<int64_t>(i);
        rec.scheduled_s = plan[i].at_s;
        rec.prompt_tokens = plan[i].prompt_tokens;
        rec.max_tokens = plan[i].max_tokens;
        const std::string body = RequestBody(plan[i], o, static_cast<int64_t>(i));
        if (stop.load()) {
          rec.outcome = Outcome::kCancelled;
          rec.error = "stopped before it was sent";
        } else {
          RunOne(*calls[static_cast<size_t>(w)], body, o, t0, rec);
        }
        std::lock_guard<std::mutex> l(mu);
        sent[i] = 1;
        progress.done++;
        if (rec.outcome == Outcome::kRejected) progress.rejected++;
        if (rec.outcome == Outcome::kFailed) progress.failed++;
      }
    });
  }
  auto report = [&] {
    if (!on_progress) return;
    ReplayProgress p;
    {
      std::lock_guard<std::mutex> l(mu);
      p = progress;
    }
    p.elapsed_s = Since(t0);
    on_progress(p);
  };
  double next_report = 1.0;
  size_t next = 0;
  bool stopped = false;
  while (true) {
    if (stop.load()) {
      stopped = true;
      break;
    }
    const double now = Since(t0);
    if (now >= next_report) {
      report();
      next_report = now + 1.0;
    }
    {
      std::lock_guard<std::mutex> l(mu);
      while (next < plan.size() && plan[next].at_s <= now) ready.push_back(next++);
      if (next == plan.size() && progress.done == progress.total) break;
    }
    cv.notify_all();
    const double wait = next < plan.size() ? std::min(plan[next].at_s - now, 0.05) : 0.05;
    std::this_thread::sleep_for(std::chrono::duration<double>(std::max(0.0, std::min(wait, next_report - now))));
  }
  {
    std::lock_guard<std::mutex> l(mu);
    closing = true;
    if (stopped) ready.clear();  // never sent
  }
  cv.notify_all();
  if (stopped) {
    for (auto& c : calls) c->Abort();
  }
  for (auto& t : pool) t.join();
  report();
  *interrupted = stopped;
  *elapsed_s = Since(t0);
  std::vector<RequestRecord> out;
  for (size_t i = 0; i < recs.size(); ++i) {
    if (sent[i]) out.push_back(std::move(recs[i]));
  }
  return out;
}

}  // namespace crescent::cli
