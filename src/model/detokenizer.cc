#include "model/detokenizer.h"

#include <span>

namespace crescent::model {

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
}

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer* tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

std::string IncrementalDetokenizer::DecodeRange(size_t begin, size_t end) const {
  return tokenizer_->Decode(std::span<const int32_t>(ids_.data() + begin, end - begin), skip_special_);
}

size_t IncrementalDetokenizer::SafeLength(const std::string& text) const {
  size_t n = text.size();
  while (n >= kReplacement.size() && text.compare(n - kReplacement.size(), kReplacement.size(), kReplacement) == 0) {
    n -= kReplacement.size();
  }
  if (tokenizer_->cleans_up_spaces()) {
    size_t from = n >= 3 ? n - 3 : 0;
    size_t sp = text.find(' ', from);
    if (sp != std::string::npos && sp < n) n = sp;
  }
  return n;
}

std::string IncrementalDetokenizer::Push(int32_t id) {
  ids_.push_back(id);
  std::string text = DecodeRange(prefix_, ids_.size());
  std::string out;
  if (text.compare(0, base_.size(), base_) != 0) {
    // The window's start decodes differently with the new id (not expected for the
    // decoders we support): recompute against everything emitted so far.
    std::string full = DecodeRange(0, ids_.size());
    size_t safe = SafeLength(full);
    if (full.compare(0, emitted_.size(), emitted_) == 0 && safe > emitted_.size()) {
      out = full.substr(emitted_.size(), safe - emitted_.size());
    }
    emitted_ += out;
    if (safe == full.size() && full == emitted_) {
      prefix_ = read_ = ids_.size();
      base_.clear();
      emitted_past_base_ = 0;
    }
    return out;
  }
  size_t safe = SafeLength(text);
  size_t done = base_.size() + emitted_past_base_;
  if (safe > done) {
    out = text.substr(done, safe - done);
    emitted_past_base_ += out.size();
  }
  emitted_ += out;
  if (safe == text.size()) {
    // Everything is out: slide the window to start at the ids decoded last. A
    // window whose text is empty (ids skipped as invalid or special, or a lone
    // space a Strip decoder removes) cannot anchor the next diff, so then the
    // window keeps its start.
    std::string base = DecodeRange(read_, ids_.size());
    if (!base.empty()) {
      prefix_ = read_;
      base_ = std::move(base);
    } else {
      base_ = std::move(text);
    }
    read_ = ids_.size();
    emitted_past_base_ = 0;
  }
  return out;
}

std::string IncrementalDetokenizer::Finish() {
  std::string full = DecodeRange(0, ids_.size());
  std::string out;
  if (full.size() > emitted_.size() && full.compare(0, emitted_.size(), emitted_) == 0) {
    out = full.substr(emitted_.size());
  }
  emitted_ += out;
  prefix_ = read_ = ids_.size();
  base_.clear();
  emitted_past_base_ = 0;
  return out;
}

}  // namespace crescent::model
