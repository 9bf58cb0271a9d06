#include "server/pd_front.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <chrono>
#include <limits>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "base/logging.h"
#include "engine/stop_checker.h"
#include "model/detokenizer.h"
#include "proto/instance.grpc.pb.h"
#include "server/instance_registry.h"
#include "server/kv_instance_proto.h"
#include "store/grpc_status.h"
#include "base/thread_annotations.h"

namespace crescent::server {
namespace {

using store::FromGrpc;

struct Instance {
  std::string address;
  bool prefill = true;
  int slot = -1;  // in the placement's view
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<proto::KvInstance::Stub> stub;
  std::atomic<int64_t> in_flight{0};
  // The prober's verdict: not picked while it does not answer, and the calls
  // on it are cancelled when it goes silent.
  std::atomic<bool> unresponsive{false};
  std::atomic<bool> probing{false};  // an Info of the prober in flight
  std::atomic<int64_t> last_answer_ns{std::chrono::steady_clock::now().time_since_epoch().count()};
};

std::chrono::system_clock::time_point In(int64_t ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

}  // namespace

class PdFront::Impl {
 public:
  explicit Impl(PdFrontOptions o) : options_(std::move(o)), placement_(options_.placement) {}

  enum class Admission { kAdmitted, kNoAnswer, kRefused };
  // Asks `address` for its Info (until `give_up`) and admits it when it serves
  // this front's model, role and KV; kRefused: it does not (asked again only
  // once it left the registry and came back); kNoAnswer: asked again later.
  Admission Admit(const std::string& address, bool is_prefill, std::chrono::steady_clock::time_point give_up) {
    auto as_hash = [](const std::string& b) {
      Hash128 h;
      if (b.size() == sizeof(h)) std::memcpy(&h, b.data(), sizeof(h));
      return h;
    };
    std::shared_ptr<Instance> i = Make(address);
    proto::InfoReply info;
    grpc::Status s;
    do {  // an instance may still be loading its model
      grpc::ClientContext ctx;
      ctx.set_deadline(In(1000));
      ctx.set_wait_for_ready(true);
      s = i->stub->Info(&ctx, proto::InfoRequest{}, &info);
    } while (!s.ok() && std::chrono::steady_clock::now() < give_up);
    if (!s.ok()) {
      LOG_ERROR("pd front: instance {} does not answer: {}", address, s.error_message());
      return Admission::kNoAnswer;
    }
    if (as_hash(info.model_hash()) != options_.model_hash) {
      LOG_ERROR("pd front: instance {} serves another model: refused", address);
      return Admission::kRefused;
    }
    if (info.role() != (is_prefill ? "prefill" : "decode")) {
      LOG_ERROR("pd front: instance {} is a {} instance, not a {} one: refused", address, info.role(),
                is_prefill ? "prefill" : "decode");
      return Admission::kRefused;
    }
    const Hash128 fp = as_hash(info.kv_fingerprint());
    MutexLock l(inst_mu_);
    if (!have_fp_) {
      fingerprint_ = fp;
      have_fp_ = true;
    } else if (fp != fingerprint_) {
      LOG_ERROR("pd front: instance {} computes other KV (dtype or geometry): refused", address);
      return Admission::kRefused;
    }
    if (max_model_len_ == 0 || info.max_model_len() < max_model_len_) max_model_len_ = info.max_model_len();
    vocab_size_ = info.vocab_size();
    if (is_prefill && !have_geometry_) {
      placement_.SetGeometry(fp, info.page_tokens(), info.chunk_tokens());
      have_geometry_ = true;
    }
    i->prefill = is_prefill;
    i->slot = placement_.AddInstance(is_prefill, address);
    slots_[i->slot] = i;
    (is_prefill ? prefill_ : decode_).push_back(i);
    LOG_INFO("pd front: {} instance {} joined", is_prefill ? "prefill" : "decode", address);
    l.Unlock();    // never held across a call
    ReportNow(i);  // a candidate from its first report on
    return Admission::kAdmitted;
  }

