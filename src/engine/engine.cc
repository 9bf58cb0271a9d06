#include "engine/engine.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "base/logging.h"
#include "base/sys_info.h"
#include "engine/scheduler.h"
#include "engine/stop_checker.h"
#include "engine/grammar_mask.h"
#include "engine/json_grammar.h"
#include "model/detokenizer.h"
#include "model/tokenizer.h"
#include "base/thread_annotations.h"

namespace crescent::engine {

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
    case FinishReason::kError: return "error";
  }
  return "";
}

namespace {

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// One request inside the engine.
struct Request {
  Sequence seq;
  RequestParams params;
  std::shared_ptr<OutputCallback> callback;
  Rng rng{0};
  TokenHistory history;
  std::unique_ptr<model::IncrementalDetokenizer> detok;
  StopChecker stops;
  double submit_time = 0;
  double first_token_time = 0;
  double first_step_time = 0;
  std::vector<int32_t> stop_ids;
  std::shared_ptr<KvLayerSink> sink;
  std::string pending_text;  // a prefilled request's first token's text, sent with its next output
  std::vector<SampledToken> prompt_samples;  // params.prompt_logprobs: prompt tokens 1.. scored so far
  bool prompt_samples_sent = false;
  std::optional<JsonState> grammar_state;  // params.grammar: the output so far, matched
};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct Engine::Impl {
  std::unique_ptr<ModelRunner> runner;
  const model::Tokenizer* tokenizer = nullptr;
  // The vocabulary's texts for grammar masks, built by the first request with a grammar.
  std::once_flag token_table_once;
  std::unique_ptr<TokenTable> token_table;
  EngineOptions options;
  int64_t max_model_len = 0;
  KvEventLog kv_events;  // before the pool: it records into it to the end
  std::unique_ptr<KvPagePool> pool;
  std::unique_ptr<Scheduler> scheduler;
  Hash128 fingerprint;
  std::atomic<uint64_t> next_id{1};

  // Guarded by mu.
  Mutex mu;
  CondVar cv;
  std::vector<std::unique_ptr<Request>> incoming;
  std::vector<uint64_t> cancels;
  std::vector<std::function<void()>> tasks;  // run on the step thread
  bool stopping = false;
  int64_t queued = 0;  // incoming + waiting, for admission
  EngineStats stats;

  // Step thread only.
  std::unordered_map<uint64_t, std::unique_ptr<Request>> live;
  std::unique_ptr<KvReservations> reservations;
  bool draining = false;  // the shutdown's last tasks run: no admission
  // Pages of ended requests whose sink may still be reading them.
  std::vector<std::pair<std::shared_ptr<KvLayerSink>, std::vector<int32_t>>> pinned;
  // Outputs of this iteration, delivered after the stats are published so a
  // caller that sees a final output also sees its pages freed.
  std::vector<std::pair<std::shared_ptr<OutputCallback>, RequestOutput>> outbox;
  std::thread thread;

  void Loop();
  void Step();
  Result<std::unique_ptr<Request>> MakeRequest(EngineRequest request, OutputCallback callback);
  // Runs `fn` on the step thread and waits for it (false: the engine stopped first).
  bool OnStepThread(std::function<void()> fn);
  void Admit(std::unique_ptr<Request> r);
  void ReleaseToSink(Request& r, bool ok);
  void UnpinIdleSinks(bool wait);
  bool KvBusy() const;
  void Emit(Request& r, std::vector<int32_t> tokens, std::vector<SampledToken> samples, std::string text,
            FinishReason finish, Status error = Status::Ok());
  void Finish(uint64_t id, FinishReason reason, Status error = Status::Ok());
  void AcceptSampled(Request& r, SampledToken s);
  // Feeds token t to r's grammar; false: the grammar refuses it.
  bool AdvanceGrammar(Request& r, int32_t t);
  // The tokens r's grammar allows next (its EOS ids too where the value is
  // complete), or null with r finished when none can continue.
  const uint64_t* GrammarMask(Request& r);
  void PublishStats();
  void Deliver();
};

Engine::Engine() : impl_(std::make_unique<Impl>()) {}

Engine::~Engine() { Shutdown(); }

Result<std::unique_ptr<Engine>> Engine::Create(std::unique_ptr<ModelRunner> runner, const model::Tokenizer* tokenizer,
                                               const EngineOptions& options, KvConnector* connector) {
  if (!runner) return InvalidArgument("Engine: no model");
  if (options.page_tokens <= 0 || options.page_tokens > 256) return InvalidArgument("page_tokens must be in [1, 256]");
  if (options.max_num_seqs <= 0) return InvalidArgument("max_num_seqs must be positive");
  if (options.max_num_batched_tokens <= 0) return InvalidArgument("max_num_batched_tokens must be positive");
  if (connector && connector->chunk_tokens() % options.page_tokens != 0) {
    return InvalidArgument("the KV connector's chunk size must be a multiple of page_tokens");
  }
  std::unique_ptr<Engine> e(new Engine());
  Impl& im = *e->impl_;
  im.options = options;
  im.tokenizer = tokenizer;
  const auto& cfg = runner->config();
  im.max_model_len = options.max_model_len > 0 ? std::min(options.max_model_len, cfg.max_position_embeddings)
                                               : cfg.max_position_embeddings;
  KvCacheShape shape = runner->kv_shape(options.page_tokens);
  int64_t bytes = options.kv_cache_bytes;
  if (bytes <= 0) {
    if (options.kv_cache_fraction <= 0 || options.kv_cache_fraction > 0.95) {
      return InvalidArgument("kv_cache_fraction must be in (0, 0.95]");
    }
    bytes = static_cast<int64_t>(static_cast<double>(AvailableMemory()) * options.kv_cache_fraction);
  }
  const int64_t pages = bytes / shape.page_bytes();
  if (pages < 1) {
    return ResourceExhausted("KV cache of " + std::to_string(bytes) + " bytes holds no page (" +
                             std::to_string(shape.page_bytes()) + " bytes each)");
  }
  if (pages >= (int64_t{1} << 31)) return InvalidArgument("KV cache too large");
  im.pool = std::make_unique<KvPagePool>(shape, pages, options.prefault_kv_cache);
  im.pool->set_event_log(&im.kv_events);
  SchedulerConfig sc{options.max_num_seqs, options.max_num_batched_tokens, options.enable_prefix_caching};
  im.fingerprint = runner->KvFingerprint(options.page_tokens, connector ? connector->chunk_tokens() : 0);
  im.scheduler = std::make_unique<Scheduler>(sc, im.pool.get(), im.fingerprint, connector);
  im.runner = std::move(runner);
  im.stats.kv_pages_total = pages;
  KvReservationOptions ro;
  ro.lease_ms = options.kv_lease_ms;
  ro.quarantine_ms = options.kv_quarantine_ms;
  im.reservations = std::make_unique<KvReservations>(im.pool.get(), ro);
  LOG_INFO("engine: KV cache {} pages x {} tokens ({:.1f} MB), max {} seqs, {} tokens per step", pages,
           options.page_tokens, static_cast<double>(pages * shape.page_bytes()) / 1e6, options.max_num_seqs,
           options.max_num_batched_tokens);
  im.thread = std::thread([&im] { im.Loop(); });
  return e;
}

const model::ModelConfig& Engine::config() const { return impl_->runner->config(); }
const model::Tokenizer* Engine::tokenizer() const { return impl_->tokenizer; }
int64_t Engine::max_model_len() const { return impl_->max_model_len; }

const Hash128& Engine::fingerprint() const { return impl_->fingerprint; }
const KvEventLog& Engine::kv_events() const { return impl_->kv_events; }
Hash128 Engine::model_hash() const { return ModelHash(impl_->runner->config(), impl_->runner->weights_hash()); }

EngineStats Engine::Stats() const {
  MutexLock lock(impl_->mu);
  return impl_->stats;
}

Result<std::unique_ptr<Request>> Engine::Impl::MakeRequest(EngineRequest request, OutputCallback callback) {
  const auto& cfg = runner->config();
  const int64_t n = static_cast<int64_t>(request.prompt.size());
  const RequestParams& p = request.params;
  if (n == 0) return InvalidArgument("the prompt is empty");
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= cfg.vocab_size) {
      return InvalidArgument("token id " + std::to_string(t) + " is outside the vocabulary (" +
                             std::to_string(cfg.vocab_size) + ")");
    }
  }
  if (p.max_tokens < 0) return InvalidArgument("max_tokens must be >= 0");
  if (p.max_tokens > max_model_len - n) {  // (n + max_tokens could overflow)
    return InvalidArgument("this model's maximum context length is " + std::to_string(max_model_len) +
                           " tokens; the request asks for " + std::to_string(n + p.max_tokens) + " (" +
                           std::to_string(n) + " in the prompt, " + std::to_string(p.max_tokens) + " to generate)");
  }
  const int64_t pt = pool->shape().page_tokens;
  if ((n + p.max_tokens + pt - 1) / pt > pool->num_pages()) {
    return InvalidArgument("the request needs " + std::to_string(n + p.max_tokens) +
                           " tokens of KV cache but the whole cache holds " + std::to_string(pool->num_pages() * pt));
  }
  if (!p.stop.empty() && tokenizer == nullptr) return InvalidArgument("stop strings need a tokenizer");
  if (p.sampling.temperature < 0 || p.sampling.top_p <= 0 || p.sampling.top_p > 1 || p.sampling.min_p < 0 ||
      p.sampling.min_p > 1 || p.sampling.top_k < 0 || p.sampling.repetition_penalty <= 0 ||
      p.sampling.logprobs < 0 || p.sampling.logprobs > 20) {
    return InvalidArgument("sampling parameters out of range");
  }
  if (p.prompt_logprobs < -1 || p.prompt_logprobs > 20) return InvalidArgument("prompt_logprobs must be in [-1, 20]");
  for (auto [t, b] : p.sampling.logit_bias) {
    if (t < 0 || t >= cfg.vocab_size || !std::isfinite(b)) return InvalidArgument("logit_bias: a token outside the vocabulary or a bias that is not finite");
  }
  if (!std::isfinite(p.sampling.temperature) || !std::isfinite(p.sampling.presence_penalty) ||
      !std::isfinite(p.sampling.frequency_penalty) || !std::isfinite(p.sampling.repetition_penalty)) {
    return InvalidArgument("sampling parameters must be finite");
  }
  if (p.grammar) {
    if (tokenizer == nullptr) return InvalidArgument("structured output needs a tokenizer");
    std::call_once(token_table_once, [&] { token_table = TokenTable::Build(*tokenizer, runner->config().vocab_size); });
    RETURN_IF_ERROR(CheckWritable(*p.grammar, *token_table));
  }
  auto r = std::make_unique<Request>();
  r->seq.tokens = std::move(request.prompt);
  r->seq.prompt_len = n;
  r->seq.max_tokens = p.max_tokens;
  r->params = p;
  r->sink = std::move(request.kv_sink);
  r->seq.kv_sink = r->sink.get();
  r->seq.max_external = request.max_external_prefix_tokens;
  if (p.prompt_logprobs >= 0) {  // every prompt position's logits: nothing may come from a cache
    r->seq.no_prefix_reuse = true;
    r->seq.max_external = 0;
  }
  r->callback = std::make_shared<OutputCallback>(std::move(callback));
  r->rng = Rng(p.has_seed ? p.seed : std::random_device{}() * 0x9e3779b97f4a7c15ULL + std::random_device{}());
  if (p.sampling.has_penalties()) r->history.SetPrompt(r->seq.tokens);
  if (tokenizer) r->detok = std::make_unique<model::IncrementalDetokenizer>(tokenizer, p.skip_special_tokens);
  r->stops = StopChecker(p.stop, p.include_stop_str_in_output);
  if (p.grammar) r->grammar_state = p.grammar->Start();
  if (!p.ignore_eos) {
    for (int64_t e : cfg.eos_token_ids) r->stop_ids.push_back(static_cast<int32_t>(e));
  }
  r->stop_ids.insert(r->stop_ids.end(), p.stop_token_ids.begin(), p.stop_token_ids.end());
  r->submit_time = NowSeconds();
  return r;
}

