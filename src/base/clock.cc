#include "base/clock.h"

#include <chrono>

namespace crescent {

MonotonicClock& MonotonicClock::Get() {
  static MonotonicClock clock;
  return clock;
}

int64_t MonotonicClock::NowNanos() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace crescent
