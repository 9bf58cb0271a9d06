// Clocks as an interface (STYLE.md rule 6): policy code takes time from a Clock,
// so tests and the simulator drive it with a ManualClock instead of sleeping.
// MonotonicClock is thread-safe; ManualClock is thread-safe (atomic).
#pragma once

#include <atomic>
#include <cstdint>

namespace crescent {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowNanos() const = 0;
  double NowSeconds() const { return static_cast<double>(NowNanos()) * 1e-9; }
};

// std::chrono::steady_clock.
class MonotonicClock final : public Clock {
 public:
  static MonotonicClock& Get();
  int64_t NowNanos() const override;
};

// Time moves only when told to.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_nanos = 0) : now_(start_nanos) {}
  int64_t NowNanos() const override { return now_.load(std::memory_order_relaxed); }
  void AdvanceNanos(int64_t d) { now_.fetch_add(d, std::memory_order_relaxed); }
  void SetNanos(int64_t t) { now_.store(t, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace crescent