Result<uint64_t> Engine::Submit(EngineRequest request, OutputCallback callback) {
  Impl& im = *impl_;
  ASSIGN_OR_RETURN(std::unique_ptr<Request> r, im.MakeRequest(std::move(request), std::move(callback)));
  MutexLock lock(im.mu);
  if (im.stopping) return Unavailable("the engine is shutting down");
  if (im.queued >= im.options.max_waiting) {
    return ResourceExhausted("too many requests waiting (" + std::to_string(im.queued) + ")");
  }
  const uint64_t id = im.next_id.fetch_add(1);
  r->seq.id = id;
  im.incoming.push_back(std::move(r));
  ++im.queued;
  im.cv.NotifyOne();
  return id;
}

bool Engine::Impl::OnStepThread(std::function<void()> fn) {
  auto done = std::make_shared<std::pair<Mutex, bool>>();
  auto cv_done = std::make_shared<CondVar>();
  {
    MutexLock lock(mu);
    if (stopping) return false;
    tasks.push_back([fn = std::move(fn), done, cv_done] {
      fn();
      MutexLock l(done->first);
      done->second = true;
      cv_done->NotifyAll();
    });
    cv.NotifyOne();
  }
  MutexLock l(done->first);
  // The step thread runs tasks between steps; at shutdown it runs what is queued.
  cv_done->Wait(done->first, [&] { return done->second; });
  return true;
}

