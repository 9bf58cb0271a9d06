#include "engine/in_process_kv_connector.h"

#include "base/check.h"
#include "engine/kv_chunk_layout.h"
#include "base/thread_annotations.h"

namespace crescent::engine {

int64_t InProcessKvChunks::num_chunks() const {
  MutexLock lock(mu_);
  return static_cast<int64_t>(chunks_.size());
}

int64_t InProcessKvChunks::loads() const {
  MutexLock lock(mu_);
  return loads_;
}

InProcessKvConnector::InProcessKvConnector(std::shared_ptr<InProcessKvChunks> chunks, int64_t chunk_tokens,
                                           int64_t page_tokens)
    : chunks_(std::move(chunks)), chunk_tokens_(chunk_tokens), page_tokens_(page_tokens) {
  CHECK(chunks_ != nullptr);
  CHECK(page_tokens > 0 && chunk_tokens > 0 && chunk_tokens % page_tokens == 0);
  thread_ = std::thread([this] { Run(); });
}

InProcessKvConnector::~InProcessKvConnector() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  thread_.join();
}

int64_t InProcessKvConnector::ExternalPrefixTokens(std::span<const int32_t> tokens,
                                                   std::span<const Hash128> chunk_keys, int64_t local_hit_tokens) {
  MutexLock lock(chunks_->mu_);
  int64_t n = 0;
  while (n < static_cast<int64_t>(chunk_keys.size()) && chunks_->chunks_.count(chunk_keys[n])) ++n;
  const int64_t found = n * chunk_tokens_;
  return found > local_hit_tokens ? found : 0;
}

void InProcessKvConnector::StartLoad(uint64_t id, std::vector<KvChunkRef> chunks, KvPageAccess& pages) {
  Post([this, id, chunks = std::move(chunks), &pages] { return KvCompletion{KvOp::kLoad, id, Load(chunks, pages)}; });
}

void InProcessKvConnector::StartSave(uint64_t id, KvChunkRef chunk, KvPageAccess& pages) {
  Post([this, id, chunk = std::move(chunk), &pages] { return KvCompletion{KvOp::kSave, id, Save(chunk, pages)}; });
}

std::vector<KvCompletion> InProcessKvConnector::PollCompletions() {
  MutexLock lock(mu_);
  std::vector<KvCompletion> out;
  out.swap(done_);
  return out;
}

void InProcessKvConnector::Post(std::function<KvCompletion()> job) {
  {
    MutexLock lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.NotifyAll();
}

void InProcessKvConnector::Run() {
  MutexLock lock(mu_);
  for (;;) {
    cv_.Wait(mu_, [&]() REQUIRES(mu_) { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, nothing left
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.Unlock();
    KvCompletion c = job();
    lock.Lock();
    done_.push_back(std::move(c));
  }
}

Status InProcessKvConnector::Load(const std::vector<KvChunkRef>& chunks, KvPageAccess& pages) {
  const int64_t pages_per_chunk = chunk_tokens_ / page_tokens_;
  for (const KvChunkRef& c : chunks) {
    std::shared_ptr<const std::vector<std::byte>> bytes;
    {
      MutexLock lock(chunks_->mu_);
      auto it = chunks_->chunks_.find(c.key);
      if (it == chunks_->chunks_.end()) return NotFound("KV chunk " + c.key.ToHex() + " is gone");
      bytes = it->second;
      ++chunks_->loads_;
    }
    RETURN_IF_ERROR(ScatterKvChunk(bytes->data(), c, page_tokens_, pages_per_chunk, pages));
  }
  return Status::Ok();
}

Status InProcessKvConnector::Save(const KvChunkRef& chunk, KvPageAccess& pages) {
  const int64_t pages_per_chunk = chunk_tokens_ / page_tokens_;
  if (chunk.first_token != chunk.chunk_start || static_cast<int64_t>(chunk.pages.size()) != pages_per_chunk) {
    return InvalidArgument("a saved chunk must cover its whole chunk");
  }
  {
    MutexLock lock(chunks_->mu_);
    if (chunks_->chunks_.count(chunk.key)) return Status::Ok();
  }
  std::vector<std::byte> bytes(static_cast<size_t>(KvChunkBytes(pages, pages_per_chunk)));
  GatherKvChunk(chunk, pages, bytes.data());
  MutexLock lock(chunks_->mu_);
  chunks_->chunks_.emplace(chunk.key, std::make_shared<const std::vector<std::byte>>(std::move(bytes)));
  return Status::Ok();
}

}  // namespace crescent::engine
