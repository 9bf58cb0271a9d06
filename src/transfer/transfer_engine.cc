#include "transfer/transfer_engine.h"

#include <ucp/api/ucp.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <map>
#include <random>
#include <vector>

#include "base/clock.h"
#include "base/logging.h"
#include "base/thread_annotations.h"
#include "transfer/segment_descriptor.h"
#include "transfer/ucx_context.h"
#include "transfer/ucx_worker.h"

namespace crescent::transfer {

// Everything UCX: the context, the workers and the segment tables.
class TransferEngine::Impl {
 public:
  Impl(EngineOptions options, std::shared_ptr<MetadataStore> metadata, UcxContext context);
  ~Impl();
  Status Init();
  Status RegisterLocalMemory(std::string_view name, void* addr, uint64_t length, bool publish);
  Result<void*> AllocateLocalMemory(std::string_view name, uint64_t length);
  Status UnregisterLocalMemory(std::string_view name);
  Result<SegmentId> OpenSegment(std::string_view name);
  Result<uint64_t> SegmentLength(SegmentId id);
  Status Submit(TransferBatch& batch, std::span<const TransferRequest> requests);
  int64_t endpoints_created() const;
  Result<std::string> LocalDescriptor(std::string_view name);

  EngineOptions options_;
  std::shared_ptr<MetadataStore> metadata_;
  std::string instance_id_;

  int64_t worker_rebuilds() const {
    int64_t n = 0;
    for (const auto& w : workers_) n += w->rebuilds();
    return n;
  }
  void AcquireIncoming() const {
    for (const auto& w : workers_) w->AcquireIncoming();
  }

 private:
  struct LocalSegment {
    uint64_t base = 0;
    uint64_t length = 0;
    ucp_mem_h memh = nullptr;
    bool published = true;  // false: a private buffer (RegisterBuffer)
  };
  struct RemoteSegment {
    std::string name;
    std::shared_ptr<const SegmentDescriptor> descriptor;  // null: re-read before use
  };

  // Publish: the segment registered. PublishIfRegistered takes publish_mutex_.
  Status Publish(std::string_view name, ucp_mem_h memh, uint64_t base, uint64_t length) REQUIRES(publish_mutex_);
  Status PublishIfRegistered(std::string_view name, ucp_mem_h memh, uint64_t base, uint64_t length)
      EXCLUDES(publish_mutex_);
  Result<std::string> Describe(std::string_view name, ucp_mem_h memh, uint64_t base, uint64_t length);
  Result<std::shared_ptr<const SegmentDescriptor>> Fetch(const std::string& name);
  Result<std::shared_ptr<const SegmentDescriptor>> Descriptor(SegmentId id);
  void OnPeerFailure(const std::string& owner);
  // A worker was rebuilt with a new address: every descriptor is stale.
  // Runs on republisher_, never on a worker's thread.
  void RepublishAll();
  void RepublishLoop();

  // Serializes what publishes or unpublishes descriptors (register,
  // unregister, republish), so a republish never revives a segment being
  // unregistered nor uses its unmapped memh. Held across MetadataStore calls;
  // taken before local_mutex_, never under it or remote_mutex_.
  Mutex publish_mutex_;
  Mutex republish_mu_;
  CondVar republish_cv_;
  bool republish_pending_ GUARDED_BY(republish_mu_) = false;
  bool republish_stop_ GUARDED_BY(republish_mu_) = false;
  std::thread republisher_;

  UcxContext context_;  // destroyed after workers_
  std::vector<std::unique_ptr<UcxWorker>> workers_;
  std::atomic<uint64_t> next_worker_{0};

  Mutex local_mutex_;
  std::map<std::string, LocalSegment, std::less<>> local_ GUARDED_BY(local_mutex_);
  std::map<uint64_t, std::string> local_by_base_ GUARDED_BY(local_mutex_);

