// GenerationBackend: what the OpenAI layer generates with, so one request
// path serves both shapes (DESIGN.md): one engine in this process (`crescent
// serve`), or a prefill/decode split driven by the front (`crescent
// conductor`, pd_front.h). The contract is engine::Engine's: Submit validates
// and returns an id, every accepted request gets exactly one final output,
// Cancel is idempotent; all methods thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/status.h"
#include "engine/engine.h"

namespace crescent::server {

class GenerationBackend {
 public:
  virtual ~GenerationBackend() = default;
  virtual Result<uint64_t> Submit(engine::EngineRequest request, engine::OutputCallback callback) = 0;
  virtual void Cancel(uint64_t id) = 0;
  virtual engine::EngineStats Stats() const = 0;
  virtual int64_t max_model_len() const = 0;
  virtual int64_t vocab_size() const = 0;
  // After a refusal for load (ResourceExhausted: HTTP 429), the seconds a
  // client should wait before it retries (the Retry-After header).
  virtual int64_t retry_after_s() const { return 1; }
  // Extra /metrics text of this backend (Prometheus exposition lines), or "".
  virtual std::string MetricsText() const { return {}; }
};

// The all-in-one backend: an engine of this process (borrowed).
class EngineBackend final : public GenerationBackend {
 public:
  explicit EngineBackend(engine::Engine* engine) : engine_(engine) {}
  Result<uint64_t> Submit(engine::EngineRequest request, engine::OutputCallback callback) override {
    return engine_->Submit(std::move(request), std::move(callback));
  }
  void Cancel(uint64_t id) override { engine_->Cancel(id); }
  engine::EngineStats Stats() const override { return engine_->Stats(); }
  int64_t max_model_len() const override { return engine_->max_model_len(); }
  int64_t vocab_size() const override { return engine_->config().vocab_size; }

 private:
  engine::Engine* engine_;
};

}  // namespace crescent::server
