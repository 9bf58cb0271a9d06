#include "engine/grammar_mask.h"

#include <algorithm>
#include <atomic>
#include <climits>

#include "model/tokenizer.h"
#include "base/thread_annotations.h"

namespace crescent::engine {

namespace {
std::atomic<uint64_t> next_table_id{1};

// The code point at s[i] (valid UTF-8: the table's texts are); returns its length.
size_t DecodeUtf8(std::string_view s, size_t i, uint32_t* cp) {
  const auto b = static_cast<unsigned char>(s[i]);
  const size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  uint32_t v = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t k = 1; k < n && i + k < s.size(); ++k) v = (v << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  *cp = v;
  return std::min(n, s.size() - i);
}
std::atomic<int64_t> cached_mask_bytes{0};  // every grammar's cache
}  // namespace

TokenTable::TokenTable() : table_id_(next_table_id.fetch_add(1)) {}

JsonGrammar::MaskCache::~MaskCache() { Clear(); }

void JsonGrammar::MaskCache::Clear() {
  masks.clear();
  cached_mask_bytes -= bytes;
  bytes = 0;
}

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
    for (size_t i = 0; i < text.size();) {
      uint32_t cp = 0;
      i += DecodeUtf8(text, i, &cp);
      chars_.insert(cp);
    }
    if (id >= 0 && id < vocab_) {
      index_[static_cast<size_t>(id)] = static_cast<int32_t>(texts_.size());
    }
    lcp_.push_back(l);
    ids_.push_back(id);
    texts_.push_back(std::move(text));
  }
}

Status CheckWritable(const JsonGrammar& grammar, const TokenTable& table) {
  auto check = [&](std::string_view text, std::string_view what) -> Status {
    for (size_t i = 0; i < text.size();) {
      uint32_t cp = 0;
      i += DecodeUtf8(text, i, &cp);
      if (!table.Writes(cp)) {
        return InvalidArgument(std::string("structured output: the vocabulary cannot write the ") + std::string(what) + " " +
                               std::string(text) + " (a character it has only as byte pieces)");
      }
    }
    return Status::Ok();
  };
  for (const JsonNode& n : grammar.nodes()) {
    for (const std::string& l : n.literals) RETURN_IF_ERROR(check(l, "value"));
    for (const JsonNode::Property& p : n.properties) RETURN_IF_ERROR(check(p.name, "property name"));
  }
  return Status::Ok();
}

std::shared_ptr<const GrammarMask> ComputeMask(const JsonGrammar& grammar, const TokenTable& table,
                                               const JsonState& state, int64_t budget) {
  auto mask = std::make_shared<GrammarMask>();
  mask->bits.assign(static_cast<size_t>((table.vocab() + 63) / 64), 0);
  mask->end_allowed = grammar.Complete(state);
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
    MutexLock l(cache.mu);
    if (cache.table != table.id()) {
      cache.Clear();
      cache.table = table.id();
    }
    auto it = cache.masks.find(key);
    if (it != cache.masks.end()) {
      mask = it->second;
      ++cache.hits;
    }
  }
  if (!mask) {
    mask = ComputeMask(grammar, table, state, -1);
    MutexLock l(cache.mu);
    ++cache.misses;
    const int64_t size = static_cast<int64_t>(mask->bits.size() * sizeof(uint64_t) + key.size());
    if (cache.masks.size() >= JsonGrammar::MaskCache::kMaxCachedStates ||
        cached_mask_bytes + size > JsonGrammar::MaskCache::kMaxCachedBytes) {
      cache.Clear();
    }
    if (cache.table == table.id() && cache.masks.emplace(key, mask).second) {
      cache.bytes += size;
      cached_mask_bytes += size;
    }
  }
  if (budget < 0 || mask->max_after <= budget - 1) return mask;
  // Near the end of the budget: only tokens after which the value still fits.
  std::shared_ptr<const GrammarMask> tight = ComputeMask(grammar, table, state, budget);
  return tight->allowed > 0 || tight->end_allowed ? tight : mask;
}

}  // namespace crescent::engine
