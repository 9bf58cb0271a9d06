// StopChecker: finds stop strings in a stream of text deltas without ever
// showing a client text that a stop string later swallows.
//
// Push(delta) returns the text safe to emit now: everything except the longest
// tail that could still be the start of a stop string. When a stop string
// appears, matched() turns true and Push returns the text before it (plus the
// stop string itself with include_stop_str); later Pushes return "". Flush(tail)
// ends a stream that stopped for another reason and returns all held text.
// Values; single-threaded.
#pragma once

#include <string>
#include <vector>

namespace crescent::engine {

class StopChecker {
 public:
  StopChecker() = default;
  StopChecker(std::vector<std::string> stops, bool include_stop_str);

  std::string Push(const std::string& delta);
  std::string Flush(const std::string& tail);
  bool matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  bool include_ = false;
  bool matched_ = false;
  size_t hold_ = 0;      // longest stop string - 1
  std::string pending_;  // text not yet emitted
};

}  // namespace crescent::engine
