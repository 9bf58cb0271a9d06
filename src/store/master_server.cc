#include "store/master_server.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include "base/logging.h"
#include "base/thread_annotations.h"
#include "proto/store.grpc.pb.h"
#include "store/grpc_status.h"
#include "store/leader_election.h"
#include "transfer/etcd_metadata_store.h"

namespace crescent::store {

class MasterServer::Impl final : public proto::StoreMaster::Service {
 public:
  explicit Impl(MasterServerOptions options) : options_(std::move(options)) {}
  ~Impl() override {
    // Stop serving before the lease goes: a successor may win the moment it does.
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    if (election_) election_->Stop();
    {
      MutexLock lock(mu_);
      stop_ = true;
    }
    cv_.NotifyAll();
    if (ticker_.joinable()) ticker_.join();
  }

  Status Start() {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(this);
    builder.SetMaxReceiveMessageSize(256 << 20);
    builder.SetMaxSendMessageSize(256 << 20);
    server_ = builder.BuildAndStart();
    if (!server_ || port == 0) return Unavailable("store master: cannot listen on " + options_.listen);
    address_ = options_.listen.substr(0, options_.listen.rfind(':')) + ":" + std::to_string(port);
    if (options_.advertise.empty()) options_.advertise = address_;
    ticker_ = std::thread([this] {
      MutexLock lock(mu_);
      while (!cv_.WaitFor(mu_, std::chrono::milliseconds(100), [&]() REQUIRES(mu_) { return stop_; })) {
        if (master_) master_->Tick();
      }
    });
    if (options_.etcd.empty()) {
      const uint64_t term = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
              .count());
      Elected(term);
      return Status::Ok();
    }
    transfer::EtcdOptions eo;
    eo.endpoint = options_.etcd;
    eo.lease_ttl_s = options_.lease_ttl_s;
    ASSIGN_OR_RETURN(auto etcd, transfer::EtcdMetadataStore::Connect(eo));
    etcd_ = std::move(etcd);
    auto election = std::make_unique<LeaderElection>(
        etcd_, ElectionOptions{options_.election_key, options_.advertise, options_.lease_ttl_s},
        [this](uint64_t term) { Elected(term); }, [this] { Deposed(); });
    LeaderElection* e = election.get();
    {
      MutexLock lock(mu_);  // Serve reads it
      election_ = std::move(election);
    }
    e->Start();
    return Status::Ok();
  }

  void Elected(uint64_t term) {
    MutexLock lock(mu_);
    master_ = std::make_unique<Master>(options_.master, &MonotonicClock::Get());
    master_->SetTerm(term);
    term_ = term;
    LOG_INFO("store master {}: leading with term {} (an empty index, rebuilt from the nodes' re-reports)",
             options_.advertise, term);
  }

  void Deposed() {
    MutexLock lock(mu_);
    master_.reset();
    LOG_WARNING("store master {}: deposed from term {}", options_.advertise, term_);
  }

  template <typename Fn>
  grpc::Status Serve(grpc::ServerContext* ctx, Fn&& fn) {
    MutexLock lock(mu_);
    ctx->AddTrailingMetadata("crescent-term", std::to_string(term_));
    if (!master_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "this store master is not the leader");
    if (election_ && !election_->confirmed()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "this store master cannot confirm its leadership with etcd");
    }
    return ToGrpc(fn(*master_));
  }

#define CRESCENT_SERVE(name)                                                                            \
  grpc::Status name(grpc::ServerContext* ctx, const proto::name##Request* req, proto::name##Reply* reply) \
      override {                                                                                        \
    return Serve(ctx, [&](Master& m) { return m.name(*req, reply); });                                  \
  }
  CRESCENT_SERVE(PutStart)
  CRESCENT_SERVE(PutEnd)
  CRESCENT_SERVE(Get)
  CRESCENT_SERVE(Exists)
  CRESCENT_SERVE(Remove)
  CRESCENT_SERVE(ReportBadReplica)
  CRESCENT_SERVE(Mount)
  CRESCENT_SERVE(Heartbeat)
  CRESCENT_SERVE(Unmount)
  CRESCENT_SERVE(GetSegmentDescriptor)
#undef CRESCENT_SERVE

  grpc::Status Stat(grpc::ServerContext* ctx, const proto::StatRequest* req, proto::StatReply* reply) override {
    return Serve(ctx, [&](Master& m) {
      Status s = m.Stat(*req, reply);
      reply->set_leader(options_.advertise);
      return s;
    });
  }

  bool leader() const {
    MutexLock lock(mu_);
    return master_ != nullptr;
  }
  uint64_t term() const {
    MutexLock lock(mu_);
    return term_;
  }

  MasterServerOptions options_;
  std::string address_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<transfer::MetadataStore> etcd_;
  std::unique_ptr<LeaderElection> election_;  // set once under mu_, before it starts
  mutable Mutex mu_;
  std::unique_ptr<Master> master_ GUARDED_BY(mu_);  // null unless leading
  uint64_t term_ GUARDED_BY(mu_) = 0;
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread ticker_;
};

Result<std::unique_ptr<MasterServer>> MasterServer::Start(MasterServerOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<MasterServer>(new MasterServer(std::move(impl)));
}

MasterServer::MasterServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MasterServer::~MasterServer() = default;
const std::string& MasterServer::address() const { return impl_->address_; }
bool MasterServer::leader() const { return impl_->leader(); }
uint64_t MasterServer::term() const { return impl_->term(); }

}  // namespace crescent::store
