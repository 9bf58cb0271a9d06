#include "model/gguf.h"

#include <algorithm>
#include <cstring>
#include <set>

namespace crescent::model {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr int kMaxDims = 4;              // GGML_MAX_DIMS

// A cursor over the file that never reads past its end.
class Reader {
 public:
  Reader(std::span<const std::byte> b, const std::string& where) : b_(b), where_(where) {}

  size_t pos() const { return pos_; }
  size_t left() const { return b_.size() - pos_; }

  template <typename T>
  Status Read(T* out, const char* what) {
    if (left() < sizeof(T)) return Truncated(what);
    std::memcpy(out, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }

  Status ReadString(std::string* out, const char* what) {
    uint64_t n = 0;
    RETURN_IF_ERROR(Read(&n, what));
    if (n > left()) {
      return Status(StatusCode::kDataLoss, where_ + ": " + what + " of " + std::to_string(n) +
                                               " bytes is longer than the " + std::to_string(left()) +
                                               " bytes left in the file");
    }
    out->assign(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return Status::Ok();
  }

  Status Truncated(const char* what) const {
    return Status(StatusCode::kDataLoss, where_ + ": truncated at byte " + std::to_string(pos_) + " (reading " +
                                             what + ")");
  }

 private:
  std::span<const std::byte> b_;
  const std::string& where_;
  size_t pos_ = 0;
};

// Bytes one element of a scalar type takes (0 for string/array).
size_t ScalarSize(GgufType t) {
  switch (t) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kBool: return 1;
    case GgufType::kU16: case GgufType::kI16: return 2;
    case GgufType::kU32: case GgufType::kI32: case GgufType::kF32: return 4;
    case GgufType::kU64: case GgufType::kI64: case GgufType::kF64: return 8;
    default: return 0;
  }
}

bool KnownType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kF64); }
bool IsFloat(GgufType t) { return t == GgufType::kF32 || t == GgufType::kF64; }

// One scalar (not string/array) as int64 or double.
Status ReadScalar(Reader& r, GgufType t, std::variant<int64_t, double, std::string, GgufArray>* out,
                  const std::string& where) {
  auto as_int = [&](auto v) {
    *out = static_cast<int64_t>(v);
    return Status::Ok();
  };
  switch (t) {
    case GgufType::kU8: { uint8_t v = 0; RETURN_IF_ERROR(r.Read(&v, "a value")); return as_int(v); }
    case GgufType::kI8: { int8_t v = 0; RETURN_IF_ERROR(r.Read(&v, "a value")); return as_int(v); }
    case GgufType::kBool: {
      uint8_t v = 0;
      RETURN_IF_ERROR(r.Read(&v, "a value"));
      if (v > 1) return InvalidArgument(where + ": a bool of value " + std::to_string(v));
      return as_int(v);
    }
    case GgufType::kU16: { uint16_t v = 0; RETURN_IF_ERROR(r.Read(&v, "a value")); return as_int(v); }
    case GgufType::kI16: { int16_t v = 0; RETURN_IF_ERROR(r.Read(&v, "a value")); return as_int(v); }
    case GgufType::kU32: { uint32_t v = 0; RETURN_IF_ERROR(r.Read(&v, "a value")); return as_int(v); }
    case GgufType::kI32: { int32_t v = 0; RETURN_IF_ERROR(r.Read(&v, "a value")); return as_int(v); }
    case GgufType::kI64: { int64_t v = 0; RETURN_IF_ERROR(r.Read(&v, "a value")); return as_int(v); }
    case GgufType::kU64: {
      uint64_t v = 0;
      RETURN_IF_ERROR(r.Read(&v, "a value"));
      if (v > static_cast<uint64_t>(INT64_MAX)) return InvalidArgument(where + ": a u64 value past 2^63");
      return as_int(v);
    }
    case GgufType::kF32: { float v = 0; RETURN_IF_ERROR(r.Read(&v, "a value")); *out = static_cast<double>(v); return Status::Ok(); }
    case GgufType::kF64: { double v = 0; RETURN_IF_ERROR(r.Read(&v, "a value")); *out = v; return Status::Ok(); }
    default: return InvalidArgument(where + ": not a scalar type");
  }
}