  Mutex remote_mutex_;
  std::vector<RemoteSegment> remote_ GUARDED_BY(remote_mutex_);  // id - 1
  std::map<std::string, SegmentId, std::less<>> remote_ids_ GUARDED_BY(remote_mutex_);
};

namespace {

std::string MakeInstanceId() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::random_device rd;
  uint64_t r = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return std::string(host) + ":" + std::to_string(getpid()) + ":" + fmt::format("{:016x}", r);
}

std::string Range(uint64_t off, uint64_t len) {
  return fmt::format("[{}, {}+{})", off, off, len);
}

}  // namespace

Result<std::unique_ptr<TransferEngine>> TransferEngine::Create(EngineOptions options,
                                                               std::shared_ptr<MetadataStore> metadata) {
  if (!metadata) return InvalidArgument("transfer engine needs a metadata store");
  if (options.num_workers < 1) return InvalidArgument("num_workers must be >= 1");
  if (options.timeout_ms < 1) return InvalidArgument("timeout_ms must be >= 1");
  if (options.spin_us < 0) return InvalidArgument("spin_us must be >= 0");
  if (options.max_endpoints_per_worker < 1) return InvalidArgument("max_endpoints_per_worker must be >= 1");
  options.slice_bytes = options.EffectiveSliceBytes();
  ASSIGN_OR_RETURN(UcxContext context, UcxContext::Create(options));
  auto impl = std::make_unique<Impl>(std::move(options), std::move(metadata), std::move(context));
  RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<TransferEngine>(new TransferEngine(std::move(impl)));
}

TransferEngine::TransferEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TransferEngine::~TransferEngine() = default;

Status TransferEngine::RegisterLocalMemory(std::string_view name, void* addr, uint64_t length) {
  return impl_->RegisterLocalMemory(name, addr, length, true);
}
namespace {
std::string BufferName(const void* addr) { return fmt::format("buffer@{:x}", reinterpret_cast<uintptr_t>(addr)); }
}  // namespace
Status TransferEngine::RegisterBuffer(void* addr, uint64_t length) {
  return impl_->RegisterLocalMemory(BufferName(addr), addr, length, false);
}
Status TransferEngine::UnregisterBuffer(void* addr) { return impl_->UnregisterLocalMemory(BufferName(addr)); }
Result<std::string> TransferEngine::LocalDescriptor(std::string_view name) { return impl_->LocalDescriptor(name); }
Result<void*> TransferEngine::AllocateLocalMemory(std::string_view name, uint64_t length) {
  return impl_->AllocateLocalMemory(name, length);
}
Status TransferEngine::UnregisterLocalMemory(std::string_view name) { return impl_->UnregisterLocalMemory(name); }
Result<SegmentId> TransferEngine::OpenSegment(std::string_view name) { return impl_->OpenSegment(name); }
Result<uint64_t> TransferEngine::SegmentLength(SegmentId id) { return impl_->SegmentLength(id); }
Status TransferEngine::Submit(TransferBatch& batch, std::span<const TransferRequest> requests) {
  return impl_->Submit(batch, requests);
}
const std::string& TransferEngine::instance_id() const { return impl_->instance_id_; }
const EngineOptions& TransferEngine::options() const { return impl_->options_; }
int64_t TransferEngine::endpoints_created() const { return impl_->endpoints_created(); }

TransferEngine::Impl::Impl(EngineOptions options, std::shared_ptr<MetadataStore> metadata, UcxContext context)
    : options_(std::move(options)),
      metadata_(std::move(metadata)),
      instance_id_(MakeInstanceId()),
      context_(std::move(context)) {}

