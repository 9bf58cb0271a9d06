#include "base/logging.h"
#include "base/thread_annotations.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace crescent {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kInfo};
Mutex g_mu;
}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
LogLevel GetLogLevel() { return g_level.load(std::memory_order_relaxed); }

void LogLine(LogLevel level, std::string_view message) {
  static const char kTag[] = {'D', 'I', 'W', 'E', '-'};
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  int ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char head[48];
  std::snprintf(head, sizeof(head), "%c %02d:%02d:%02d.%03d ", kTag[static_cast<int>(level)],
                tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  std::string line(head);
  line.append(message);
  line.push_back('\n');
  MutexLock lock(g_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace crescent