Status ReadValue(Reader& r, GgufType t, GgufValue* out, const std::string& where) {
  out->type = t;
  if (t == GgufType::kString) {
    std::string s;
    RETURN_IF_ERROR(r.ReadString(&s, "a string value"));
    out->v = std::move(s);
    return Status::Ok();
  }
  if (t != GgufType::kArray) return ReadScalar(r, t, &out->v, where);
  uint32_t et = 0;
  uint64_t n = 0;
  RETURN_IF_ERROR(r.Read(&et, "an array's type"));
  RETURN_IF_ERROR(r.Read(&n, "an array's length"));
  if (!KnownType(et)) return InvalidArgument(where + ": array of unknown type " + std::to_string(et));
  GgufArray a;
  a.type = static_cast<GgufType>(et);
  if (a.type == GgufType::kArray) return InvalidArgument(where + ": arrays of arrays are not supported");
  // Each element takes at least one byte (a string at least its 8-byte length):
  // a count the file cannot hold is refused before anything is allocated.
  const size_t min_size = a.type == GgufType::kString ? 8 : ScalarSize(a.type);
  if (n > r.left() / min_size) {
    return Status(StatusCode::kDataLoss, where + ": an array of " + std::to_string(n) +
                                             " elements does not fit in the file");
  }
  // Grown as elements are read: a count the bytes could hold still reserves
  // no more than a million elements ahead of them.
  const size_t ahead = std::min<uint64_t>(n, 1 << 20);
  if (a.type == GgufType::kString) {
    a.strings.reserve(ahead);
    for (uint64_t i = 0; i < n; ++i) {
      std::string s;
      RETURN_IF_ERROR(r.ReadString(&s, "an array's string"));
      a.strings.push_back(std::move(s));
    }
  } else if (IsFloat(a.type)) {
    a.floats.reserve(ahead);
    for (uint64_t i = 0; i < n; ++i) {
      std::variant<int64_t, double, std::string, GgufArray> v;
      RETURN_IF_ERROR(ReadScalar(r, a.type, &v, where));
      a.floats.push_back(std::get<double>(v));
    }
  } else {
    a.ints.reserve(ahead);
    for (uint64_t i = 0; i < n; ++i) {
      std::variant<int64_t, double, std::string, GgufArray> v;
      RETURN_IF_ERROR(ReadScalar(r, a.type, &v, where));
      a.ints.push_back(std::get<int64_t>(v));
    }
  }
  out->v = std::move(a);
  return Status::Ok();
}

}  // namespace

size_t GgufArray::size() const { return ints.size() + floats.size() + strings.size(); }

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // checked against overflow at Open
  return n;
}

std::vector<int64_t> GgufTensor::shape() const { return {ne.rbegin(), ne.rend()}; }

Result<GgufFile> GgufFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  ASSIGN_OR_RETURN(GgufFile g, Parse(file.bytes(), path));
  g.file_ = std::move(file);  // the mapping moves; the tensors' spans stay valid
  return g;
}

