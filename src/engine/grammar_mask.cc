#include "engine/grammar_mask.h"

#include <algorithm>
#include <climits>

#include "model/tokenizer.h"

namespace crescent::engine {

std::unique_ptr<TokenTable> TokenTable::Build(const model::Tokenizer& tokenizer, int64_t vocab) {
  auto t = std::make_unique<TokenTable>();
  t->vocab_ = vocab;
  const int32_t n = static_cast<int32_t>(std::min<int64_t>(vocab, tokenizer.vocab_size()));
  // An ordinary anchor before each token: its text as inside a sequence
  // (a tokenizer may strip a leading space at the very start).
  int32_t anchor = -1;
  for (const char* a : {"a", "x", "0"}) {
    const std::vector<int32_t> ids = tokenizer.Encode(a, /*add_special_tokens=*/false);
    if (ids.size() == 1) {
      anchor = ids[0];
      break;
    }
  }
  const std::string base = anchor >= 0 ? tokenizer.Decode(std::vector<int32_t>{anchor}) : std::string();
  std::vector<std::pair<std::string, int32_t>> entries;
  entries.reserve(static_cast<size_t>(n));
  for (int32_t id = 0; id < n; ++id) {
    if (tokenizer.IsSpecial(id)) continue;
    std::string text;
    if (anchor >= 0) {
      const std::string both = tokenizer.Decode(std::vector<int32_t>{anchor, id});
      if (both.compare(0, base.size(), base) != 0) continue;
      text = both.substr(base.size());
    } else {
      text = tokenizer.Decode(std::vector<int32_t>{id});
    }
    if (text.empty() || text.find("\xEF\xBF\xBD") != std::string::npos) continue;
    entries.emplace_back(std::move(text), id);
  }
  t->Sort(std::move(entries));
  return t;
}

std::unique_ptr<TokenTable> TokenTable::FromTexts(const std::vector<std::string>& texts) {
  auto t = std::make_unique<TokenTable>();
  t->vocab_ = static_cast<int64_t>(texts.size());
  std::vector<std::pair<std::string, int32_t>> entries;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (!texts[i].empty()) entries.emplace_back(texts[i], static_cast<int32_t>(i));
  }
  t->Sort(std::move(entries));
  return t;
}

void TokenTable::Sort(std::vector<std::pair<std::string, int32_t>> entries) {
  std::sort(entries.begin(), entries.end());
  texts_.clear();
  ids_.clear();
  lcp_.clear();
  index_.assign(static_cast<size_t>(vocab_), -1);
  for (auto& [text, id] : entries) {
    int32_t l = 0;
    if (!texts_.empty()) {
      const std::string& prev = texts_.back();
      const size_t m = std::min(prev.size(), text.size());
      while (static_cast<size_t>(l) < m && prev[l] == text[l]) ++l;
    }
    max_len_ = std::max(max_len_, text.size());
    if (id >= 0 && id < vocab_) {
      index_[static_cast<size_t>(id)] = static_cast<int32_t>(texts_.size());
    }
    lcp_.push_back(l);
    ids_.push_back(id);
    texts_.push_back(std::move(text));
  }
}

std::shared_ptr<const GrammarMask> ComputeMask(const JsonGrammar& grammar, const TokenTable& table,
                                               const JsonState& state, int64_t budget) {
  auto mask = std::make_shared<GrammarMask>();
  mask->bits.assign(static_cast<size_t>((table.vocab() + 63) / 64), 0);
  mask->end_allowed = state.complete();
  // st[d]: the state after the first d bytes of the token being walked.
  std::vector<JsonState> st(table.max_length() + 1);
  st[0] = state;
  size_t valid = 0;     // st[0..valid] hold the last walked token's prefixes
  size_t dead_at = 0;   // > 0: the last walked token's first dead_at bytes are refused
  int32_t shared = INT_MAX;  // common prefix of the last walked token and this one
  for (size_t i = 0; i < table.size(); ++i) {
    shared = std::min(shared, table.lcp(i));
    if (i == 0) shared = 0;
    if (dead_at > 0 && static_cast<size_t>(shared) >= dead_at) continue;  // begins with a refused prefix
    const std::string& text = table.text(i);
    size_t d = std::min(static_cast<size_t>(shared), valid);
    dead_at = 0;
    for (; d < text.size(); ++d) {
      grammar.Feed(st[d], static_cast<uint8_t>(text[d]), &st[d + 1]);
      if (st[d + 1].dead()) {
        dead_at = d + 1;
        break;
      }
    }
    valid = dead_at > 0 ? dead_at - 1 : text.size();
    shared = INT_MAX;
    if (dead_at > 0) continue;
    const int64_t after = grammar.MinBytesToComplete(st[text.size()]);
    if (budget >= 0 && after > budget - 1) continue;
    const int32_t id = table.id(i);
    mask->bits[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63);
    ++mask->allowed;
    mask->max_after = std::max(mask->max_after, after);
  }
  return mask;
}

std::shared_ptr<const GrammarMask> MaskFor(const JsonGrammar& grammar, const TokenTable& table, const JsonState& state,
                                           int64_t budget) {
  JsonGrammar::MaskCache& cache = grammar.mask_cache();
  const std::string key = state.Key();
  std::shared_ptr<const GrammarMask> mask;
  {
    std::lock_guard<std::mutex> l(cache.mu);
    if (cache.table != &table) {
      cache.masks.clear();
      cache.table = &table;
    }
    auto it = cache.masks.find(key);
    if (it != cache.masks.end()) {
      mask = it->second;
      ++cache.hits;
    }
  }
  if (!mask) {
    mask = ComputeMask(grammar, table, state, -1);
    std::lock_guard<std::mutex> l(cache.mu);
    ++cache.misses;
    if (cache.masks.size() >= JsonGrammar::MaskCache::kMaxCachedStates) cache.masks.clear();
    if (cache.table == &table) cache.masks.emplace(key, mask);
  }
  if (budget < 0 || mask->max_after <= budget - 1) return mask;
  // Near the end of the budget: only tokens after which the value still fits.
  std::shared_ptr<const GrammarMask> tight = ComputeMask(grammar, table, state, budget);
  return tight->allowed > 0 || tight->end_allowed ? tight : mask;
}

}  // namespace crescent::engine
