#include "model/bpe.h"

#include <algorithm>
#include <cstdio>

#include "model/tokenizer_unicode.h"

namespace crescent::model {

namespace {

struct ByteTables {
  char32_t to_unicode[256];
  std::unordered_map<char32_t, uint8_t> to_byte;
  ByteTables() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_unicode[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      to_byte[to_unicode[b]] = static_cast<uint8_t>(b);
    }
  }
};

const ByteTables& Tables() {
  static const ByteTables t;
  return t;
}

}  // namespace

char32_t ByteToUnicode(uint8_t b) { return Tables().to_unicode[b]; }

bool ByteLevelToBytes(std::string_view text, std::string* bytes) {
  const auto& t = Tables();
  bytes->clear();
  size_t i = 0;
  while (i < text.size()) {
    char32_t cp = NextCodePoint(text, &i);
    auto it = t.to_byte.find(cp);
    if (it == t.to_byte.end()) return false;
    bytes->push_back(static_cast<char>(it->second));
  }
  return true;
}

void BpeModel::PairMap::Reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  slots_.assign(cap, {kEmpty, 0});
  mask_ = cap - 1;
}

void BpeModel::PairMap::Insert(uint64_t key, uint64_t value) {
  for (size_t i = Hash(key) & mask_;; i = (i + 1) & mask_) {
    if (slots_[i].first == key) return;
    if (slots_[i].first == kEmpty) {
      slots_[i] = {key, value};
      return;
    }
  }
}

bool BpeModel::PairMap::Find(uint64_t key, uint64_t* value) const {
  for (size_t i = Hash(key) & mask_;; i = (i + 1) & mask_) {
    if (slots_[i].first == key) {
      *value = slots_[i].second;
      return true;
    }
    if (slots_[i].first == kEmpty) return false;
  }
}

Result<BpeModel> BpeModel::Build(const std::vector<std::pair<std::string, int32_t>>& vocab,
                                 const std::vector<std::pair<std::string, std::string>>& merges,
                                 BpeOptions options) {
  BpeModel m;
  m.options_ = options;
  int32_t max_id = -1;
  for (const auto& [text, id] : vocab) max_id = std::max(max_id, id);
  m.vocab_id_.assign(static_cast<size_t>(max_id + 1), -1);
  m.first_extra_ = max_id + 1;
  std::string raw;
  auto key = [&](const std::string& text) -> const std::string& {
    if (!options.byte_level) return text;
    if (!ByteLevelToBytes(text, &raw)) raw = "\xFF\xFE" + text;  // outside the alphabet: unreachable key
    return raw;
  };
  for (const auto& [text, id] : vocab) {
    if (id < 0) return InvalidArgument("tokenizer.json: negative id for '" + text + "'");
    m.symbol_of_[key(text)] = id;
    m.vocab_id_[static_cast<size_t>(id)] = id;
  }
  auto symbol = [&](const std::string& text) -> int32_t {
    const std::string& k = key(text);
    auto it = m.symbol_of_.find(k);
    if (it != m.symbol_of_.end()) return it->second;
    int32_t s = m.first_extra_ + static_cast<int32_t>(m.extra_text_.size());
    m.extra_text_.push_back(k);
    m.vocab_id_.push_back(-1);
    m.symbol_of_.emplace(k, s);
    return s;
  };
  m.merges_.Reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    int32_t sa = symbol(a), sb = symbol(b), sm = symbol(a + b);
    uint64_t k = (static_cast<uint64_t>(static_cast<uint32_t>(sa)) << 32) | static_cast<uint32_t>(sb);
    // The first (lowest-rank) occurrence of a pair wins, as in the reference's map.
    m.merges_.Insert(k, (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(sm));
  }
  if (!options.byte_level) {
    m.cp_symbol_.assign(kDirectCodePoints, -1);
    for (const auto& [text, sym] : m.symbol_of_) {
      size_t pos = 0;
      if (text.empty()) continue;
      char32_t cp = NextCodePoint(text, &pos);
      if (pos == text.size() && cp < kDirectCodePoints && !(cp == 0xFFFD && text != "\xEF\xBF\xBD")) {
        m.cp_symbol_[cp] = sym;
      }
    }
  }
  for (int b = 0; b < 256; ++b) {
    if (options.byte_level) {
      std::string one(1, static_cast<char>(b));
      auto it = m.symbol_of_.find(one);
      m.byte_symbol_[b] = it == m.symbol_of_.end() ? -1 : it->second;
    } else {
      m.byte_symbol_[b] = -1;
    }
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto it = m.symbol_of_.find(std::string_view(name));
    m.byte_fallback_[b] = (it == m.symbol_of_.end() || options.byte_level) ? -1 : m.vocab_id_[static_cast<size_t>(it->second)];
  }
  return m;
}