  // One Report, synchronously (an instance that just joined).
  void ReportNow(const std::shared_ptr<Instance>& i) {
    if (i->probing.exchange(true)) return;  // the prober's report is in flight: replies apply in order
    struct Done {
      Instance& i;
      ~Done() { i.probing = false; }
    } done{*i};
    grpc::ClientContext ctx;
    ctx.set_deadline(In(options_.unresponsive_ms));
    proto::ReportReply rep;
    if (i->stub->Report(&ctx, placement_.ReportRequestFor(i->slot), &rep).ok()) placement_.OnReport(i->slot, rep);
  }

  // A thread that runs `fn` every `ms` until the front stops.
  std::thread Every(int64_t ms, std::function<void()> fn) {
    return std::thread([this, ms, fn = std::move(fn)] {
      MutexLock l(mu_);
      while (!stopping_) {
        cv_.WaitFor(mu_, std::chrono::milliseconds(ms));
        if (stopping_) break;
        l.Unlock();
        fn();
        l.Lock();
      }
    });
  }

  Status Connect() {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.connect_timeout_ms);
    for (bool is_prefill : {true, false}) {
      for (const std::string& a : is_prefill ? options_.prefill : options_.decode) Admit(a, is_prefill, give_up);
    }
    if (options_.probe_ms > 0) prober_ = Every(options_.probe_ms, [this] { Probe(); });
    if (options_.registry) {
      Refresh();
      refresher_ = Every(options_.refresh_ms, [this] { Refresh(); });
      return Status::Ok();  // instances may come later: until then requests get 503
    }
    MutexLock l(inst_mu_);
    if (prefill_.empty() || decode_.empty()) {
      return Unavailable(fmt::format("no usable {} instance", prefill_.empty() ? "prefill" : "decode"));
    }
    LOG_INFO("pd front: {} prefill and {} decode instance(s)", prefill_.size(), decode_.size());
    return Status::Ok();
  }