Status TransferEngine::Impl::Init() {
  // TCP only: every lane supports peer error handling.
  const std::string& t = options_.transports;
  const bool tcp = t == "tcp" || t == "self,tcp" || t == "tcp,self";
  for (int i = 0; i < options_.num_workers; ++i) {
    WorkerOptions wo;
    wo.index = i;
    wo.max_endpoints = options_.max_endpoints_per_worker;
    wo.timeout_ms = options_.timeout_ms;
    wo.spin_ns = options_.spin_us * 1000;
    using PF = EngineOptions::PeerFailure;
    wo.detect_peer_failure = options_.peer_failure == PF::kOn || (options_.peer_failure == PF::kAuto && tcp);
    wo.on_peer_failure = [this](const std::string& owner) { OnPeerFailure(owner); };
    wo.on_address_change = [this] {
      {
        MutexLock lock(republish_mu_);
        republish_pending_ = true;
      }
      republish_cv_.NotifyAll();
    };
    ASSIGN_OR_RETURN(auto worker, UcxWorker::Create(context_.get(), std::move(wo)));
    workers_.push_back(std::move(worker));
  }
  republisher_ = std::thread([this] { RepublishLoop(); });
  return Status::Ok();
}

void TransferEngine::Impl::RepublishLoop() {
  MutexLock lock(republish_mu_);
  for (;;) {
    republish_cv_.Wait(republish_mu_, [&]() REQUIRES(republish_mu_) { return republish_stop_ || republish_pending_; });
    if (republish_stop_) return;
    republish_pending_ = false;
    lock.Unlock();
    RepublishAll();
    lock.Lock();
  }
}

TransferEngine::Impl::~Impl() {
  {
    MutexLock lock(republish_mu_);
    republish_stop_ = true;
  }
  republish_cv_.NotifyAll();
  if (republisher_.joinable()) republisher_.join();
  workers_.clear();  // finishes in-flight entries, closes endpoints
  MutexLock publish(publish_mutex_);
  std::map<std::string, LocalSegment, std::less<>> segs;
  {
    MutexLock lock(local_mutex_);
    segs.swap(local_);
    local_by_base_.clear();
  }
  for (auto& [name, seg] : segs) {
    if (seg.published) metadata_->Remove(options_.metadata_prefix + name).IgnoreError();  // best effort at shutdown
    ucp_mem_unmap(context_.get(), seg.memh);
  }
}

int64_t TransferEngine::worker_rebuilds() const { return impl_->worker_rebuilds(); }

void TransferEngine::AcquireIncoming() const {
  impl_->AcquireIncoming();
}

int64_t TransferEngine::Impl::endpoints_created() const {
  int64_t n = 0;
  for (const auto& w : workers_) n += w->endpoints_created();
  return n;
}

Result<std::string> TransferEngine::Impl::Describe(std::string_view name, ucp_mem_h memh, uint64_t base,
                                                   uint64_t length) {
  void* buf = nullptr;
  size_t size = 0;
  ucs_status_t st = ucp_rkey_pack(context_.get(), memh, &buf, &size);
  if (st != UCS_OK) return UcxError("rkey_pack", st);
  SegmentDescriptor d;
  d.name = std::string(name);
  d.owner = instance_id_;
  for (const auto& w : workers_) d.worker_addresses.push_back(w->address());
  d.base = base;
  d.length = length;
  d.rkey.assign(static_cast<const char*>(buf), size);
  ucp_rkey_buffer_release(buf);
  return d.Encode();
}

Result<std::string> TransferEngine::Impl::LocalDescriptor(std::string_view name) {
  LocalSegment seg;
  {
    MutexLock lock(local_mutex_);
    auto it = local_.find(name);
    if (it == local_.end()) return NotFound("no local segment '" + std::string(name) + "'");
    seg = it->second;
  }
  return Describe(name, seg.memh, seg.base, seg.length);
}

Status TransferEngine::Impl::PublishIfRegistered(std::string_view name, ucp_mem_h memh, uint64_t base,
                                                 uint64_t length) {
  MutexLock publish(publish_mutex_);
  {
    MutexLock lock(local_mutex_);
    auto it = local_.find(name);
    if (it == local_.end() || it->second.memh != memh) {
      return FailedPrecondition("segment '" + std::string(name) + "' was unregistered while it was being registered");
    }
  }
  return Publish(name, memh, base, length);
}