Result<KvReservation> Engine::ReserveKv(std::span<const int32_t> prompt, int64_t max_tokens) {
  Impl& im = *impl_;
  if (prompt.empty() || max_tokens < 0) return InvalidArgument("a reservation needs a prompt and max_tokens >= 0");
  const int64_t tokens = static_cast<int64_t>(prompt.size()) + max_tokens;
  if (tokens > im.max_model_len) return InvalidArgument("the reservation is beyond the model's context");
  std::vector<Hash128> keys;  // the prompt's full pages, as the scheduler keys them
  if (im.options.enable_prefix_caching) ExtendPageKeys(prompt, im.pool->shape().page_tokens, im.fingerprint, keys);
  Result<KvReservation> out = Unavailable("the engine is shutting down");
  im.OnStepThread([&] { out = im.reservations->Reserve(keys, static_cast<int64_t>(prompt.size()), tokens, NowMs()); });
  return out;
}

void Engine::CancelKv(uint64_t reservation) {
  Impl& im = *impl_;
  im.OnStepThread([&] { im.reservations->Cancel(reservation, NowMs()); });
}

Status Engine::ExtendKv(uint64_t reservation, uint64_t generation) {
  Impl& im = *impl_;
  Status out = Unavailable("the engine is shutting down");
  im.OnStepThread([&] { out = im.reservations->Extend(reservation, generation, NowMs()); });
  return out;
}