  // Syncs the instance set with the registry: new ones are asked for their
  // Info, those whose registration went (lease expired) leave.
  void Refresh() {
    Result<std::vector<InstanceRecord>> listed = ListInstances(*options_.registry);
    if (!listed.ok()) {
      LOG_WARNING("pd front: the instance registry does not answer: {}", listed.status().ToString());
      return;  // keep what we have
    }
    std::set<std::string> listed_all;
    for (const InstanceRecord& r : *listed) listed_all.insert(r.kv_address);
    for (auto it = refused_.begin(); it != refused_.end();) {  // gone from the registry: asked afresh if it returns
      it = listed_all.contains(*it) ? std::next(it) : refused_.erase(it);
    }
    std::vector<std::shared_ptr<Instance>> left;
    for (bool is_prefill : {true, false}) {
      std::set<std::string> want;
      for (const InstanceRecord& r : *listed) {
        if ((r.role == "prefill") == is_prefill) want.insert(r.kv_address);
      }
      std::set<std::string> have;
      {
        MutexLock l(inst_mu_);
        auto& v = is_prefill ? prefill_ : decode_;
        for (auto it = v.begin(); it != v.end();) {
          if (options_.registry && !want.contains((*it)->address) && !Static((*it)->address)) {
            LOG_INFO("pd front: instance {} left the registry", (*it)->address);
            placement_.RemoveInstance((*it)->slot);
            slots_.erase((*it)->slot);
            left.push_back(*it);
            it = v.erase(it);  // requests on it hold their own reference
          } else {
            have.insert((*it)->address);
            ++it;
          }
        }
      }
      for (const std::string& a : want) {
        if (!have.contains(a) && !refused_.contains(a) &&
            Admit(a, is_prefill, std::chrono::steady_clock::now()) == Admission::kRefused) {
          refused_.insert(a);  // asked again once it left the registry and came back
        }
      }
    }
    // Its lease ran out: whatever is still in flight on it (a silent process
    // keeps its sockets open) is cancelled, so it is retried elsewhere or
    // fails now rather than at its deadline; the prober no longer sees it.
    if (!left.empty()) {
      MutexLock l(mu_);
      for (const std::shared_ptr<Instance>& i : left) {
        for (auto& [id, r] : live_) r->Lose(i.get(), fmt::format("the instance {} left the registry", i->address));
      }
    }
  }
  // One round of the prober: every instance without an Info of the prober
  // still in flight is asked again (deadline unresponsive_ms; the answer's
  // time is recorded when it comes, so a slow instance is not a dead one).
  // One that has not answered for unresponsive_ms is not picked, and the
  // calls on it are cancelled (a SIGSTOPped process keeps its sockets open:
  // without this its requests would wait for their deadlines); one that
  // answers again is picked again.
  void Probe() {
    std::vector<std::shared_ptr<Instance>> all;
    {
      MutexLock l(inst_mu_);
      all = prefill_;
      all.insert(all.end(), decode_.begin(), decode_.end());
    }
    for (const std::shared_ptr<Instance>& i : all) {
      if (i->probing.exchange(true)) continue;
      struct Call {
        grpc::ClientContext ctx;
        proto::ReportRequest request;
        proto::ReportReply reply;
      };
      auto call = std::make_shared<Call>();
      call->ctx.set_deadline(In(options_.unresponsive_ms));
      call->request = placement_.ReportRequestFor(i->slot);
      // The callback holds the instance (its stub) and the call until it
      // ran; the front outlives it (its destructor waits for the probes).
      {
        MutexLock l(probes_mu_);
        probes_.insert(&call->ctx);  // the destructor cancels what is still in flight
        probes_in_flight_++;
      }
      i->stub->async()->Report(&call->ctx, &call->request, &call->reply, [this, i, call](grpc::Status s) {
        if (s.ok()) {
          i->last_answer_ns = std::chrono::steady_clock::now().time_since_epoch().count();
          placement_.OnReport(i->slot, call->reply);
        }
        i->probing = false;
        MutexLock l(probes_mu_);
        probes_.erase(&call->ctx);
        probes_in_flight_--;
      });
    }
    const auto now = std::chrono::steady_clock::now();
    for (const std::shared_ptr<Instance>& ip : all) {
      Instance& i = *ip;
      const auto silent = now - std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(i.last_answer_ns.load()));
      if (silent < std::chrono::milliseconds(options_.unresponsive_ms)) {
        if (i.unresponsive.exchange(false)) {
          LOG_INFO("pd front: instance {} answers again", i.address);
          placement_.SetResponsive(i.slot, true);
        }
        continue;
      }
      placement_.SetResponsive(i.slot, false);
      const std::string why = fmt::format("the instance {} has not answered for {} ms", i.address,
                                          std::chrono::duration_cast<std::chrono::milliseconds>(silent).count());
      if (!i.unresponsive.exchange(true)) LOG_WARNING("pd front: {}: not picked, and its calls are cancelled", why);
      MutexLock l(mu_);
      for (auto& [id, r] : live_) r->Lose(&i, why);
    }
  }
  bool Static(const std::string& a) const {
    return std::find(options_.prefill.begin(), options_.prefill.end(), a) != options_.prefill.end() ||
           std::find(options_.decode.begin(), options_.decode.end(), a) != options_.decode.end();
  }