Status TransferEngine::Impl::Publish(std::string_view name, ucp_mem_h memh, uint64_t base, uint64_t length) {
  ASSIGN_OR_RETURN(std::string encoded, Describe(name, memh, base, length));
  return metadata_->Put(options_.metadata_prefix + std::string(name), encoded);
}


Status TransferEngine::Impl::RegisterLocalMemory(std::string_view name, void* addr, uint64_t length, bool publish) {
  if (name.empty()) return InvalidArgument("segment name is empty");
  if (addr == nullptr || length == 0) return InvalidArgument("segment '" + std::string(name) + "': null or empty memory");
  uint64_t base = reinterpret_cast<uint64_t>(addr);
  {
    MutexLock lock(local_mutex_);
    if (local_.count(name)) return InvalidArgument("segment '" + std::string(name) + "' is already registered");
    auto next = local_by_base_.lower_bound(base);
    bool overlaps = (next != local_by_base_.end() && next->first < base + length);
    if (!overlaps && next != local_by_base_.begin()) {
      const LocalSegment& prev = local_.find(std::prev(next)->second)->second;
      overlaps = prev.base + prev.length > base;
    }
    if (overlaps) return InvalidArgument("segment '" + std::string(name) + "' overlaps registered memory");
  }
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  params.address = addr;
  params.length = length;
  ucp_mem_h memh = nullptr;
  ucs_status_t st = ucp_mem_map(context_.get(), &params, &memh);
  if (st != UCS_OK) return UcxError("mem_map of segment '" + std::string(name) + "'", st);
  {
    MutexLock lock(local_mutex_);
    if (local_.count(name)) {  // lost a race with a concurrent registration
      ucp_mem_unmap(context_.get(), memh);
      return InvalidArgument("segment '" + std::string(name) + "' is already registered");
    }
    local_.emplace(std::string(name), LocalSegment{base, length, memh, publish});
    local_by_base_.emplace(base, std::string(name));
  }
  if (!publish) return Status::Ok();
  Status s = PublishIfRegistered(name, memh, base, length);
  if (!s.ok()) UnregisterLocalMemory(name).IgnoreError();  // report the publish failure instead
  return s;
}

Result<void*> TransferEngine::Impl::AllocateLocalMemory(std::string_view name, uint64_t length) {
  if (name.empty()) return InvalidArgument("segment name is empty");
  if (length == 0) return InvalidArgument("segment '" + std::string(name) + "': zero length");
  {
    MutexLock lock(local_mutex_);
    if (local_.count(name)) return InvalidArgument("segment '" + std::string(name) + "' is already registered");
  }
  ucp_mem_map_params_t params{};
  params.field_mask = UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS;
  params.length = length;
  params.flags = UCP_MEM_MAP_ALLOCATE;
  ucp_mem_h memh = nullptr;
  ucs_status_t st = ucp_mem_map(context_.get(), &params, &memh);
  if (st != UCS_OK) return UcxError("allocation of segment '" + std::string(name) + "'", st);
  ucp_mem_attr_t attr{};
  attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS | UCP_MEM_ATTR_FIELD_LENGTH;
  st = ucp_mem_query(memh, &attr);
  if (st != UCS_OK) {
    ucp_mem_unmap(context_.get(), memh);
    return UcxError("mem_query", st);
  }
  uint64_t base = reinterpret_cast<uint64_t>(attr.address);
  {
    MutexLock lock(local_mutex_);
    if (local_.count(name)) {
      ucp_mem_unmap(context_.get(), memh);
      return InvalidArgument("segment '" + std::string(name) + "' is already registered");
    }
    local_.emplace(std::string(name), LocalSegment{base, length, memh});
    local_by_base_.emplace(base, std::string(name));
  }
  Status s = PublishIfRegistered(name, memh, base, length);
  if (!s.ok()) {
    UnregisterLocalMemory(name).IgnoreError();  // report the publish failure instead
    return s;
  }
  return attr.address;
}