int32_t BpeModel::SymbolOf(std::string_view text) const {
  auto it = symbol_of_.find(text);
  return it == symbol_of_.end() ? -1 : it->second;
}

int32_t BpeModel::Lookup(std::string_view word) const {
  int32_t s = SymbolOf(word);
  return s < 0 ? -1 : vocab_id_[static_cast<size_t>(s)];
}

void BpeModel::EmitSymbol(int32_t sym, std::string_view text, std::vector<int32_t>* out) const {
  if (sym >= 0 && vocab_id_[static_cast<size_t>(sym)] >= 0) {
    out->push_back(vocab_id_[static_cast<size_t>(sym)]);
    return;
  }
  if (options_.byte_fallback) {
    bool all = true;
    for (unsigned char c : text) all = all && byte_fallback_[c] >= 0;
    if (all) {
      for (unsigned char c : text) out->push_back(byte_fallback_[c]);
      return;
    }
  }
  if (options_.unk_id >= 0) out->push_back(options_.unk_id);
}

namespace {
struct Symbol {
  int32_t id;
  int32_t prev, next;  // indices; -1 at the ends
  uint32_t begin, end;  // byte range in the word
};
struct Candidate {
  uint32_t rank;
  int32_t left;
  int32_t left_id, right_id;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
};
}  // namespace

void BpeModel::EncodeWord(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (options_.ignore_merges) {
    int32_t id = Lookup(word);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  thread_local std::vector<Symbol> syms;
  thread_local std::vector<Candidate> heap_storage;
  syms.clear();
  if (options_.byte_level) {
    for (size_t i = 0; i < word.size(); ++i) {
      int32_t n = static_cast<int32_t>(syms.size());
      syms.push_back({byte_symbol_[static_cast<unsigned char>(word[i])], n - 1, n + 1, static_cast<uint32_t>(i),
                      static_cast<uint32_t>(i + 1)});
    }
  } else {
    size_t i = 0;
    while (i < word.size()) {
      size_t b = i;
      char32_t cp = NextCodePoint(word, &i);
      int32_t n = static_cast<int32_t>(syms.size());
      int32_t sym = cp < kDirectCodePoints ? cp_symbol_[cp] : SymbolOf(word.substr(b, i - b));
      syms.push_back({sym, n - 1, n + 1, static_cast<uint32_t>(b), static_cast<uint32_t>(i)});
    }
  }
  syms.back().next = -1;
  auto lookup_pair = [&](int32_t a, int32_t b, uint64_t* v) {
    if (a < 0 || b < 0) return false;
    return merges_.Find((static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b), v);
  };
  if (syms.size() > 1) {
    // A min-heap on (rank, left index) in a reusable buffer.
    std::vector<Candidate>& heap = heap_storage;
    heap.clear();
    auto push = [&](int32_t left) {
      int32_t right = syms[static_cast<size_t>(left)].next;
      if (right < 0) return;
      uint64_t v;
      if (lookup_pair(syms[static_cast<size_t>(left)].id, syms[static_cast<size_t>(right)].id, &v)) {
        heap.push_back({static_cast<uint32_t>(v >> 32), left, syms[static_cast<size_t>(left)].id,
                        syms[static_cast<size_t>(right)].id});
        std::push_heap(heap.begin(), heap.end(), std::greater<>());
      }
    };
    for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) push(i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<>());
      Candidate c = heap.back();
      heap.pop_back();
      Symbol& l = syms[static_cast<size_t>(c.left)];
      if (l.id != c.left_id || l.next < 0) continue;  // merged away or changed
      Symbol& r = syms[static_cast<size_t>(l.next)];
      if (r.id != c.right_id) continue;
      uint64_t v = 0;
      lookup_pair(l.id, r.id, &v);
      l.id = static_cast<int32_t>(static_cast<uint32_t>(v));
      l.end = r.end;
      r.id = -2;  // dead
      l.next = r.next;
      if (r.next >= 0) syms[static_cast<size_t>(r.next)].prev = c.left;
      if (l.prev >= 0) push(l.prev);
      push(c.left);
    }
  }
  for (int32_t i = 0; i >= 0; i = syms[static_cast<size_t>(i)].next) {
    const Symbol& s = syms[static_cast<size_t>(i)];
    EmitSymbol(s.id, word.substr(s.begin, s.end - s.begin), out);
  }
}

}  // namespace crescent::model
