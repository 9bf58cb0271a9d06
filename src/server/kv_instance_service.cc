#include "server/kv_instance_service.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "base/clock.h"
#include "base/logging.h"
#include "proto/instance.grpc.pb.h"
#include "server/kv_instance_proto.h"
#include "store/grpc_status.h"
#include "server/prefill_jobs.h"
#include "server/response_format.h"
#include "server/transfer_kv_sink.h"
#include "base/thread_annotations.h"

namespace crescent::server {
namespace {

using store::ToGrpc;

// A structured output's grammar from the spec the front sent.
Status CompileGrammar(engine::RequestParams& p) {
  if (p.grammar_spec.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(ResponseFormat f, CompileResponseFormatSpec(p.grammar_spec));
  p.grammar = std::move(f.grammar);
  return Status::Ok();
}

// Outputs of one engine request, handed from the engine's callback to the
// gRPC thread that serves it.
struct OutputStream {
  Mutex mu;
  CondVar cv;
  std::deque<engine::RequestOutput> q;
  engine::OutputCallback Callback() {
    return [this](engine::RequestOutput o) {
      MutexLock l(mu);
      q.push_back(std::move(o));
      cv.NotifyAll();
    };
  }
  // The next output, or nullopt after `wait` without one.
  std::optional<engine::RequestOutput> Next(std::chrono::milliseconds wait) {
    MutexLock l(mu);
    if (!cv.WaitFor(mu, wait, [&]() REQUIRES(mu) { return !q.empty(); })) return std::nullopt;
    engine::RequestOutput o = std::move(q.front());
    q.pop_front();
    return o;
  }
};

// Keeps a decode instance's reservation alive while this prefill instance
// writes into it, and tells the sink until when it may write.
class LeaseKeeper {
 public:
  LeaseKeeper(proto::KvInstance::Stub* d, uint64_t id, uint64_t generation, int64_t lease_ms, TransferKvSink* sink)
      : d_(d), id_(id), generation_(generation), lease_ms_(lease_ms), sink_(sink) {}
  ~LeaseKeeper() { Stop(); }
  Status ExtendOnce() {
    if (!d_) return InvalidArgument("no decode instance address in the reservation");
    const int64_t sent = MonotonicClock::Get().NowNanos();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(std::max<int64_t>(lease_ms_ / 3, 1)));
    proto::ExtendReservationRequest e;
    e.set_id(id_);
    e.set_generation(generation_);
    proto::ExtendReservationReply ignored;
    grpc::Status s = d_->ExtendReservation(&ctx, e, &ignored);
    if (s.ok()) {
      sink_->SetIssueBy(sent + (lease_ms_ - lease_ms_ / 5) * 1'000'000);
      return Status::Ok();
    }
    if (s.error_code() == grpc::StatusCode::NOT_FOUND || s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      sink_->SetIssueBy(0);  // gone for sure: no write from now on
      lost_ = true;
    }
    return Unavailable(s.error_message());
  }
  void Start() {
    thread_ = std::thread([this] {
      MutexLock l(mu_);
      while (!cv_.WaitFor(mu_, std::chrono::milliseconds(std::max<int64_t>(lease_ms_ / 3, 1)), [&]() REQUIRES(mu_) { return stop_; })) {
        l.Unlock();
        ExtendOnce().IgnoreError();  // a transient failure: the issue-by deadline lapses on its own
        l.Lock();
      }
    });
  }
  void Stop() {
    {
      MutexLock l(mu_);
      stop_ = true;
    }
    cv_.NotifyAll();
    if (thread_.joinable()) thread_.join();
  }
  bool lost() const { return lost_.load(); }

 private:
  proto::KvInstance::Stub* d_;
  const uint64_t id_, generation_;
  const int64_t lease_ms_;
  TransferKvSink* sink_;
  std::atomic<bool> lost_{false};
  Mutex mu_;
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace

class KvInstanceService::Impl final : public proto::KvInstance::Service {
 public:
  Impl(KvInstanceOptions o, engine::Engine* e, transfer::TransferEngine* t, std::shared_ptr<transfer::MetadataStore> m)
      : options_(std::move(o)), engine_(e), transfer_(t), peers_(std::move(m)) {}

  Status Start() {
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
    if (!server_ || port == 0) return Unavailable("the KV instance service cannot listen on " + options_.listen);
    address_ = options_.listen.substr(0, options_.listen.rfind(':')) + ":" + std::to_string(port);
    if (!options_.segment.empty()) {
      Result<std::string> d = transfer_->LocalDescriptor(options_.segment);
      if (!d.ok()) return d.status();
      descriptor_ = *d;
    }
    return Status::Ok();
  }
  void Stop() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  const std::string& address() const { return address_; }

  grpc::Status Reserve(grpc::ServerContext*, const proto::ReserveRequest* req, proto::Reservation* out) override {
    const Hash128& fp = engine_->fingerprint();
    if (req->fingerprint().size() != sizeof(fp) || std::memcmp(req->fingerprint().data(), &fp, sizeof(fp)) != 0) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "this instance serves another model (KV fingerprint)");
    }
    if (options_.segment.empty()) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not a decode instance");
    std::vector<int32_t> prompt(req->prompt().begin(), req->prompt().end());
    Result<engine::KvReservation> r = engine_->ReserveKv(prompt, req->max_tokens());
    if (!r.ok()) return ToGrpc(r.status());
    out->set_id(r->id);
    out->set_generation(r->generation);
    for (int32_t p : r->pages) out->add_pages(p);
    out->set_held_tokens(r->held_tokens);
    out->set_written_tokens(r->written_tokens);
    out->set_segment(options_.segment);
    out->set_num_pages(engine_->Stats().kv_pages_total);
    out->set_segment_descriptor(descriptor_);
    out->set_decode_address(address_);
    out->set_lease_ms(engine_->kv_lease_ms());
    return grpc::Status::OK;
  }

