#include "server/pd_front.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstring>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "base/logging.h"
#include "proto/instance.grpc.pb.h"
#include "server/kv_instance_proto.h"

namespace crescent::server {
namespace {

struct Instance {
  std::string address;
  std::unique_ptr<proto::KvInstance::Stub> stub;
  std::atomic<int64_t> in_flight{0};
};

std::chrono::system_clock::time_point In(int64_t ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

Status FromGrpc(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  const std::string m = what + ": " + s.error_message();
  switch (s.error_code()) {
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return ResourceExhausted(m);
    case grpc::StatusCode::INVALID_ARGUMENT: return InvalidArgument(m);
    case grpc::StatusCode::CANCELLED: return Cancelled(m);
    case grpc::StatusCode::DEADLINE_EXCEEDED: return DeadlineExceeded(m);
    case grpc::StatusCode::FAILED_PRECONDITION: return FailedPrecondition(m);
    case grpc::StatusCode::DATA_LOSS: return DataLoss(m);
    default: return Unavailable(m);
  }
}

}  // namespace

class PdFront::Impl {
 public:
  explicit Impl(PdFrontOptions o) : options_(std::move(o)) {}

  // Info of every instance; keeps this model's.
  Status Connect() {
    auto as_hash = [](const std::string& b) {
      Hash128 h;
      if (b.size() == sizeof(h)) std::memcpy(&h, b.data(), sizeof(h));
      return h;
    };
    bool have_fp = false;
    for (bool is_prefill : {true, false}) {
      for (const std::string& a : is_prefill ? options_.prefill : options_.decode) {
        std::unique_ptr<Instance> i = Make(a);
        proto::InfoReply info;
        grpc::Status s;
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.connect_timeout_ms);
        do {  // instances may still be loading their model
          grpc::ClientContext ctx;
          ctx.set_deadline(In(1000));
          ctx.set_wait_for_ready(true);
          s = i->stub->Info(&ctx, proto::InfoRequest{}, &info);
        } while (!s.ok() && std::chrono::steady_clock::now() < give_up);
        if (!s.ok()) {
          LOG_ERROR("pd front: instance {} does not answer: {}", a, s.error_message());
          continue;
        }
        if (as_hash(info.model_hash()) != options_.model_hash) {
          LOG_ERROR("pd front: instance {} serves another model: refused", a);
          continue;
        }
        if (info.role() != (is_prefill ? "prefill" : "decode")) {
          LOG_ERROR("pd front: instance {} is a {} instance, not a {} one: refused", a, info.role(),
                    is_prefill ? "prefill" : "decode");
          continue;
        }
        const Hash128 fp = as_hash(info.kv_fingerprint());
        if (!have_fp) {
          fingerprint_ = fp;
          have_fp = true;
        } else if (fp != fingerprint_) {
          LOG_ERROR("pd front: instance {} computes other KV (dtype or geometry): refused", a);
          continue;
        }
        if (options_.max_model_len == 0 || info.max_model_len() < options_.max_model_len) {
          options_.max_model_len = info.max_model_len();
        }
        options_.vocab_size = info.vocab_size();
        (is_prefill ? prefill_ : decode_).push_back(std::move(i));
      }
    }
    if (prefill_.empty() || decode_.empty()) {
      return Unavailable(fmt::format("no usable {} instance", prefill_.empty() ? "prefill" : "decode"));
    }
    LOG_INFO("pd front: {} prefill and {} decode instance(s)", prefill_.size(), decode_.size());
    return Status::Ok();
  }
  const Hash128& fingerprint() const { return fingerprint_; }
  int64_t max_model_len() const { return options_.max_model_len; }
  int64_t vocab_size() const { return options_.vocab_size; }
  ~Impl() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stopping_ = true;
      for (auto& [id, r] : live_) r->Cancel();
    }
    std::map<uint64_t, std::thread> ts;
    {
      std::lock_guard<std::mutex> l(mu_);
      ts.swap(threads_);
    }
    for (auto& [id, t] : ts) t.join();
  }

  Result<uint64_t> Submit(engine::EngineRequest req, engine::OutputCallback cb) {
    if (req.prompt.empty()) return InvalidArgument("the prompt is empty");
    if (req.params.max_tokens < 1) return InvalidArgument("max_tokens must be >= 1 in a prefill/decode split");
    if (options_.max_model_len > 0 &&
        static_cast<int64_t>(req.prompt.size()) + req.params.max_tokens > options_.max_model_len) {
      return InvalidArgument(fmt::format("this model's maximum context length is {} tokens; the request asks for {}",
                                         options_.max_model_len, req.prompt.size() + req.params.max_tokens));
    }
    for (int32_t t : req.prompt) {
      if (t < 0 || (options_.vocab_size > 0 && t >= options_.vocab_size)) {
        return InvalidArgument(fmt::format("token id {} is outside the vocabulary", t));
      }
    }
    if (prefill_.empty() || decode_.empty()) return Unavailable("no prefill or no decode instance");
    auto r = std::make_shared<Running>();
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return Unavailable("the front is shutting down");
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
      std::lock_guard<std::mutex> l2(mu_);
      live_.erase(r->id);
      done_.push_back(r->id);
    }));
    return id;
  }

  void Cancel(uint64_t id) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = live_.find(id);
    if (it != live_.end()) it->second->Cancel();
  }

  int64_t in_flight() const {
    std::lock_guard<std::mutex> l(mu_);
    return static_cast<int64_t>(live_.size());
  }

 private:
  struct Running {
    uint64_t id = 0;
    std::mutex mu;
    grpc::ClientContext* ctx = nullptr;  // the call in flight
    bool cancelled = false;
    void Cancel() {
      std::lock_guard<std::mutex> l(mu);
      cancelled = true;
      if (ctx) ctx->TryCancel();
    }
    bool Enter(grpc::ClientContext* c) {  // false: cancelled already
      std::lock_guard<std::mutex> l(mu);
      ctx = c;
      return !cancelled;
    }
    void Leave() {
      std::lock_guard<std::mutex> l(mu);
      ctx = nullptr;
    }
    bool is_cancelled() {
      std::lock_guard<std::mutex> l(mu);
      return cancelled;
    }
  };

  static std::unique_ptr<Instance> Make(const std::string& address) {
    auto i = std::make_unique<Instance>();
    i->address = address;
    i->stub = proto::KvInstance::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    return i;
  }

  // The instance with the fewest requests in flight, other than `not_this`.
  static Instance* Pick(std::vector<std::unique_ptr<Instance>>& from, const Instance* not_this) {
    Instance* best = nullptr;
    for (auto& i : from) {
      if (i.get() == not_this && from.size() > 1) continue;
      if (!best || i->in_flight < best->in_flight) best = i.get();
    }
    return best;
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
  Status TryOnce(Running& run, const engine::EngineRequest& req, engine::OutputCallback& cb, Instance* d, Instance* p,
                 bool& started) {
    const proto::GenParams params = ToProto(req.params);
    proto::ReserveRequest rq;
    for (int32_t t : req.prompt) rq.add_prompt(t);
    rq.set_max_tokens(req.params.max_tokens);
    rq.set_fingerprint(std::string(reinterpret_cast<const char*>(&fingerprint_), sizeof(fingerprint_)));
    proto::Reservation res;
    const bool decode = req.params.max_tokens > 1;  // one token: the prefill instance alone
    if (decode) {
      grpc::ClientContext ctx;
      ctx.set_deadline(In(options_.reserve_timeout_ms));
      if (!run.Enter(&ctx)) return Cancelled("cancelled");
      grpc::Status s = d->stub->Reserve(&ctx, rq, &res);
      run.Leave();
      if (!s.ok()) return FromGrpc(s, "reserve on decode instance " + d->address);
    }
    auto cancel_reservation = [&] {
      if (!decode) return;
      grpc::ClientContext ctx;
      ctx.set_deadline(In(options_.reserve_timeout_ms));
      proto::CancelReservationRequest c;
      c.set_id(res.id());
      proto::CancelReservationReply ignored;
      d->stub->CancelReservation(&ctx, c, &ignored);
    };
    proto::PrefillRequest pq;
    *pq.mutable_prompt() = rq.prompt();
    *pq.mutable_params() = params;
    if (decode) *pq.mutable_target() = res;
    proto::PrefillReply first;
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(In(options_.prefill_timeout_ms));
      if (!run.Enter(&ctx)) {
        cancel_reservation();
        return Cancelled("cancelled");
      }
      p->in_flight++;
      grpc::Status s = p->stub->Prefill(&ctx, pq, &first);
      p->in_flight--;
      run.Leave();
      if (!s.ok()) {
        cancel_reservation();
        return FromGrpc(s, "prefill on instance " + p->address);
      }
    }
    engine::Usage usage;
    usage.prompt_tokens = static_cast<int64_t>(req.prompt.size());
    usage.cached_tokens = first.cached_tokens();
    usage.completion_tokens = 1;
    started = true;
    {
      engine::RequestOutput o;
      o.request_id = run.id;
      o.tokens = {first.first().token()};
      o.samples = {FromProto(first.first())};
      o.usage = usage;
      if (first.finished()) {  // the first token ended it: nothing to decode
        cancel_reservation();
        o.text = first.text();
        o.finished = true;
        o.finish_reason = FinishReasonFromName(first.finish_reason());
        cb(std::move(o));
        return Status::Ok();
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
    grpc::ClientContext ctx;
    ctx.set_deadline(In(options_.decode_timeout_ms));
    if (!run.Enter(&ctx)) {
      cancel_reservation();
      Final(cb, run.id, usage, engine::FinishReason::kAbort);
      return Status::Ok();
    }
    d->in_flight++;
    std::unique_ptr<grpc::ClientReader<proto::DecodeOutput>> reader = d->stub->Decode(&ctx, dq);
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
    run.Leave();
    if (finished) return Status::Ok();
    // The stream ended without its final output: never a silent truncation.
    if (run.is_cancelled()) {
      Final(cb, run.id, usage, engine::FinishReason::kAbort);
    } else {
      Final(cb, run.id, usage, engine::FinishReason::kError,
            Unavailable("the decode instance " + d->address + " failed mid-generation: " + s.error_message()));
    }
    return Status::Ok();
  }

  void Drive(Running& run, engine::EngineRequest req, engine::OutputCallback& cb) {
    Instance* d = nullptr;
    Instance* p = nullptr;
    Status last;
    for (int attempt = 0; attempt < 2; ++attempt) {  // a failed try is retried once, elsewhere where possible
      d = Pick(decode_, d);
      p = Pick(prefill_, p);
      bool started = false;
      d->in_flight++;
      last = TryOnce(run, req, cb, d, p, started);
      d->in_flight--;
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
  Hash128 fingerprint_;  // the instances' KV fingerprint
  std::vector<std::unique_ptr<Instance>> prefill_, decode_;
  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<Running>> live_;  // GUARDED_BY(mu_)
  std::map<uint64_t, std::thread> threads_;            // GUARDED_BY(mu_)
  std::vector<uint64_t> done_;                         // GUARDED_BY(mu_); ended, not joined
  uint64_t next_id_ = 1;                               // GUARDED_BY(mu_)
  bool stopping_ = false;                              // GUARDED_BY(mu_)
};

Result<std::unique_ptr<PdFront>> PdFront::Create(PdFrontOptions options) {
  if (options.prefill.empty() || options.decode.empty()) {
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
const Hash128& PdFront::kv_fingerprint() const { return impl_->fingerprint(); }
int64_t PdFront::max_model_len() const { return impl_->max_model_len(); }
int64_t PdFront::vocab_size() const { return impl_->vocab_size(); }
engine::EngineStats PdFront::Stats() const {
  engine::EngineStats s;
  s.running = impl_->in_flight();
  return s;
}

}  // namespace crescent::server
