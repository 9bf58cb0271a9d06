// Minimal leveled logging to stderr: LOG_INFO("loaded {} tensors", n).
// Thread-safe (one write per line). The level is process-wide; set from the CLI.
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace crescent {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kOff = 4 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void LogLine(LogLevel level, std::string_view message);

}  // namespace crescent

#define CRESCENT_LOG(level, ...)                                     \
  do {                                                               \
    if (::crescent::GetLogLevel() <= (level))                        \
      ::crescent::LogLine((level), ::fmt::format(__VA_ARGS__));      \
  } while (0)
#define LOG_DEBUG(...) CRESCENT_LOG(::crescent::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) CRESCENT_LOG(::crescent::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARNING(...) CRESCENT_LOG(::crescent::LogLevel::kWarning, __VA_ARGS__)
#define LOG_ERROR(...) CRESCENT_LOG(::crescent::LogLevel::kError, __VA_ARGS__)