int64_t Engine::kv_lease_ms() const { return impl_->options.kv_lease_ms; }

KvReservationStats Engine::kv_reservation_stats() const {
  Impl& im = *impl_;
  KvReservationStats st;
  im.OnStepThread([&] { st = im.reservations->stats(); });
  return st;
}

KvPageAccess& Engine::kv_pages() { return *impl_->pool; }
const KvCacheShape& Engine::kv_shape() const { return impl_->pool->shape(); }
std::span<std::byte> Engine::kv_memory() const { return impl_->pool->memory(); }

Result<uint64_t> Engine::SubmitPrefilled(EngineRequest request, const KvCommit& commit, OutputCallback callback) {
  Impl& im = *impl_;
  if (request.params.max_tokens < 2) return InvalidArgument("a prefilled request has nothing to decode (max_tokens < 2)");
  if (commit.first_token < 0 || commit.first_token >= im.runner->config().vocab_size) {
    return InvalidArgument("the first token is outside the vocabulary");
  }
  request.kv_sink.reset();
  ASSIGN_OR_RETURN(std::unique_ptr<Request> r, im.MakeRequest(std::move(request), std::move(callback)));
  Status result = Unavailable("the engine is shutting down");
  uint64_t id = 0;
  im.OnStepThread([&] {
    if (im.draining) {  // nothing admitted may outlive the drain (its final output would never come)
      im.reservations->Cancel(commit.reservation, NowMs());
      return;
    }
    Result<KvReservation> c = im.reservations->Commit(commit.reservation, commit.generation, commit.checksums, NowMs());
    if (!c.ok()) {
      result = c.status();
      return;
    }
    if (static_cast<int64_t>(c->pages.size()) * im.pool->shape().page_tokens < r->seq.prompt_len + r->seq.max_tokens) {
      for (int32_t p : c->pages) im.pool->Unref(p);
      result = InvalidArgument("the request does not fit the reservation it names");
      return;
    }
    Sequence& q = r->seq;
    // The prompt's K/V are in the pages: key its full pages (a prefix cache
    // for what comes next), and take the first token as if sampled here.
    ExtendPageKeys(q.tokens, im.pool->shape().page_tokens, im.fingerprint, q.page_keys);
    if (im.options.enable_prefix_caching) {
      for (size_t i = 0; i < q.page_keys.size(); ++i) im.pool->SetKey(c->pages[i], q.page_keys[i]);
    }
    q.kv.pages = std::move(c->pages);
    q.kv.num_tokens = q.prompt_len;
    q.num_computed = q.prompt_len;
    q.external_prefix_ready = true;
    q.external_tried = true;
    q.admitted_once = true;
    q.cached_prompt_tokens = c->held_tokens;
    q.tokens.push_back(commit.first_token);
    if (r->params.sampling.has_penalties()) r->history.AddOutput(commit.first_token);
    if (r->grammar_state && !im.AdvanceGrammar(*r, commit.first_token)) {
      for (int32_t p : q.kv.pages) im.pool->Unref(p);
      result = InvalidArgument("the first token does not begin the requested structured output");
      return;
    }
    // Its text goes out with the next output (the prefill instance sends the
    // token itself, without text), unless the front sent it already (the same
    // detokenizer and stop checker over the same token): detokenization stays
    // exact across tokens either way.
    if (r->detok) {
      std::string first = r->stops.Push(r->detok->Push(commit.first_token));
      if (!commit.first_text_sent) r->pending_text = std::move(first);
    }
    // The sampler drew once for it on the prefill instance: so does this one.
    if (r->params.sampling.temperature > 0) r->rng.Next();
    r->first_token_time = NowSeconds();
    id = im.next_id.fetch_add(1);
    q.id = id;
    im.live[id] = std::move(r);
    im.scheduler->Add(&im.live[id]->seq);
    result = Status::Ok();
  });
  if (!result.ok()) return result;
  return id;
}

