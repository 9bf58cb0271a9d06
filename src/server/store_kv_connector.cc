#include "server/store_kv_connector.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "base/clock.h"
#include "base/logging.h"
#include "engine/kv_chunk_layout.h"
#include "base/thread_annotations.h"

namespace crescent::server {

using engine::KvChunkRef;
using engine::KvCompletion;
using engine::KvOp;
using engine::KvPageAccess;

Result<std::unique_ptr<StoreKvConnector>> StoreKvConnector::Create(StoreKvConnectorOptions options,
                                                                   store::Client* client) {
  if (client == nullptr) return InvalidArgument("the store connector needs a store client");
  if (options.page_tokens <= 0 || options.chunk_tokens <= 0 || options.chunk_tokens % options.page_tokens != 0) {
    return InvalidArgument(fmt::format("KV chunks of {} tokens are not whole pages of {}", options.chunk_tokens,
                                       options.page_tokens));
  }
  if (options.num_layers <= 0 || options.page_bytes_per_layer <= 0) {
    return InvalidArgument("the store connector needs the KV geometry");
  }
  options.workers = std::max(1, options.workers);
  options.chunks_per_get = std::max<int64_t>(1, options.chunks_per_get);
  std::unique_ptr<StoreKvConnector> c(new StoreKvConnector(options, client));
  void* p = mmap(nullptr, c->chunk_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return ResourceExhausted("the store connector cannot map its staging memory");
  madvise(p, c->chunk_bytes_, MADV_POPULATE_WRITE);  // no page faults on the first saves
  c->staging_ = static_cast<std::byte*>(p);
  if (Status s = client->RegisterMemory(p, c->chunk_bytes_); !s.ok()) {
    munmap(p, c->chunk_bytes_);
    c->staging_ = nullptr;
    return s;
  }
  // Saves go through the first worker only, in order: a chunk's parent is
  // stored before it (the master counts children for eviction).
  for (int w = 0; w < options.workers; ++w) c->threads_.emplace_back([conn = c.get(), w] { conn->Run(w == 0); });
  return c;
}

StoreKvConnector::StoreKvConnector(StoreKvConnectorOptions options, store::Client* client)
    : options_(options), client_(client) {
  const int64_t pages = options_.chunk_tokens / options_.page_tokens;
  chunk_bytes_ = static_cast<uint64_t>(2 * options_.num_layers * pages * options_.page_bytes_per_layer);
}

StoreKvConnector::~StoreKvConnector() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  for (auto& t : threads_) t.join();
  if (staging_) {
    client_->UnregisterMemory(staging_).IgnoreError();
    munmap(staging_, chunk_bytes_);
  }
}

namespace {
int64_t MonoNs() { return MonotonicClock::Get().NowNanos(); }
}  // namespace

bool StoreKvConnector::StoreAway() const { return MonoNs() < away_until_ns_.load(); }

void StoreKvConnector::NoteFailure(const Status& s) {
  if (s.code() != StatusCode::kUnavailable && s.code() != StatusCode::kDeadlineExceeded) return;
  if (!StoreAway()) LOG_WARNING("store connector: the KV store is unreachable ({}); computing without it for {} ms",
                                s.ToString(), options_.retry_after_ms);
  away_until_ns_.store(MonoNs() + options_.retry_after_ms * 1'000'000);
}

int64_t StoreKvConnector::ExternalPrefixTokens(std::span<const int32_t> tokens, std::span<const Hash128> chunk_keys,
                                               int64_t local_hit_tokens) {
  // Only chunks past the local hit matter, but a prefix counts from 0: ask
  // about every key up to the first missing one, in one call.
  if (chunk_keys.empty()) return 0;
  if (static_cast<int64_t>(chunk_keys.size()) * options_.chunk_tokens <= local_hit_tokens) return 0;
  if (StoreAway()) return 0;
  counters_.lookups++;
  // The chunks the local hit covers need not be in the store: ask from there.
  const size_t from = static_cast<size_t>(local_hit_tokens / options_.chunk_tokens);
  Result<size_t> n = client_->PrefixLength(chunk_keys.subspan(from));
  if (!n.ok()) {
    counters_.lookup_failures++;
    NoteFailure(n.status());
    LOG_DEBUG("store connector: prefix lookup: {}", n.status().ToString());
    return 0;  // the store is away: compute
  }
  const int64_t found = static_cast<int64_t>(from + *n) * options_.chunk_tokens;
  return found > local_hit_tokens ? found : 0;
}

void StoreKvConnector::StartLoad(uint64_t id, std::vector<KvChunkRef> chunks, KvPageAccess& pages) {
  // A long prefix is split over the workers (contiguous runs of chunks); the
  // last part to end completes the load, with the first failure if any.
  struct Shared {
    std::atomic<int> left{0};
    std::atomic<int64_t> start_ns{0};
    Mutex mu;
    Status status GUARDED_BY(mu);
    LoadTally tally GUARDED_BY(mu);
  };
  auto shared = std::make_shared<Shared>();
  const size_t parts = std::max<size_t>(1, std::min(chunks.size(), static_cast<size_t>(threads_.size())));
  shared->left = static_cast<int>(parts);
  auto all = std::make_shared<std::vector<KvChunkRef>>(std::move(chunks));
  {
    MutexLock lock(mu_);
    for (size_t k = 0; k < parts; ++k) {
      const size_t b = all->size() * k / parts, e = all->size() * (k + 1) / parts;
      loads_.push_back([this, id, all, b, e, shared, &pages]() -> std::optional<KvCompletion> {
        int64_t zero = 0;
        shared->start_ns.compare_exchange_strong(zero, MonoNs());
        LoadTally part;
        Status s = Load(std::span<const KvChunkRef>(all->data() + b, e - b), pages, part);
        {
          MutexLock l(shared->mu);
          if (!s.ok() && shared->status.ok()) shared->status = s;
          shared->tally.chunks += part.chunks;
          shared->tally.bytes += part.bytes;
          for (size_t t = 0; t < part.tokens_from.size(); ++t) shared->tally.tokens_from[t] += part.tokens_from[t];
        }
        if (--shared->left > 0) return std::nullopt;
        const int64_t us = (MonoNs() - shared->start_ns.load()) / 1000;
        MutexLock l(shared->mu);
        if (shared->status.ok()) {  // counted only when the whole prefix arrived (else it is recomputed)
          counters_.chunks_loaded += shared->tally.chunks;
          counters_.bytes_loaded += shared->tally.bytes;
          for (size_t t = 0; t < shared->tally.tokens_from.size(); ++t) {
            counters_.tokens_from[t] += shared->tally.tokens_from[t];
          }
          counters_.load_us_total += us;
          if (options_.observe_load_seconds) options_.observe_load_seconds(static_cast<double>(us) * 1e-6);
        }
        return KvCompletion{KvOp::kLoad, id, shared->status};
      });
    }
  }
  cv_.NotifyAll();
}

void StoreKvConnector::StartSave(uint64_t id, KvChunkRef chunk, KvPageAccess& pages) {
  {
    MutexLock lock(mu_);
    if (static_cast<int64_t>(saves_.size()) >= options_.max_queued_saves) {
      counters_.save_failures++;
      done_.push_back({KvOp::kSave, id, ResourceExhausted("the store connector's save queue is full")});
      return;
    }
    saves_.push_back([this, id, chunk = std::move(chunk), &pages]() -> std::optional<KvCompletion> {
      return KvCompletion{KvOp::kSave, id, Save(chunk, pages, staging_)};
    });
  }
  cv_.NotifyAll();  // the worker that takes saves may not be the one woken by notify_one
}

std::vector<KvCompletion> StoreKvConnector::PollCompletions() {
  MutexLock lock(mu_);
  std::vector<KvCompletion> out;
  out.swap(done_);
  return out;
}

void StoreKvConnector::Run(bool takes_saves) {
  MutexLock lock(mu_);
  for (;;) {
    cv_.Wait(mu_, [&]() REQUIRES(mu_) { return stop_ || !loads_.empty() || (takes_saves && !saves_.empty()); });
    if (loads_.empty() && (!takes_saves || saves_.empty())) return;  // stopping, nothing left for it
    // Loads first: a request waits for them; a save only offers a copy.
    auto& q = !loads_.empty() ? loads_ : saves_;
    auto job = std::move(q.front());
    q.pop_front();
    lock.Unlock();
    std::optional<KvCompletion> c = job();
    lock.Lock();
    if (c) done_.push_back(std::move(*c));
  }
}

Status StoreKvConnector::Load(std::span<const KvChunkRef> chunks, KvPageAccess& pages, LoadTally& tally) {
  if (pages.num_layers() != options_.num_layers || pages.page_bytes_per_layer() != options_.page_bytes_per_layer) {
    counters_.load_failures++;
    return InvalidArgument("the engine's KV pages do not have the connector's geometry");
  }
  const int64_t per_chunk = options_.chunk_tokens / options_.page_tokens;
  for (size_t first = 0; first < chunks.size(); first += static_cast<size_t>(options_.chunks_per_get)) {
    const size_t n = std::min(chunks.size() - first, static_cast<size_t>(options_.chunks_per_get));
    std::vector<store::GetItem> gets(n);
    std::vector<store::ReadFrom> from(n, store::ReadFrom::kNone);
    for (size_t i = 0; i < n; ++i) {
      const KvChunkRef& c = chunks[first + i];
      Result<std::vector<ScatterPart>> parts = engine::KvChunkScatterParts(c, options_.page_tokens, per_chunk, pages);
      if (!parts.ok()) {
        counters_.load_failures++;
        return parts.status();
      }
      gets[i].key = c.key;
      gets[i].parts = std::move(*parts);
      gets[i].from = &from[i];
    }
    std::vector<Result<uint64_t>> got = client_->BatchGet(gets);
    for (size_t i = 0; i < n; ++i) {
      const KvChunkRef& c = chunks[first + i];
      if (!got[i].ok() || *got[i] != chunk_bytes_) {
        counters_.load_failures++;
        return got[i].ok() ? DataLoss(fmt::format("KV chunk {} has {} bytes, not {}", c.key.ToHex(), *got[i],
                                                  chunk_bytes_))
                           : got[i].status();
      }
      tally.chunks++;
      tally.bytes += static_cast<int64_t>(chunk_bytes_);
      tally.tokens_from[static_cast<size_t>(from[i])] += c.chunk_start + options_.chunk_tokens - c.first_token;
    }
  }
  return Status::Ok();
}

Status StoreKvConnector::Save(const KvChunkRef& chunk, KvPageAccess& pages, std::byte* staging) {
  const int64_t per_chunk = options_.chunk_tokens / options_.page_tokens;
  if (chunk.first_token != chunk.chunk_start || static_cast<int64_t>(chunk.pages.size()) != per_chunk) {
    counters_.save_failures++;
    return InvalidArgument("a saved chunk must cover its whole chunk");
  }
  if (StoreAway()) {
    counters_.save_failures++;
    return Unavailable("the KV store is unreachable");
  }
  if (pages.num_layers() != options_.num_layers || pages.page_bytes_per_layer() != options_.page_bytes_per_layer) {
    counters_.save_failures++;  // the staging chunk is sized for the connector's geometry
    return InvalidArgument("the engine's KV pages do not have the connector's geometry");
  }
  engine::GatherKvChunk(chunk, pages, staging);
  std::optional<store::Key> parent;
  if (chunk.chunk_start > 0) parent = chunk.parent;
  Status s = client_->Put(chunk.key, std::span<const std::byte>(staging, chunk_bytes_), parent);
  if (!s.ok()) {
    counters_.save_failures++;
    NoteFailure(s);
    return s;
  }
  counters_.chunks_saved++;
  counters_.bytes_saved += static_cast<int64_t>(chunk_bytes_);
  return Status::Ok();
}

}  // namespace crescent::server