Status TransferEngine::Impl::UnregisterLocalMemory(std::string_view name) {
  MutexLock publish(publish_mutex_);
  LocalSegment seg;
  {
    MutexLock lock(local_mutex_);
    auto it = local_.find(name);
    if (it == local_.end()) return NotFound("no local segment '" + std::string(name) + "'");
    seg = it->second;
    local_by_base_.erase(seg.base);
    local_.erase(it);
  }
  Status s = seg.published ? metadata_->Remove(options_.metadata_prefix + std::string(name)) : Status::Ok();
  ucp_mem_unmap(context_.get(), seg.memh);
  return s;
}

Result<std::shared_ptr<const SegmentDescriptor>> TransferEngine::Impl::Fetch(const std::string& name) {
  Result<std::string> text = metadata_->Get(options_.metadata_prefix + name);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) return NotFound("segment '" + name + "' not found");
    return text.status().WithContext("segment '" + name + "'");
  }
  ASSIGN_OR_RETURN(SegmentDescriptor d, SegmentDescriptor::Decode(*text));
  return std::make_shared<const SegmentDescriptor>(std::move(d));
}

Result<SegmentId> TransferEngine::Impl::OpenSegment(std::string_view name) {
  {
    MutexLock lock(remote_mutex_);
    auto it = remote_ids_.find(name);
    if (it != remote_ids_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(auto desc, Fetch(std::string(name)));
  MutexLock lock(remote_mutex_);
  auto it = remote_ids_.find(name);
  if (it != remote_ids_.end()) return it->second;
  remote_.push_back(RemoteSegment{std::string(name), std::move(desc)});
  SegmentId id = remote_.size();
  remote_ids_.emplace(std::string(name), id);
  return id;
}

Result<std::shared_ptr<const SegmentDescriptor>> TransferEngine::Impl::Descriptor(SegmentId id) {
  std::string name;
  {
    MutexLock lock(remote_mutex_);
    if (id == 0 || id > remote_.size()) return NotFound("unknown segment id " + std::to_string(id));
    const RemoteSegment& r = remote_[id - 1];
    if (r.descriptor) return r.descriptor;
    name = r.name;
  }
  ASSIGN_OR_RETURN(auto desc, Fetch(name));
  MutexLock lock(remote_mutex_);
  remote_[id - 1].descriptor = desc;
  return desc;
}

Result<uint64_t> TransferEngine::Impl::SegmentLength(SegmentId id) {
  ASSIGN_OR_RETURN(auto desc, Descriptor(id));
  return desc->length;
}

void TransferEngine::Impl::RepublishAll() {
  MutexLock publish(publish_mutex_);
  std::vector<std::pair<std::string, LocalSegment>> segs;
  {
    MutexLock lock(local_mutex_);
    for (const auto& [name, seg] : local_) {
      if (seg.published) segs.emplace_back(name, seg);
    }
  }
  // Unregister takes publish_mutex_ too, so these are all still mapped.
  for (const auto& [name, seg] : segs) {
    Status s = Publish(name, seg.memh, seg.base, seg.length);
    if (!s.ok()) LOG_WARNING("transfer: republishing segment '{}' after a worker rebuild: {}", name, s.ToString());
  }
}

void TransferEngine::Impl::OnPeerFailure(const std::string& owner) {
  MutexLock lock(remote_mutex_);
  for (RemoteSegment& r : remote_) {
    if (r.descriptor && r.descriptor->owner == owner) r.descriptor = nullptr;
  }
}

Status TransferEngine::Impl::Submit(TransferBatch& batch, std::span<const TransferRequest> requests) {
  if (!batch.state()) return InvalidArgument("submit to an empty TransferBatch");
  if (batch.size() + requests.size() > batch.capacity()) {
    return ResourceExhausted("batch of capacity " + std::to_string(batch.capacity()) + " cannot take " +
                             std::to_string(requests.size()) + " more entries (has " +
                             std::to_string(batch.size()) + ")");
  }
  // Check everything before anything moves.
  struct Checked {
    std::shared_ptr<const SegmentDescriptor> desc;
    ucp_mem_h memh = nullptr;
  };
  std::vector<Checked> checked(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const TransferRequest& r = requests[i];
    std::string where = "entry " + std::to_string(i);
    if (r.length == 0) return InvalidArgument(where + ": zero length");
    if (r.local == nullptr) return InvalidArgument(where + ": null local address");
    Result<std::shared_ptr<const SegmentDescriptor>> desc = Descriptor(r.segment);
    if (!desc.ok()) return desc.status().WithContext(where);
    const SegmentDescriptor& d = **desc;
    if (r.offset > d.length || r.length > d.length - r.offset) {
      return OutOfRange(where + ": remote range " + Range(r.offset, r.length) + " is outside segment '" +
                        d.name + "' of " + std::to_string(d.length) + " bytes");
    }
    uint64_t local = reinterpret_cast<uint64_t>(r.local);
    {
      MutexLock lock(local_mutex_);
      auto it = local_by_base_.upper_bound(local);
      const LocalSegment* seg = nullptr;
      if (it != local_by_base_.begin()) seg = &local_.find(std::prev(it)->second)->second;
      if (!seg || local - seg->base > seg->length || r.length > seg->length - (local - seg->base)) {
        return InvalidArgument(where + ": local memory " + fmt::format("{:#x}", local) + "+" +
                               std::to_string(r.length) + " is not inside a registered segment");
      }
      checked[i].memh = seg->memh;
    }
    checked[i].desc = std::move(desc).value();
  }

  // Plan: slices of slice_bytes, round-robin over the workers.
  const uint64_t slice = options_.slice_bytes;
  const size_t nw = workers_.size();
  std::vector<std::vector<std::unique_ptr<WorkItem>>> plan(requests.size());
  std::vector<int> parts(requests.size());
  std::vector<size_t> first_worker(requests.size());
  int64_t now = MonotonicClock::Get().NowNanos();
  int64_t deadline = now + options_.timeout_ms * 1'000'000;
  for (size_t i = 0; i < requests.size(); ++i) {
    const TransferRequest& r = requests[i];
    uint64_t nslices = (r.length + slice - 1) / slice;
    size_t nitems = static_cast<size_t>(std::min<uint64_t>(nslices, nw));
    first_worker[i] = next_worker_.fetch_add(1, std::memory_order_relaxed) % nw;
    std::vector<std::unique_ptr<WorkItem>> items(nitems);
    for (auto& item : items) {
      item = std::make_unique<WorkItem>();
      item->op = r.op;
      item->segment = checked[i].desc;
      item->local_memh = checked[i].memh;
      item->deadline_ns = deadline;
      item->small = nslices == 1;
      item->slices.reserve(nslices / nitems + 1);
    }
    uint64_t remote = checked[i].desc->base + r.offset;
    char* local = static_cast<char*>(r.local);
    for (uint64_t k = 0; k < nslices; ++k) {
      uint64_t off = k * slice;
      items[k % nitems]->slices.push_back(Slice{local + off, remote + off, std::min(slice, r.length - off)});
    }
    parts[i] = static_cast<int>(nitems);
    plan[i] = std::move(items);
  }
  size_t base = batch.state()->Append(parts, now);
  for (size_t i = 0; i < requests.size(); ++i) {
    size_t w = first_worker[i];
    for (auto& item : plan[i]) {
      item->batch = batch.state();
      item->entry = base + i;
      workers_[w % nw]->Post(std::move(item));
      ++w;
    }
  }
  return Status::Ok();
}

}  // namespace crescent::transfer