void Engine::Cancel(uint64_t request_id) {
  MutexLock lock(impl_->mu);
  impl_->cancels.push_back(request_id);
  impl_->cv.NotifyOne();
}

void Engine::Shutdown() {
  {
    MutexLock lock(impl_->mu);
    impl_->stopping = true;
    impl_->cv.NotifyOne();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

void Engine::Impl::Emit(Request& r, std::vector<int32_t> tokens, std::vector<SampledToken> samples, std::string text,
                        FinishReason finish, Status error) {
  RequestOutput o;
  o.request_id = r.seq.id;
  o.tokens = std::move(tokens);
  o.samples = std::move(samples);
  if (r.params.prompt_logprobs >= 0 && !r.prompt_samples_sent &&
      static_cast<int64_t>(r.prompt_samples.size()) == r.seq.prompt_len - 1) {
    o.prompt_samples = std::move(r.prompt_samples);
    r.prompt_samples_sent = true;
  }
  o.text = r.pending_text.empty() ? std::move(text) : std::exchange(r.pending_text, {}) + text;
  o.finished = finish != FinishReason::kNone;
  o.finish_reason = finish;
  o.error = std::move(error);
  o.usage.prompt_tokens = r.seq.prompt_len;
  o.usage.completion_tokens = r.seq.num_generated();
  o.usage.cached_tokens = r.seq.cached_prompt_tokens;
  o.first_token_time_s = r.first_token_time > 0 ? r.first_token_time - r.submit_time : 0;
  o.queue_time_s = r.first_step_time > 0 ? r.first_step_time - r.submit_time : 0;
  if (r.callback && *r.callback) outbox.emplace_back(r.callback, std::move(o));
}

void Engine::Impl::Finish(uint64_t id, FinishReason reason, Status error) {
  auto it = live.find(id);
  if (it == live.end()) return;
  Request& r = *it->second;
  std::string tail;
  if (reason != FinishReason::kStop || !r.stops.matched()) {
    if (r.detok) tail = r.stops.Flush(r.detok->Finish());
  }
  if (r.sink) ReleaseToSink(r, false);
  scheduler->Remove(&r.seq);
  Emit(r, {}, {}, std::move(tail), reason, std::move(error));
  live.erase(it);
}

void Engine::Impl::AcceptSampled(Request& r, SampledToken s) {
  if (r.seq.max_tokens == 0) {  // the prompt only (its log-probs): nothing is generated
    if (r.sink) ReleaseToSink(r, true);
    scheduler->Remove(&r.seq);
    Emit(r, {}, {}, {}, FinishReason::kLength);
    live.erase(r.seq.id);  // destroys r
    return;
  }
  const int32_t t = s.token;
  r.seq.tokens.push_back(t);
  if (r.first_token_time == 0) r.first_token_time = NowSeconds();
  if (r.params.sampling.has_penalties()) r.history.AddOutput(t);
  const bool stop_token = std::find(r.stop_ids.begin(), r.stop_ids.end(), t) != r.stop_ids.end();
  bool value_done = false;  // the grammar's value is complete: nothing can follow
  if (r.grammar_state && !stop_token) {
    if (!AdvanceGrammar(r, t)) {  // the mask allowed it: a bug, never a wrong output
      r.seq.tokens.pop_back();
      Finish(r.seq.id, FinishReason::kError, Internal("the structured output's grammar refused a token its mask allowed"));
      return;
    }
    value_done = r.params.grammar->Finished(*r.grammar_state);
  }
  std::string text;
  if (r.detok) text = r.stops.Push(r.detok->Push(t));
  FinishReason finish = FinishReason::kNone;
  if (r.stops.matched() || stop_token || value_done) {
    finish = FinishReason::kStop;
  } else if (r.seq.num_generated() >= r.seq.max_tokens || r.seq.num_tokens() >= max_model_len) {
    finish = FinishReason::kLength;
  }
  std::vector<SampledToken> samples;
  samples.push_back(std::move(s));
  if (finish == FinishReason::kNone) {
    Emit(r, {t}, std::move(samples), std::move(text), FinishReason::kNone);
    return;
  }
  // The final output carries this token and whatever text was held back.
  if (!r.stops.matched() && r.detok) text += r.stops.Flush(r.detok->Finish());
  if (r.sink) ReleaseToSink(r, true);
  scheduler->Remove(&r.seq);
  Emit(r, {t}, std::move(samples), std::move(text), finish);
  live.erase(r.seq.id);  // destroys r
}

bool Engine::Impl::AdvanceGrammar(Request& r, int32_t t) {
  const std::string* text = token_table->TextOf(t);
  if (text == nullptr) return false;
  r.params.grammar->FeedBytes(&*r.grammar_state, *text);
  return !r.grammar_state->dead();
}

const uint64_t* Engine::Impl::GrammarMask(Request& r) {
  // Tokens left: this one included, within max_tokens and the context.
  const int64_t total = r.params.grammar_max_tokens > 0 ? r.params.grammar_max_tokens : r.seq.max_tokens;
  const int64_t budget = std::min(total - r.seq.num_generated(), max_model_len - r.seq.num_tokens());
  std::shared_ptr<const engine::GrammarMask> m = MaskFor(*r.params.grammar, *token_table, *r.grammar_state, budget);
  thread_local std::vector<uint64_t> bits;
  bits = m->bits;
  bool any = m->allowed > 0;
  if (m->end_allowed) {
    for (int32_t e : r.stop_ids) {
      if (e >= 0 && static_cast<size_t>(e) < bits.size() * 64) {
        bits[static_cast<size_t>(e) >> 6] |= uint64_t{1} << (e & 63);
        any = true;
      }
    }
  }
  if (!any) {
    // Complete but no EOS to end it (ignore_eos): it ends here; otherwise no
    // token of this vocabulary continues the value.
    if (m->end_allowed) {
      Finish(r.seq.id, FinishReason::kStop);
    } else {
      Finish(r.seq.id, FinishReason::kError, Internal("no token of the vocabulary continues the structured output"));
    }
    return nullptr;
  }
  return bits.data();
}

void Engine::Impl::ReleaseToSink(Request& r, bool ok) {
  r.sink->OnFinished(ok, r.seq.kv.pages, *pool);
  for (int32_t p : r.seq.kv.pages) pool->Ref(p);  // until the sink's writes end
  pinned.emplace_back(std::move(r.sink), r.seq.kv.pages);
  r.seq.kv_sink = nullptr;
}

void Engine::Impl::UnpinIdleSinks(bool wait) {
  for (;;) {
    for (auto it = pinned.begin(); it != pinned.end();) {
      if (it->first->Idle()) {
        for (int32_t p : it->second) pool->Unref(p);
        it = pinned.erase(it);
      } else {
        ++it;
      }
    }
    if (!wait || pinned.empty()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // sinks' writes end within their timeout
  }
}

bool Engine::Impl::KvBusy() const { return !pinned.empty() || reservations->active() > 0 || reservations->stats().quarantined_pages > 0; }

void Engine::Impl::PublishStats() {
  MutexLock lock(mu);
  stats.running = scheduler->num_running();
  stats.waiting = scheduler->num_waiting() + static_cast<int64_t>(incoming.size());
  stats.kv_pages_cached = pool->num_cached_pages();
  stats.kv_pages_used = pool->num_pages() - pool->num_free_pages();
  stats.prefix_query_tokens = scheduler->prefix_query_tokens();
  stats.prefix_hit_tokens = scheduler->prefix_hit_tokens();
  stats.preemptions = scheduler->num_preemptions();
  stats.loading = scheduler->num_loading();
  const KvConnectorStats& kv = scheduler->kv_stats();
  stats.kv_loads = kv.loads;
  stats.kv_load_failures = kv.load_failures;
  stats.kv_loaded_tokens = kv.loaded_tokens;
  stats.kv_saves = kv.saves;
  stats.kv_save_failures = kv.save_failures;
  stats.kv_reservations = reservations->stats();
  int64_t context = 0;
  for (const auto& [id, r] : live) context += r->seq.num_tokens();
  stats.context_tokens = context;
  queued = stats.waiting;
}

void Engine::Impl::Deliver() {
  for (auto& [cb, o] : outbox) (*cb)(std::move(o));
  outbox.clear();
}

void Engine::Impl::Loop() {
  while (true) {
    std::vector<std::unique_ptr<Request>> fresh;
    std::vector<uint64_t> cancelled;
    std::vector<std::function<void()>> todo;
    bool stop;
    {
      MutexLock lock(mu);
      // Loads and saves still in flight are collected by Step (it polls);
      // pinned pages and reservations are looked at every few ms.
      auto ready = [&] {
        return stopping || !incoming.empty() || !cancels.empty() || !tasks.empty() || !live.empty() ||
               scheduler->has_pending_kv();
      };
      if (KvBusy()) {
        cv.WaitFor(mu, std::chrono::milliseconds(5), ready);
      } else {
        cv.Wait(mu, ready);
      }
      fresh.swap(incoming);
      cancelled.swap(cancels);
      todo.swap(tasks);
      stop = stopping;
    }
    for (auto& fn : todo) fn();
    reservations->Tick(NowMs());
    UnpinIdleSinks(false);
    for (auto& r : fresh) {
      Request* raw = r.get();
      live[raw->seq.id] = std::move(r);
      if (raw->seq.max_tokens == 0 && raw->params.prompt_logprobs < 0) {  // nothing to compute
        Finish(raw->seq.id, FinishReason::kLength);
        continue;
      }
      scheduler->Add(&raw->seq);
    }
    for (uint64_t id : cancelled) Finish(id, FinishReason::kAbort);
    if (stop) {
      std::vector<uint64_t> ids;
      for (auto& [id, r] : live) ids.push_back(id);
      for (uint64_t id : ids) Finish(id, FinishReason::kAbort);
      scheduler->WaitForKv();  // no connector thread may touch the pool after this
      UnpinIdleSinks(true);     // nor a sink's write
      draining = true;          // tasks queued before `stopping` admit nothing now
      {
        MutexLock lock(mu);  // a task queued before `stopping` still gets its answer
        todo.swap(tasks);
      }
      for (auto& fn : todo) fn();
      PublishStats();
      Deliver();
      return;
    }
    if (!live.empty() || scheduler->has_pending_kv()) Step();
    PublishStats();
    Deliver();
  }
}

void Engine::Impl::Step() {
  SchedulerOutput out = scheduler->Schedule();
  if (out.scheduled.empty()) {
    // Nothing fits now (Submit refuses what can never fit); wait for a change.
    MutexLock lock(mu);
    cv.WaitFor(mu, std::chrono::milliseconds(5));
    return;
  }
  std::vector<ForwardSeq> batch;
  batch.reserve(out.scheduled.size());
  // Sequences scoring their prompt (prompt_logprobs) want every row of a prompt chunk.
  std::vector<char> all_rows(out.scheduled.size(), 0);
  for (size_t i = 0; i < out.scheduled.size(); ++i) {
    const ScheduledSeq& s = out.scheduled[i];
    all_rows[i] = s.start < s.seq->prompt_len && live.at(s.seq->id)->params.prompt_logprobs >= 0;
    batch.push_back({std::span<const int32_t>(s.seq->tokens.data() + s.start, static_cast<size_t>(s.num_tokens)),
                     s.start, &s.seq->kv, s.sample, all_rows[i] != 0});
  }
  // Sinks (prefill instances): cached tokens are reported first, then each
  // layer of the new tokens as it is written.
  std::vector<std::pair<KvLayerSink*, const ScheduledSeq*>> sinks;
  for (const ScheduledSeq& s : out.scheduled) {
    KvLayerSink* sink = s.seq->kv_sink;
    if (!sink) continue;
    sinks.emplace_back(sink, &s);
    if (s.start > 0 && !s.seq->cached_prefix_sent) {
      for (int64_t l = 0; l < pool->num_layers(); ++l) sink->OnLayer(l, 0, s.start, s.seq->kv.pages, *pool);
    }
    s.seq->cached_prefix_sent = true;
  }
  std::function<void(int64_t)> hook;
  if (!sinks.empty()) {
    hook = [&](int64_t l) {
      for (auto [sink, s] : sinks) sink->OnLayer(l, s->start, s->num_tokens, s->seq->kv.pages, *pool);
    };
  }
  const double step_start = NowSeconds();
  int64_t step_context = 0;
  for (const ScheduledSeq& s : out.scheduled) {
    step_context += s.start + s.num_tokens;
    Request& req = *live.at(s.seq->id);
    if (req.first_step_time == 0) req.first_step_time = step_start;
  }
  std::vector<float> logits;
  Status st = Status::Ok();
  // A library that throws (oneDNN, an allocation, a sink) fails this step's
  // requests, not the process: the engine goes on with the next step.
  try {
    st = runner->Forward(batch, *pool, &logits, hook);
  } catch (const std::exception& e) {
    st = Internal(std::string("the model step threw: ") + e.what());
  }
  if (!st.ok()) {
    LOG_ERROR("engine step failed: {}", st.ToString());
    for (const ScheduledSeq& s : out.scheduled) Finish(s.seq->id, FinishReason::kError, st);
    return;
  }
  scheduler->Commit(out);
  const int64_t vocab = runner->config().vocab_size;
  int64_t row = 0, generated = 0, prompt = 0;
  // Copy the ids first: AcceptSampled may destroy finished requests.
  std::vector<std::pair<uint64_t, int64_t>> to_sample;
  for (size_t i = 0; i < out.scheduled.size(); ++i) {
    const ScheduledSeq& s = out.scheduled[i];
    if (s.start < s.seq->prompt_len) prompt += std::min(s.seq->prompt_len, s.start + s.num_tokens) - s.start;
    if (all_rows[i]) {
      // Row j scores the token after position start + j; positions scored
      // before (a preempted sequence recomputing) are not scored again.
      Request& req = *live.at(s.seq->id);
      for (int64_t j = 0; j < s.num_tokens; ++j) {
        const int64_t pos = s.start + j;
        if (pos + 1 >= s.seq->prompt_len || pos != static_cast<int64_t>(req.prompt_samples.size())) continue;
        req.prompt_samples.push_back(ScoreToken(logits.data() + (row + j) * vocab, vocab, s.seq->tokens[pos + 1],
                                                req.params.prompt_logprobs));
      }
      row += s.num_tokens;
      if (s.sample) to_sample.emplace_back(s.seq->id, row - 1);
    } else if (s.sample) {
      to_sample.emplace_back(s.seq->id, row++);
    }
  }
  for (auto [id, r] : to_sample) {
    Request& req = *live.at(id);
    const uint64_t* allowed = nullptr;
    if (req.grammar_state && req.seq.max_tokens > 0) {
      allowed = GrammarMask(req);
      if (allowed == nullptr) continue;  // finished (req is gone)
    }
    SampledToken tok = Sample(logits.data() + r * vocab, vocab, req.params.sampling, req.rng,
                              req.params.sampling.has_penalties() ? &req.history : nullptr, allowed);
    AcceptSampled(req, std::move(tok));
    ++generated;
  }
  const double step_seconds = NowSeconds() - step_start;
  MutexLock lock(mu);
  ++stats.steps;
  stats.generation_tokens += generated;
  stats.prompt_tokens += prompt;
  if (prompt == 0) {
    stats.last_decode_step = {stats.steps, static_cast<int64_t>(out.scheduled.size()), step_context, step_seconds};
  }
}

}  // namespace crescent::engine