  Hash128 fingerprint() const {
    MutexLock l(inst_mu_);
    return fingerprint_;
  }
  int64_t max_model_len() const {  // before any instance answered: no limit here (Submit answers 503)
    MutexLock l(inst_mu_);
    const int64_t m = options_.max_model_len > 0 && max_model_len_ > 0 ? std::min(options_.max_model_len, max_model_len_)
                                                                      : std::max(options_.max_model_len, max_model_len_);
    return m > 0 ? m : std::numeric_limits<int32_t>::max();
  }
  int64_t vocab_size() const {
    MutexLock l(inst_mu_);
    return vocab_size_;
  }
  ~Impl() {
    {
      MutexLock l(mu_);
      stopping_ = true;
      for (auto& [id, r] : live_) r->Cancel();
      cv_.NotifyAll();
    }
    if (refresher_.joinable()) refresher_.join();
    if (prober_.joinable()) prober_.join();
    {
      MutexLock l(probes_mu_);
      for (grpc::ClientContext* c : probes_) c->TryCancel();
    }
    while (probes_in_flight_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::map<uint64_t, std::thread> ts;
    {
      MutexLock l(mu_);
      ts.swap(threads_);
    }
    for (auto& [id, t] : ts) t.join();
  }

  Result<uint64_t> Submit(engine::EngineRequest req, engine::OutputCallback cb) {
    if (req.prompt.empty()) return InvalidArgument("the prompt is empty");
    if (req.params.max_tokens < 1 && req.params.prompt_logprobs < 0) {
      return InvalidArgument("max_tokens must be >= 1 (0 only with prompt log-probs)");
    }
    const int64_t limit = max_model_len(), vocab = vocab_size();
    if (limit > 0 && static_cast<int64_t>(req.prompt.size()) + req.params.max_tokens > limit) {
      return InvalidArgument(fmt::format("this model's maximum context length is {} tokens; the request asks for {}",
                                         limit, req.prompt.size() + req.params.max_tokens));
    }
    for (int32_t t : req.prompt) {
      if (t < 0 || (vocab > 0 && t >= vocab)) return InvalidArgument(fmt::format("token id {} is outside the vocabulary", t));
    }
    {
      MutexLock l(inst_mu_);
      if (prefill_.empty() || (decode_.empty() && req.params.max_tokens > 1)) {
        return Unavailable("no prefill or no decode instance");
      }
    }
    // The Conductor places it now, so a refusal (429) comes before any work.
    ASSIGN_OR_RETURN(PlacementTicket ticket, placement_.Place(req.prompt, req.params.max_tokens));
    auto r = std::make_shared<Running>();
    r->ticket = ticket;
    MutexLock l(mu_);
    if (stopping_) {
      placement_.PrefillEnded(ticket);
      placement_.DecodeFailed(ticket);
      return Unavailable("the front is shutting down");
    }
    for (uint64_t done : done_) {  // requests that ended: their threads have returned or are about to
      auto t = threads_.find(done);
      if (t == threads_.end()) continue;
      t->second.join();
      threads_.erase(t);
    }
    done_.clear();
    const uint64_t id = next_id_++;
    r->id = id;
    live_[id] = r;
    threads_.emplace(id, std::thread([this, r, req = std::move(req), cb = std::move(cb)]() mutable {
      Drive(*r, std::move(req), cb);
      MutexLock l2(mu_);
      live_.erase(r->id);
      done_.push_back(r->id);
    }));
    return id;
  }

  void Cancel(uint64_t id) {
    MutexLock l(mu_);
    auto it = live_.find(id);
    if (it != live_.end()) it->second->Cancel();
  }

  const PdPlacement& placement() const { return placement_; }
  int64_t kv_waits() const { return kv_waits_.load(); }
  int64_t in_flight() const {
    MutexLock l(mu_);
    return static_cast<int64_t>(live_.size());
  }
  engine::EngineStats Stats() const {
    engine::EngineStats s;
    s.running = in_flight();
    s.prefix_query_tokens = prefix_query_tokens_.load();
    s.prefix_hit_tokens = prefix_hit_tokens_.load();
    s.prompt_tokens = s.prefix_query_tokens;
    s.generation_tokens = generation_tokens_.load();
    return s;
  }

 private:
  struct Running {
    uint64_t id = 0;
    PlacementTicket ticket;
    std::chrono::steady_clock::time_point submitted = std::chrono::steady_clock::now();
    Mutex mu;
    grpc::ClientContext* ctx = nullptr;  // the call in flight
    Instance* on = nullptr;              // the instance it is on
    bool cancelled = false;
    std::string lost;  // why the prober cancelled the call in flight (its instance went silent)
    void Cancel() {
      MutexLock l(mu);
      cancelled = true;
      if (ctx) ctx->TryCancel();
    }
    // Cancels the call in flight when it is on `i`.
    void Lose(const Instance* i, const std::string& why) {
      MutexLock l(mu);
      if (ctx == nullptr || on != i) return;
      lost = why;
      ctx->TryCancel();
    }
    bool Enter(grpc::ClientContext* c, Instance* i) {  // false: cancelled already (and `c` not kept)
      MutexLock l(mu);
      if (cancelled) return false;
      ctx = c;
      on = i;
      lost.clear();
      return true;
    }
    // Ends the call; a non-empty answer: the prober cancelled it, and why.
    std::string Leave() {
      MutexLock l(mu);
      ctx = nullptr;
      on = nullptr;
      return std::exchange(lost, {});
    }
    bool is_cancelled() {
      MutexLock l(mu);
      return cancelled;
    }
  };

  static std::shared_ptr<Instance> Make(const std::string& address) {
    auto i = std::make_shared<Instance>();
    i->address = address;
    grpc::ChannelArguments args;
    // A resync Report lists every page key an instance holds (18 bytes each):
    // more than gRPC's default 4 MB for a pool of a few hundred thousand pages.
    args.SetMaxReceiveMessageSize(256 << 20);
    i->channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    i->stub = proto::KvInstance::NewStub(i->channel);
    return i;
  }

  // The answering instance with the fewest requests in flight, other than
  // `not_this` where there is another (else `not_this` itself, if it answers).
  std::shared_ptr<Instance> Pick(bool prefill, const Instance* not_this) {
    MutexLock l(inst_mu_);
    auto& from = prefill ? prefill_ : decode_;
    std::shared_ptr<Instance> best, fallback;
    for (auto& i : from) {
      if (i->unresponsive) continue;
      if (i.get() == not_this) {
        fallback = i;
        continue;
      }
      if (!best || i->in_flight < best->in_flight) best = i;
    }
    return best ? best : fallback;
  }

  void Final(engine::OutputCallback& cb, uint64_t id, const engine::Usage& usage, engine::FinishReason reason,
             Status error = Status::Ok()) {
    engine::RequestOutput o;
    o.request_id = id;
    o.finished = true;
    o.finish_reason = reason;
    o.error = std::move(error);
    o.usage = usage;
    cb(std::move(o));
  }

  // One try on a (D, P) pair; `started` once an output went to the client
  // (from then on the request ends in this try, with its final output).
  // A call that failed because the instance cannot be reached (its process
  // is gone: connection refused or reset) makes it unresponsive at once,
  // until it answers the prober again: the next requests do not try it.
  void NoteFailure(Instance* i, const grpc::Status& s) {
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE ||
        i->channel->GetState(false) != GRPC_CHANNEL_TRANSIENT_FAILURE) {
      return;
    }
    const auto silent_since = std::chrono::steady_clock::now() - std::chrono::milliseconds(options_.unresponsive_ms + 1);
    i->last_answer_ns = silent_since.time_since_epoch().count();
    if (!i->unresponsive.exchange(true)) {
      LOG_WARNING("pd front: instance {} cannot be reached ({}): not picked until the prober hears from it", i->address,
                  s.error_message());
      placement_.SetResponsive(i->slot, false);
    }
  }