Result<GgufFile> GgufFile::Parse(std::span<const std::byte> bytes, std::string where) {
  GgufFile g;
  g.where_ = std::move(where);
  const std::string& w = g.where_;
  Reader r(bytes, w);
  uint32_t magic = 0;
  RETURN_IF_ERROR(r.Read(&magic, "the magic"));
  if (magic != kMagic) return InvalidArgument(w + ": not a GGUF file (bad magic)");
  RETURN_IF_ERROR(r.Read(&g.version_, "the version"));
  if (g.version_ == 1) return InvalidArgument(w + ": GGUF version 1 is not supported (convert it again: v2 or v3)");
  if (g.version_ != 2 && g.version_ != 3) {
    // A big-endian file reads its version byte-swapped.
    return InvalidArgument(w + ": unsupported GGUF version " + std::to_string(g.version_) +
                           ((g.version_ & 0xffff) == 0 ? " (a big-endian file?)" : ""));
  }
  uint64_t n_tensors = 0, n_kv = 0;
  RETURN_IF_ERROR(r.Read(&n_tensors, "the tensor count"));
  RETURN_IF_ERROR(r.Read(&n_kv, "the metadata count"));
  // A key-value pair takes at least 12 bytes, a tensor info at least 24.
  if (n_kv > r.left() / 12 || n_tensors > r.left() / 24) {
    return Status(StatusCode::kDataLoss, w + ": counts of " + std::to_string(n_kv) + " metadata values and " +
                                             std::to_string(n_tensors) + " tensors do not fit in the file");
  }
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    uint32_t type = 0;
    RETURN_IF_ERROR(r.ReadString(&key, "a metadata key"));
    RETURN_IF_ERROR(r.Read(&type, "a metadata type"));
    if (!KnownType(type)) return InvalidArgument(w + ": metadata '" + key + "' has unknown type " + std::to_string(type));
    GgufValue v;
    RETURN_IF_ERROR(ReadValue(r, static_cast<GgufType>(type), &v, w + ": metadata '" + key + "'"));
    if (!g.kv_.emplace(key, std::move(v)).second) return InvalidArgument(w + ": duplicate metadata key '" + key + "'");
  }
  int64_t alignment = 32;
  if (g.Has("general.alignment")) {
    const GgufValue& a = g.kv_.at("general.alignment");
    if (a.type != GgufType::kU32) return InvalidArgument(w + ": general.alignment must be a u32");
    alignment = std::get<int64_t>(a.v);
    if (alignment <= 0 || (alignment & (alignment - 1)) != 0) {
      return InvalidArgument(w + ": general.alignment " + std::to_string(alignment) + " is not a power of two");
    }
  }
  struct Raw {
    uint64_t offset = 0;
    int64_t bytes;
  };
  std::vector<Raw> raws;
  std::set<std::string> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    uint32_t n_dims = 0, type = 0;
    RETURN_IF_ERROR(r.ReadString(&t.name, "a tensor name"));
    const std::string tw = w + ": tensor '" + t.name + "'";
    if (!names.insert(t.name).second) return InvalidArgument(w + ": duplicate tensor '" + t.name + "'");
    RETURN_IF_ERROR(r.Read(&n_dims, "a tensor's dimension count"));
    if (n_dims > kMaxDims) return InvalidArgument(tw + " has " + std::to_string(n_dims) + " dimensions (at most 4)");
    // The product of the non-zero dimensions must fit as well, so no subset
    // of them a reader multiplies can overflow.
    int64_t numel = 1, nonzero = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = 0;
      RETURN_IF_ERROR(r.Read(&ne, "a tensor's dimensions"));
      if (ne > static_cast<uint64_t>(INT64_MAX) || (ne != 0 && static_cast<int64_t>(ne) > INT64_MAX / nonzero)) {
        return InvalidArgument(tw + ": its element count overflows");
      }
      t.ne.push_back(static_cast<int64_t>(ne));
      numel *= static_cast<int64_t>(ne);
      if (ne != 0) nonzero *= static_cast<int64_t>(ne);
    }
    RETURN_IF_ERROR(r.Read(&type, "a tensor's type"));
    auto qt = QuantTypeFromGgml(type);
    if (!qt) {
      return Status(StatusCode::kUnimplemented, tw + " has type " + GgmlTypeName(type) +
                                                    ", which crescent cannot read (F32, F16, BF16, Q8_0, Q4_0, Q4_K, "
                                                    "Q5_K, Q6_K)");
    }
    t.type = *qt;
    const int64_t row = t.ne.empty() ? 1 : t.ne[0];
    if (row % QuantBlockElems(t.type) != 0) {
      return InvalidArgument(tw + ": rows of " + std::to_string(row) + " are not whole " +
                             std::string(QuantTypeName(t.type)) + " blocks");
    }
    auto bytes_or = QuantBytes(t.type, numel);
    if (!bytes_or.ok()) return bytes_or.status().WithContext(tw);
    uint64_t offset = 0;
    RETURN_IF_ERROR(r.Read(&offset, "a tensor's offset"));
    if (offset % static_cast<uint64_t>(alignment) != 0) {
      return InvalidArgument(tw + ": offset " + std::to_string(offset) + " is not aligned to " +
                             std::to_string(alignment));
    }
    raws.push_back({offset, *bytes_or});
    g.tensors_.push_back(std::move(t));
  }
  const uint64_t data = (r.pos() + static_cast<uint64_t>(alignment) - 1) / static_cast<uint64_t>(alignment) *
                        static_cast<uint64_t>(alignment);
  if (data > bytes.size() && !g.tensors_.empty()) return r.Truncated("the padding before the tensor data");
  const uint64_t data_size = data > bytes.size() ? 0 : bytes.size() - data;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (size_t i = 0; i < g.tensors_.size(); ++i) {
    const Raw& raw = raws[i];
    const uint64_t size = static_cast<uint64_t>(raw.bytes);
    if (raw.offset > data_size || size > data_size - raw.offset) {
      return Status(StatusCode::kDataLoss, w + ": tensor '" + g.tensors_[i].name + "' data [" +
                                               std::to_string(raw.offset) + ", +" + std::to_string(size) +
                                               ") lies past the end of the file");
    }
    // Typed reads of the blocks (f16 scales, f32 values) need 4-byte alignment
    // in the file (a file with general.alignment 1 or 2 may not give it).
    if ((data + raw.offset) % 4 != 0) {
      return InvalidArgument(w + ": tensor '" + g.tensors_[i].name + "' data starts at byte " +
                             std::to_string(data + raw.offset) + ", not a multiple of 4");
    }
    g.tensors_[i].bytes = bytes.subspan(static_cast<size_t>(data + raw.offset), static_cast<size_t>(size));
    if (size > 0) ranges.push_back({raw.offset, raw.offset + size});
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) return InvalidArgument(w + ": two tensors' data overlap");
  }
  return g;
}

Result<int64_t> GgufFile::Int(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return NotFound(where_ + ": no metadata '" + key + "'");
  if (const auto* v = std::get_if<int64_t>(&it->second.v)) return *v;
  return InvalidArgument(where_ + ": metadata '" + key + "' is not an integer");
}

Result<double> GgufFile::Float(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return NotFound(where_ + ": no metadata '" + key + "'");
  if (const auto* v = std::get_if<double>(&it->second.v)) return *v;
  if (const auto* v = std::get_if<int64_t>(&it->second.v)) return static_cast<double>(*v);
  return InvalidArgument(where_ + ": metadata '" + key + "' is not a number");
}

Result<std::string> GgufFile::String(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return NotFound(where_ + ": no metadata '" + key + "'");
  if (const auto* v = std::get_if<std::string>(&it->second.v)) return *v;
  return InvalidArgument(where_ + ": metadata '" + key + "' is not a string");
}

Result<const GgufArray*> GgufFile::Array(const std::string& key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return NotFound(where_ + ": no metadata '" + key + "'");
  if (const auto* v = std::get_if<GgufArray>(&it->second.v)) return v;
  return InvalidArgument(where_ + ": metadata '" + key + "' is not an array");
}

}  // namespace crescent::model
