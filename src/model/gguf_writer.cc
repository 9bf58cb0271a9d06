#include "model/gguf_writer.h"

#include <cstring>

#include "base/file.h"
#include "model/gguf.h"

namespace crescent::model {

namespace {

template <typename T>
void Put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void PutString(std::string& out, std::string_view s) {
  Put<uint64_t>(out, s.size());
  out.append(s);
}

constexpr uint64_t kAlign = 32;

}  // namespace

void GgufWriter::Key(std::string_view key, uint32_t type) {
  PutString(kv_, key);
  Put<uint32_t>(kv_, type);
  ++n_kv_;
}

void GgufWriter::AddString(std::string_view key, std::string_view value) {
  Key(key, static_cast<uint32_t>(GgufType::kString));
  PutString(kv_, value);
}
void GgufWriter::AddU32(std::string_view key, uint32_t value) {
  Key(key, static_cast<uint32_t>(GgufType::kU32));
  Put(kv_, value);
}
void GgufWriter::AddI32(std::string_view key, int32_t value) {
  Key(key, static_cast<uint32_t>(GgufType::kI32));
  Put(kv_, value);
}
void GgufWriter::AddF32(std::string_view key, float value) {
  Key(key, static_cast<uint32_t>(GgufType::kF32));
  Put(kv_, value);
}
void GgufWriter::AddBool(std::string_view key, bool value) {
  Key(key, static_cast<uint32_t>(GgufType::kBool));
  Put<uint8_t>(kv_, value ? 1 : 0);
}
void GgufWriter::AddStrings(std::string_view key, const std::vector<std::string>& values) {
  Key(key, static_cast<uint32_t>(GgufType::kArray));
  Put<uint32_t>(kv_, static_cast<uint32_t>(GgufType::kString));
  Put<uint64_t>(kv_, values.size());
  for (const auto& v : values) PutString(kv_, v);
}
void GgufWriter::AddI32s(std::string_view key, const std::vector<int32_t>& values) {
  Key(key, static_cast<uint32_t>(GgufType::kArray));
  Put<uint32_t>(kv_, static_cast<uint32_t>(GgufType::kI32));
  Put<uint64_t>(kv_, values.size());
  for (int32_t v : values) Put(kv_, v);
}
void GgufWriter::AddF32s(std::string_view key, const std::vector<float>& values) {
  Key(key, static_cast<uint32_t>(GgufType::kArray));
  Put<uint32_t>(kv_, static_cast<uint32_t>(GgufType::kF32));
  Put<uint64_t>(kv_, values.size());
  for (float v : values) Put(kv_, v);
}

void GgufWriter::AddTensor(std::string name, QuantType type, std::vector<int64_t> ne,
                           std::span<const std::byte> bytes) {
  tensors_.push_back({std::move(name), type, std::move(ne), bytes});
}

std::string GgufWriter::Serialize() const {
  std::string out;
  Put<uint32_t>(out, 0x46554747);
  Put<uint32_t>(out, 3);
  Put<uint64_t>(out, tensors_.size());
  Put<uint64_t>(out, n_kv_);
  out += kv_;
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    PutString(out, t.name);
    Put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) Put<uint64_t>(out, static_cast<uint64_t>(d));
    Put<uint32_t>(out, GgmlTypeId(t.type));
    Put<uint64_t>(out, offset);
    offset += (t.bytes.size() + kAlign - 1) / kAlign * kAlign;
  }
  out.resize((out.size() + kAlign - 1) / kAlign * kAlign, '\0');
  for (const Tensor& t : tensors_) {
    out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
    out.resize((out.size() + kAlign - 1) / kAlign * kAlign, '\0');
  }
  return out;
}

Status GgufWriter::Write(const std::string& path) const { return WriteFileAtomic(path, Serialize()); }

}  // namespace crescent::model
