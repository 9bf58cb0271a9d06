#include "engine/stop_checker.h"

#include <algorithm>

namespace crescent::engine {

StopChecker::StopChecker(std::vector<std::string> stops, bool include_stop_str)
    : stops_(std::move(stops)), include_(include_stop_str) {
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
  for (const auto& s : stops_) hold_ = std::max(hold_, s.size() - 1);
}

std::string StopChecker::Push(const std::string& delta) {
  if (matched_) return {};
  if (stops_.empty()) return delta;
  pending_ += delta;
  size_t best = std::string::npos, best_len = 0;
  for (const auto& s : stops_) {
    size_t pos = pending_.find(s);
    if (pos != std::string::npos && pos < best) {
      best = pos;
      best_len = s.size();
    }
  }
  if (best != std::string::npos) {
    matched_ = true;
    std::string out = pending_.substr(0, include_ ? best + best_len : best);
    pending_.clear();
    return out;
  }
  // Hold back only a tail that is a proper prefix of some stop string.
  size_t keep = 0;
  for (size_t len = std::min(hold_, pending_.size()); len > 0; --len) {
    std::string_view tail(pending_.data() + pending_.size() - len, len);
    bool prefix = std::any_of(stops_.begin(), stops_.end(), [&](const std::string& s) { return s.starts_with(tail); });
    if (prefix) {
      keep = len;
      break;
    }
  }
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StopChecker::Flush(const std::string& tail) {
  if (matched_) return {};
  std::string out = Push(tail);
  if (matched_) return out;
  out += pending_;
  pending_.clear();
  return out;
}

}  // namespace crescent::engine