  std::shared_ptr<Instance> BySlot(int slot) {
    MutexLock l(inst_mu_);
    auto it = slots_.find(slot);
    return it == slots_.end() ? nullptr : it->second;
  }

  // `t`: the Conductor's placement this try follows (null on a retry): its
  // prefill and decode are accounted in the view until they end.
  Status TryOnce(Running& run, const engine::EngineRequest& req, engine::OutputCallback& cb, Instance* d, Instance* p,
                 const PlacementTicket* t, bool& started) {
    bool prefill_open = t != nullptr, decode_open = t != nullptr;
    struct Accounting {  // however this try ends, the view stops counting what did not start
      PdPlacement& placement;
      const PlacementTicket* t;
      bool& prefill_open;
      bool& decode_open;
      ~Accounting() {
        if (prefill_open) placement.PrefillEnded(*t);
        if (decode_open) placement.DecodeFailed(*t);
      }
    } accounting{placement_, t, prefill_open, decode_open};
    const proto::GenParams params = ToProto(req.params);
    proto::ReserveRequest rq;
    for (int32_t t : req.prompt) rq.add_prompt(t);
    rq.set_max_tokens(req.params.max_tokens);
    rq.set_fingerprint(std::string(reinterpret_cast<const char*>(&fingerprint_), sizeof(fingerprint_)));
    proto::Reservation res;
    const bool decode = req.params.max_tokens > 1;  // one token: the prefill instance alone
    auto cancel_reservation = [&] {  // the pages go back (quarantined first)
      if (!decode) return;
      grpc::ClientContext ctx;
      ctx.set_deadline(In(options_.reserve_timeout_ms));
      proto::CancelReservationRequest c;
      c.set_id(res.id());
      proto::CancelReservationReply ignored;
      d->stub->CancelReservation(&ctx, c, &ignored);
    };
    // A decode pool without room now (its KV is reserved by requests still
    // in prefill or decoding) is waited for, up to kv_wait_ms: the request
    // queues here instead of failing.
    const auto wait_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.kv_wait_ms);
    for (int tries = 0; decode; ++tries) {
      grpc::ClientContext ctx;
      ctx.set_deadline(In(options_.reserve_timeout_ms));
      if (!run.Enter(&ctx, d)) return Cancelled("cancelled");
      grpc::Status s = d->stub->Reserve(&ctx, rq, &res);
      const std::string lost = run.Leave();
      if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED && lost.empty() && !run.is_cancelled() &&
          std::chrono::steady_clock::now() < wait_until) {
        if (tries == 0) kv_waits_++;
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5 << std::min(tries, 4), 50)));
        continue;
      }
      if (!s.ok()) NoteFailure(d, s);
      if (!s.ok()) return lost.empty() ? FromGrpc(s, "reserve on decode instance " + d->address) : Unavailable(lost);
      if (!lost.empty()) {  // reserved just as the prober gave up on it
        cancel_reservation();
        return Unavailable(lost);
      }
      if (t) placement_.DecodeReserved(*t);
      break;
    }
    proto::PrefillRequest pq;
    *pq.mutable_prompt() = rq.prompt();
    *pq.mutable_params() = params;
    if (decode) *pq.mutable_target() = res;
    if (t) {
      pq.set_placement_id(t->id);
      pq.set_expected_prefix_tokens(t->prefix_tokens);
      pq.set_limit_external(true);
      pq.set_max_external_tokens(t->max_external_tokens);
    }
    proto::PrefillReply first;
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(In(options_.prefill_timeout_ms));
      if (!run.Enter(&ctx, p)) {
        cancel_reservation();
        return Cancelled("cancelled");
      }
      p->in_flight++;
      grpc::Status s = p->stub->Prefill(&ctx, pq, &first);
      p->in_flight--;
      if (prefill_open) placement_.PrefillEnded(*t);
      prefill_open = false;
      const std::string lost = run.Leave();
      if (!s.ok()) NoteFailure(p, s);
      if (!s.ok() || !lost.empty()) {
        cancel_reservation();
        return lost.empty() ? FromGrpc(s, "prefill on instance " + p->address) : Unavailable(lost);
      }
    }
    engine::Usage usage;
    usage.prompt_tokens = static_cast<int64_t>(req.prompt.size());
    usage.cached_tokens = first.cached_tokens();
    usage.completion_tokens = req.params.max_tokens == 0 ? 0 : 1;
    started = true;
    prefix_query_tokens_ += usage.prompt_tokens;  // the prefill instances' prefix caches, as the front sees them
    prefix_hit_tokens_ += usage.cached_tokens;
    generation_tokens_ += usage.completion_tokens;
    {
      engine::RequestOutput o;
      o.request_id = run.id;
      for (const proto::Sample& s : first.prompt_samples()) o.prompt_samples.push_back(FromProto(s));
      if (req.params.max_tokens == 0) {  // the prompt's log-probs alone
        o.usage = usage;
        o.finished = true;
        o.finish_reason = engine::FinishReason::kLength;
        cb(std::move(o));
        return Status::Ok();
      }
      o.tokens = {first.first().token()};
      o.samples = {FromProto(first.first())};
      o.usage = usage;
      o.first_token_time_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - run.submitted).count();
      if (t) placement_.FirstToken(*t, o.first_token_time_s);
      if (first.finished()) {  // the first token ended it: nothing to decode
        cancel_reservation();
        o.text = first.text();
        o.finished = true;
        o.finish_reason = FinishReasonFromName(first.finish_reason());
        cb(std::move(o));
        return Status::Ok();
      }
      if (options_.tokenizer) {  // what an engine would stream for this token now
        model::IncrementalDetokenizer detok(options_.tokenizer, req.params.skip_special_tokens);
        engine::StopChecker stops(req.params.stop, req.params.include_stop_str_in_output);
        o.text = stops.Push(detok.Push(first.first().token()));
      }
      cb(std::move(o));
    }
    proto::DecodeRequest dq;
    *dq.mutable_prompt() = rq.prompt();
    *dq.mutable_params() = params;
    dq.set_reservation(res.id());
    dq.set_generation(res.generation());
    *dq.mutable_checksums() = first.checksums();
    dq.set_first_token(first.first().token());
    dq.set_first_text_sent(options_.tokenizer != nullptr);
    grpc::ClientContext ctx;
    ctx.set_deadline(In(options_.decode_timeout_ms));
    if (!run.Enter(&ctx, d)) {
      cancel_reservation();
      Final(cb, run.id, usage, engine::FinishReason::kAbort);
      return Status::Ok();
    }
    d->in_flight++;
    std::unique_ptr<grpc::ClientReader<proto::DecodeOutput>> reader = d->stub->Decode(&ctx, dq);
    if (decode_open) placement_.DecodeStarted(*t);
    decode_open = false;
    proto::DecodeOutput out;
    bool finished = false;
    while (reader->Read(&out)) {
      engine::RequestOutput o;
      o.request_id = run.id;
      for (const auto& s : out.samples()) {
        o.samples.push_back(FromProto(s));
        o.tokens.push_back(s.token());
      }
      o.text = out.text();
      generation_tokens_ += out.completion_tokens() - usage.completion_tokens;
      usage.completion_tokens = out.completion_tokens();
      o.usage = usage;
      o.finished = out.finished();
      o.finish_reason = FinishReasonFromName(out.finish_reason());
      if (!out.error().empty()) o.error = Internal(out.error());
      finished = o.finished;
      cb(std::move(o));
      if (finished) break;
    }
    grpc::Status s = reader->Finish();
    d->in_flight--;
    const std::string lost = run.Leave();
    if (finished) return Status::Ok();
    // The stream ended without its final output: never a silent truncation.
    if (run.is_cancelled()) {
      Final(cb, run.id, usage, engine::FinishReason::kAbort);
    } else {
      Final(cb, run.id, usage, engine::FinishReason::kError,
            Unavailable("the decode instance " + d->address + " failed mid-generation: " +
                        (lost.empty() ? s.error_message() : lost)));
    }
    return Status::Ok();
  }

  void Drive(Running& run, engine::EngineRequest req, engine::OutputCallback& cb) {
    std::shared_ptr<Instance> d, p;
    Status last = Unavailable("no prefill or no decode instance");
    for (int attempt = 0; attempt < 2; ++attempt) {  // a failed try is retried once, elsewhere where possible
      const bool need_decode = req.params.max_tokens > 1;  // one token: the prefill instance alone
      const PlacementTicket* t = attempt == 0 ? &run.ticket : nullptr;
      if (t) {  // the Conductor's choice
        d = need_decode ? BySlot(t->decode_slot) : nullptr;
        p = BySlot(t->prefill_slot);
        if ((need_decode && !d) || !p) {  // it left between placement and now
          placement_.PrefillEnded(*t);
          placement_.DecodeFailed(*t);
          t = nullptr;
        }
      }
      if (!t) {
        d = need_decode ? Pick(false, d.get()) : nullptr;
        p = Pick(true, p.get());
      }
      if ((need_decode && !d) || !p) break;
      bool started = false;
      if (d) d->in_flight++;
      last = TryOnce(run, req, cb, d.get(), p.get(), t, started);
      if (d) d->in_flight--;
      if (started) return;  // the request reached its final output
      if (last.code() == StatusCode::kCancelled || last.code() == StatusCode::kInvalidArgument ||
          run.is_cancelled()) {
        break;
      }
      LOG_WARNING("pd front: request {}: {}{}", run.id, last.ToString(), attempt == 0 ? "; retrying" : "");
    }
    engine::Usage usage;
    usage.prompt_tokens = static_cast<int64_t>(req.prompt.size());
    if (run.is_cancelled()) {
      Final(cb, run.id, usage, engine::FinishReason::kAbort);
    } else {
      Final(cb, run.id, usage, engine::FinishReason::kError, last.ok() ? Unavailable("no instance answered") : last);
    }
  }

  PdFrontOptions options_;
  mutable Mutex inst_mu_;  // never held across a call; taken before PdPlacement's lock
  Hash128 fingerprint_ GUARDED_BY(inst_mu_);  // the instances' KV fingerprint
  bool have_fp_ GUARDED_BY(inst_mu_) = false;
  int64_t max_model_len_ GUARDED_BY(inst_mu_) = 0, vocab_size_ = 0;
  std::vector<std::shared_ptr<Instance>> prefill_, decode_ GUARDED_BY(inst_mu_);
  std::map<int, std::shared_ptr<Instance>> slots_ GUARDED_BY(inst_mu_);  // by view slot
  bool have_geometry_ GUARDED_BY(inst_mu_) = false;
  PdPlacement placement_;
  std::atomic<int64_t> probes_in_flight_{0};
  Mutex probes_mu_;                   // a leaf
  std::set<grpc::ClientContext*> probes_ GUARDED_BY(probes_mu_);  // probe calls in flight
  std::atomic<int64_t> kv_waits_{0};  // requests that waited for a decode pool's room
  std::set<std::string> refused_;  // refresher thread only
  std::thread refresher_, prober_;
  std::atomic<int64_t> prefix_query_tokens_{0}, prefix_hit_tokens_{0}, generation_tokens_{0};
  CondVar cv_;     // with mu_
  mutable Mutex mu_;
  std::map<uint64_t, std::shared_ptr<Running>> live_ GUARDED_BY(mu_);
  std::map<uint64_t, std::thread> threads_ GUARDED_BY(mu_);
  std::vector<uint64_t> done_ GUARDED_BY(mu_);  // ended, not joined
  uint64_t next_id_ GUARDED_BY(mu_) = 1;
  bool stopping_ GUARDED_BY(mu_) = false;
};

