#include "store/remote_master.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <thread>

#include "base/clock.h"
#include "base/thread_annotations.h"
#include "proto/store.grpc.pb.h"
#include "store/grpc_status.h"
#include "transfer/etcd_metadata_store.h"

namespace crescent::store {

struct RemoteMaster::Channel {
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<proto::StoreMaster::Stub> stub;
};

namespace {

std::shared_ptr<RemoteMaster::Channel> MakeChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  auto c = std::make_shared<RemoteMaster::Channel>();
  c->address = address;
  c->channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  c->stub = proto::StoreMaster::NewStub(c->channel);
  return c;
}

}  // namespace

RemoteMaster::RemoteMaster(RemoteMasterOptions options) : options_(std::move(options)) {}
RemoteMaster::~RemoteMaster() = default;

Result<std::unique_ptr<RemoteMaster>> RemoteMaster::Connect(const RemoteMasterOptions& options) {
  if (options.target.empty()) return InvalidArgument("store master: no address");
  if (options.timeout_ms < 1) return InvalidArgument("store master: timeout must be >= 1 ms");
  std::unique_ptr<RemoteMaster> m(new RemoteMaster(options));
  if (options.target.starts_with("etcd://")) {
    transfer::EtcdOptions eo;
    eo.endpoint = options.target.substr(7);
    eo.request_timeout_ms = std::min<int64_t>(options.timeout_ms, 3000);
    ASSIGN_OR_RETURN(auto etcd, transfer::EtcdMetadataStore::Connect(eo));
    m->etcd_ = std::move(etcd);
  } else {
    MutexLock lock(m->mu_);  // not yet shared
    m->channel_ = MakeChannel(options.target);
  }
  return m;
}

std::string RemoteMaster::leader() const {
  MutexLock lock(mu_);
  return channel_ ? channel_->address : "";
}

Result<std::shared_ptr<RemoteMaster::Channel>> RemoteMaster::Current() {
  {
    MutexLock lock(mu_);
    if (channel_) return channel_;
  }
  Result<std::string> addr = etcd_->Get(options_.election_key);
  if (!addr.ok()) {
    return Unavailable("no store master leads now (" + addr.status().ToString() + ")");
  }
  auto c = MakeChannel(*addr);
  MutexLock lock(mu_);
  if (!channel_) channel_ = c;
  return channel_;
}

void RemoteMaster::Forget(const std::shared_ptr<Channel>& c) {
  if (!etcd_) return;  // a fixed address: keep it, gRPC reconnects
  MutexLock lock(mu_);
  if (channel_ == c) channel_.reset();
}

template <typename Req, typename Rep, typename Method>
Status RemoteMaster::Call(const char* what, Req& req, Rep* reply, Method method) {
  const auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(options_.timeout_ms);
  Status last = Unavailable("no attempt");
  for (int attempt = 0;; ++attempt) {
    if (std::chrono::system_clock::now() >= deadline) break;
    Result<std::shared_ptr<Channel>> c = Current();
    if (c.ok()) {
      grpc::ClientContext ctx;
      ctx.set_deadline(deadline);
      req.mutable_header()->set_term(term_.load());
      reply->Clear();
      grpc::Status st = ((*c)->stub.get()->*method)(&ctx, req, reply);
      const auto& trailers = ctx.GetServerTrailingMetadata();
      auto t = trailers.find("crescent-term");
      if (t != trailers.end()) {
        try {
          const uint64_t term = std::stoull(std::string(t->second.data(), t->second.size()));
          uint64_t cur = term_.load();
          while (term > cur && !term_.compare_exchange_weak(cur, term)) {
          }
        } catch (const std::exception&) {
        }
      }
      if (st.ok()) return Status::Ok();
      if (st.error_code() != grpc::StatusCode::UNAVAILABLE) return FromGrpc(st, std::string("store master ") + what);
      last = Unavailable("store master " + (*c)->address + " is unavailable (" + what + "): " + st.error_message());
      Forget(*c);
    } else {
      last = c.status();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(20 * (attempt + 1), 200)));
  }
  return last.code() == StatusCode::kUnavailable ? last
                                                 : DeadlineExceeded(std::string("store master ") + what + ": " +
                                                                    last.message());
}

#define CRESCENT_DEFINE(name)                                                     \
  Status RemoteMaster::name(proto::name##Request& req, proto::name##Reply* reply) { \
    return Call(#name, req, reply, &proto::StoreMaster::Stub::name);               \
  }
CRESCENT_STORE_MASTER_RPCS(CRESCENT_DEFINE)
#undef CRESCENT_DEFINE

}  // namespace crescent::store