  grpc::Status Prefill(grpc::ServerContext* ctx, const proto::PrefillRequest* req, proto::PrefillReply* out) override {
    const proto::Reservation& t = req->target();
    std::shared_ptr<TransferKvSink> sink;
    if (!t.segment().empty()) {  // no target: a one-token request, nothing to send
      if (!t.segment_descriptor().empty()) {  // the decode instance's segment, as it published it
        if (Status s = peers_->Put(options_.metadata_prefix + t.segment(), t.segment_descriptor()); !s.ok()) {
          return ToGrpc(s);
        }
      }
      Result<transfer::SegmentId> seg = transfer_->OpenSegment(t.segment());
      if (!seg.ok()) return ToGrpc(seg.status());
      engine::KvReservation r;
      r.id = t.id();
      r.generation = t.generation();
      r.pages.assign(t.pages().begin(), t.pages().end());
      r.held_tokens = t.held_tokens();
      r.written_tokens = t.written_tokens();
      sink = std::make_shared<TransferKvSink>(transfer_, engine_->kv_shape(), KvTarget{*seg, t.num_pages(), r},
                                              engine::KvReservationOptions{}.pages_per_checksum);
    }
    // This instance owns the writes, so it keeps the lease: an extend before
    // the first write and every lease/3 after; each success lets writes go
    // on until (when it was sent) + lease - lease/5 by this clock, which
    // ends before the decode instance's lease does. A refusal fences at once.
    std::unique_ptr<LeaseKeeper> keeper;
    if (sink) {
      keeper = std::make_unique<LeaseKeeper>(Stub(t.decode_address()), t.id(), t.generation(),
                                             std::max<int64_t>(t.lease_ms(), 3), sink.get());
      if (Status k = keeper->ExtendOnce(); !k.ok()) {
        if (keeper->lost()) leases_lost_++;
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the reservation cannot be kept: " + k.message());
      }
      keeper->Start();
    }
    engine::EngineRequest er;
    er.prompt.assign(req->prompt().begin(), req->prompt().end());
    er.params = FromProto(req->params());
    if (Status g = CompileGrammar(er.params); !g.ok()) return ToGrpc(g);
    er.params.grammar_max_tokens = er.params.max_tokens;  // a structured output's budget is the whole request's
    er.params.max_tokens = er.params.max_tokens == 0 ? 0 : 1;  // 0: the prompt's log-probs alone
    er.kv_sink = sink;
    if (req->limit_external()) er.max_external_prefix_tokens = std::max<int64_t>(0, req->max_external_tokens());
    OutputStream outs;
    struct JobScope {  // the job leaves the reported queue however the call ends
      PrefillJobs& jobs;
      PrefillJobs::Handle h;
      int64_t prefix = 0;
      double seconds = -1;
      ~JobScope() { jobs.End(h, prefix, seconds); }
    } job{jobs_, jobs_.Add(req->placement_id(), req->prompt_size(), req->expected_prefix_tokens())};
    Result<uint64_t> id = engine_->Submit(std::move(er), outs.Callback());
    if (!id.ok()) return ToGrpc(id.status());
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.prefill_timeout_ms);
    engine::RequestOutput last;
    std::vector<engine::SampledToken> samples, prompt_samples;
    std::string text;
    for (;;) {
      std::optional<engine::RequestOutput> o = outs.Next(std::chrono::milliseconds(50));
      if (!o) {
        if (ctx->IsCancelled() || std::chrono::steady_clock::now() > give_up || (keeper && keeper->lost())) {
          engine_->Cancel(*id);  // its final output still comes
        }
        continue;
      }
      samples.insert(samples.end(), o->samples.begin(), o->samples.end());
      prompt_samples.insert(prompt_samples.end(), o->prompt_samples.begin(), o->prompt_samples.end());
      text += o->text;
      if (o->finished) {
        last = std::move(*o);
        break;
      }
    }
    if (keeper) {
      keeper->Stop();
      if (keeper->lost()) {  // before anything else: the writes stopped, a retry may succeed
        leases_lost_++;
        if (sink) sink->Wait().IgnoreError();  // what was submitted ends (within the transfer timeout)
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the decode instance ended the reservation: writes stopped");
      }
    }
    if (last.finish_reason == engine::FinishReason::kAbort) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    if (last.finish_reason == engine::FinishReason::kError || (samples.empty() && req->params().max_tokens() != 0)) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "the prefill failed: " + last.error.ToString());
    }
    job.prefix = last.usage.cached_tokens;
    job.seconds = std::max(0.0, last.first_token_time_s - last.queue_time_s);

    const auto wait0 = std::chrono::steady_clock::now();
    const Status w = sink ? sink->Wait() : Status::Ok();
    if (sink) {
      prefills_++;
      bytes_written_ += sink->bytes_submitted();
      write_wait_us_ += std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - wait0)
                            .count();
    }
    if (!w.ok()) {  // the commit is safe only once every write landed
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "KV writes to the decode instance failed: " + w.message());
    }
    if (!samples.empty()) *out->mutable_first() = ToProto(samples.front());
    for (const engine::SampledToken& s : prompt_samples) *out->add_prompt_samples() = ToProto(s);
    if (sink) {
      for (uint64_t s : sink->checksums()) out->add_checksums(s);
    }
    out->set_cached_tokens(last.usage.cached_tokens);
    // Run with max_tokens 1, the request ends in "length" unless its first
    // token stopped it (EOS, a stop id or string): then there is no Decode.
    if (last.finish_reason == engine::FinishReason::kStop || req->params().max_tokens() <= 1) {
      out->set_finished(true);
      out->set_finish_reason(engine::FinishReasonName(last.finish_reason));
      out->set_text(text);
    }
    return grpc::Status::OK;
  }

  grpc::Status Decode(grpc::ServerContext* ctx, const proto::DecodeRequest* req,
                      grpc::ServerWriter<proto::DecodeOutput>* writer) override {
    engine::EngineRequest er;
    er.prompt.assign(req->prompt().begin(), req->prompt().end());
    er.params = FromProto(req->params());
    if (Status g = CompileGrammar(er.params); !g.ok()) return ToGrpc(g);
    engine::KvCommit commit{req->reservation(), req->generation(),
                            std::vector<uint64_t>(req->checksums().begin(), req->checksums().end()), req->first_token(),
                            req->first_text_sent()};
    OutputStream outs;
    // The prefill instance sent this after its writes completed: see them.
    transfer_->AcquireIncoming();
    Result<uint64_t> id = engine_->SubmitPrefilled(std::move(er), commit, outs.Callback());
    if (!id.ok()) return ToGrpc(id.status());
    bool cancelled = false;
    for (;;) {
      std::optional<engine::RequestOutput> o = outs.Next(std::chrono::milliseconds(50));
      if (!o) {
        if (ctx->IsCancelled() && !cancelled) {
          engine_->Cancel(*id);  // the front went away
          cancelled = true;
        }
        continue;
      }
      proto::DecodeOutput d;
      for (const auto& s : o->samples) *d.add_samples() = ToProto(s);
      d.set_text(o->text);
      d.set_finished(o->finished);
      d.set_finish_reason(engine::FinishReasonName(o->finish_reason));
      d.set_completion_tokens(o->usage.completion_tokens);
      if (!o->error.ok()) d.set_error(o->error.ToString());
      if (!cancelled && !writer->Write(d) && !cancelled) {
        engine_->Cancel(*id);
        cancelled = true;
      }
      if (o->finished) break;
    }
    return cancelled ? grpc::Status(grpc::StatusCode::CANCELLED, "the caller went away") : grpc::Status::OK;
  }

  grpc::Status Info(grpc::ServerContext*, const proto::InfoRequest*, proto::InfoReply* out) override {
    const Hash128 m = engine_->model_hash();
    const Hash128& f = engine_->fingerprint();
    out->set_model_hash(std::string(reinterpret_cast<const char*>(&m), sizeof(m)));
    out->set_kv_fingerprint(std::string(reinterpret_cast<const char*>(&f), sizeof(f)));
    out->set_role(options_.role);
    out->set_max_model_len(engine_->max_model_len());
    out->set_vocab_size(engine_->config().vocab_size);
    out->set_page_tokens(engine_->kv_shape().page_tokens);
    out->set_chunk_tokens(options_.chunk_tokens);
    out->set_kv_event_epoch(engine_->kv_events().epoch());
    return grpc::Status::OK;
  }

  // Answered off the step thread (the engine's published stats and its
  // event log), so a busy instance answers at once.
  grpc::Status Report(grpc::ServerContext*, const proto::ReportRequest* req, proto::ReportReply* out) override {
    const engine::KvEventBatch b = engine_->kv_events().Since(req->epoch(), req->after_seq());
    out->set_epoch(b.epoch);
    out->set_last_seq(b.last_seq);
    out->set_resync(b.resync);
    for (const engine::KvEvent& e : b.events) {
      proto::KvEventProto* p = out->add_events();
      p->set_stored(e.stored);
      p->set_seq(e.seq);
      p->set_key(std::string(reinterpret_cast<const char*>(&e.key), sizeof(e.key)));
    }
    for (const Hash128& k : b.held) out->add_held(std::string(reinterpret_cast<const char*>(&k), sizeof(k)));
    for (const PrefillJobView& j : jobs_.Jobs()) {
      proto::PrefillJob* p = out->add_jobs();
      p->set_placement_id(j.placement_id);
      p->set_input_tokens(j.input_tokens);
      p->set_prefix_tokens(j.prefix_tokens);
      p->set_running(j.running);
      p->set_running_us(j.running_us);
    }
    for (const PrefillTimingRecord& t : jobs_.TimingsAfter(req->samples_after())) {
      proto::PrefillTiming* p = out->add_prefill_timings();
      p->set_index(t.index);
      p->set_input_tokens(t.input_tokens);
      p->set_prefix_tokens(t.prefix_tokens);
      p->set_seconds(t.seconds);
    }
    const engine::EngineStats st = engine_->Stats();
    out->set_batch_size(st.running + st.waiting);
    out->set_context_tokens(st.context_tokens);
    out->set_free_kv_tokens((st.kv_pages_total - st.kv_pages_used) * engine_->kv_shape().page_tokens);
    out->set_decode_step(st.last_decode_step.step);
    out->set_decode_batch(st.last_decode_step.batch);
    out->set_decode_context_tokens(st.last_decode_step.context_tokens);
    out->set_decode_seconds(st.last_decode_step.seconds);
    if (options_.store_loads) {
      int64_t bytes = 0;
      double seconds = 0;
      options_.store_loads(&bytes, &seconds);
      out->set_store_bytes_loaded(bytes);
      out->set_store_load_seconds(seconds);
    }
    return grpc::Status::OK;
  }

  grpc::Status ExtendReservation(grpc::ServerContext*, const proto::ExtendReservationRequest* req,
                                 proto::ExtendReservationReply*) override {
    return ToGrpc(engine_->ExtendKv(req->id(), req->generation()));
  }

  grpc::Status CancelReservation(grpc::ServerContext*, const proto::CancelReservationRequest* req,
                                 proto::CancelReservationReply*) override {
    engine_->CancelKv(req->id());
    return grpc::Status::OK;
  }

  KvInstanceStats stats() const {
    return {prefills_.load(), bytes_written_.load(), write_wait_us_.load(), leases_lost_.load()};
  }

 private:
  // A stub to a decode instance, kept per address (null for "").
  proto::KvInstance::Stub* Stub(const std::string& address) {
    if (address.empty()) return nullptr;
    MutexLock l(stubs_mu_);
    auto& s = stubs_[address];
    if (!s) s = proto::KvInstance::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    return s.get();
  }
  Mutex stubs_mu_;
  std::map<std::string, std::unique_ptr<proto::KvInstance::Stub>> stubs_ GUARDED_BY(stubs_mu_);
  std::atomic<int64_t> prefills_{0}, bytes_written_{0}, write_wait_us_{0}, leases_lost_{0};
  PrefillJobs jobs_;
  KvInstanceOptions options_;
  engine::Engine* engine_;
  transfer::TransferEngine* transfer_;
  std::shared_ptr<transfer::MetadataStore> peers_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::string descriptor_;
};

Result<std::unique_ptr<KvInstanceService>> KvInstanceService::Start(KvInstanceOptions options, engine::Engine* engine,
                                                                   transfer::TransferEngine* transfer,
                                                                   std::shared_ptr<transfer::MetadataStore> peers) {
  auto impl = std::make_unique<Impl>(std::move(options), engine, transfer, std::move(peers));
  RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<KvInstanceService>(new KvInstanceService(std::move(impl)));
}

KvInstanceService::KvInstanceService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KvInstanceService::~KvInstanceService() { impl_->Stop(); }
const std::string& KvInstanceService::address() const { return impl_->address(); }
KvInstanceStats KvInstanceService::stats() const { return impl_->stats(); }

}  // namespace crescent::server