Result<std::unique_ptr<PdFront>> PdFront::Create(PdFrontOptions options) {
  if (!options.registry && (options.prefill.empty() || options.decode.empty())) {
    return InvalidArgument("a prefill/decode front needs at least one prefill and one decode instance");
  }
  auto impl = std::make_unique<Impl>(std::move(options));
  RETURN_IF_ERROR(impl->Connect());
  return std::unique_ptr<PdFront>(new PdFront(std::move(impl)));
}

PdFront::PdFront(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PdFront::~PdFront() = default;
Result<uint64_t> PdFront::Submit(engine::EngineRequest request, engine::OutputCallback callback) {
  return impl_->Submit(std::move(request), std::move(callback));
}
void PdFront::Cancel(uint64_t id) { impl_->Cancel(id); }
int64_t PdFront::in_flight() const { return impl_->in_flight(); }
Hash128 PdFront::kv_fingerprint() const { return impl_->fingerprint(); }
int64_t PdFront::retry_after_s() const { return impl_->placement().retry_after_s(); }
PlacementStats PdFront::placement_stats() const { return impl_->placement().Stats(); }
std::string PdFront::MetricsText() const {
  return ConductorMetricsText(impl_->placement()) +
         fmt::format("crescent_conductor_kv_waits_total {}\n", impl_->kv_waits());
}
int64_t PdFront::max_model_len() const { return impl_->max_model_len(); }
int64_t PdFront::vocab_size() const { return impl_->vocab_size(); }
engine::EngineStats PdFront::Stats() const { return impl_->Stats(); }

}  // namespace crescent::server
