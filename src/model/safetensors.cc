#include "model/safetensors.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cstring>

#include "base/json.h"
#include "model/gguf.h"
#include "model/gguf_model.h"

namespace crescent::model {

namespace json = boost::json;

Result<DType> ParseSafetensorsDType(std::string_view name) {
  if (name == "BF16") return DType::kBF16;
  if (name == "F16") return DType::kF16;
  if (name == "F32") return DType::kF32;
  return InvalidArgument("unsupported dtype '" + std::string(name) + "' (supported: BF16, F16, F32)");
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

float TensorView::At(int64_t i) const {
  if (quantized()) {
    const int64_t be = QuantBlockElems(quant);
    float block[256];
    DequantizeRow(quant, bytes.data() + (i / be) * QuantBlockBytes(quant), block, be);
    return block[i % be];
  }
  const std::byte* p = bytes.data() + i * static_cast<int64_t>(DTypeSize(dtype));
  if (dtype == DType::kF32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return dtype == DType::kBF16 ? Bf16ToF32(h) : F16ToF32(h);
}

void TensorView::Row(int64_t r, float* out) const {
  const int64_t k = shape.empty() ? 1 : shape.back();
  const int64_t row_bytes = QuantBytes(quant, k).value();  // whole blocks: checked at open
  DequantizeRow(quant, bytes.data() + r * row_bytes, out, k);
}

std::string TensorView::ShapeString() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Result<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(MappedFile mf, MappedFile::Open(path));
  auto corrupt = [&](const std::string& why) { return DataLoss(path + ": " + why); };
  const uint64_t size = mf.size();
  if (size < 8) return corrupt("file too short for a safetensors header (" + std::to_string(size) + " bytes)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, mf.bytes().data(), 8);  // little-endian host
  if (header_len > size - 8) {
    return corrupt("header length " + std::to_string(header_len) + " exceeds the file size " +
                   std::to_string(size) + " (truncated file?)");
  }
  std::string_view header(reinterpret_cast<const char*>(mf.bytes().data()) + 8, header_len);
  auto parsed = ParseJson(header, path + " header");
  if (!parsed.ok()) return corrupt("bad header: " + parsed.status().message());
  if (!parsed->is_object()) return corrupt("header is not a JSON object");

  SafetensorsFile f;
  const uint64_t data_len = size - 8 - header_len;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& kv : parsed->get_object()) {
    std::string name(kv.key());
    if (name == "__metadata__") continue;
    if (!kv.value().is_object()) return corrupt("tensor '" + name + "': entry is not an object");
    const json::object& o = kv.value().get_object();
    auto dt_it = o.find("dtype");
    auto shape_it = o.find("shape");
    auto off_it = o.find("data_offsets");
    if (dt_it == o.end() || !dt_it->value().is_string()) return corrupt("tensor '" + name + "': missing or bad dtype");
    if (shape_it == o.end() || !shape_it->value().is_array()) return corrupt("tensor '" + name + "': missing or bad shape");
    if (off_it == o.end() || !off_it->value().is_array() || off_it->value().get_array().size() != 2) {
      return corrupt("tensor '" + name + "': missing or bad data_offsets");
    }
    auto dt = ParseSafetensorsDType(std::string(dt_it->value().get_string()));
    if (!dt.ok()) return InvalidArgument(path + ": tensor '" + name + "': " + dt.status().message());
    Info info;
    info.dtype = *dt;
    uint64_t numel = 1;
    for (const auto& d : shape_it->value().get_array()) {
      if (!d.is_int64() && !d.is_uint64()) return corrupt("tensor '" + name + "': shape entries must be integers");
      const int64_t v = ExactInt64(d).value_or(-1);
      if (v < 0 || v > (int64_t{1} << 40)) return corrupt("tensor '" + name + "': bad dimension " + std::to_string(v));
      if (v != 0 && numel > (uint64_t{1} << 62) / static_cast<uint64_t>(v)) return corrupt("tensor '" + name + "': shape too large");
      numel *= static_cast<uint64_t>(v);
      info.shape.push_back(v);
    }
    const auto& offs = off_it->value().get_array();
    for (const auto& d : offs) {
      if (!d.is_int64() && !d.is_uint64()) return corrupt("tensor '" + name + "': data_offsets must be integers");
      if (d.is_int64() && d.get_int64() < 0) return corrupt("tensor '" + name + "': negative data offset");
    }
    info.begin = offs[0].to_number<uint64_t>();
    info.end = offs[1].to_number<uint64_t>();
    if (info.begin > info.end) return corrupt("tensor '" + name + "': data_offsets are reversed");
    if (info.end > data_len) {
      return corrupt("tensor '" + name + "': data_offsets [" + std::to_string(info.begin) + ", " +
                     std::to_string(info.end) + ") run past the end of the data (" +
                     std::to_string(data_len) + " bytes; truncated file?)");
    }
    if (numel * DTypeSize(info.dtype) != info.end - info.begin) {
      return corrupt("tensor '" + name + "': shape and dtype need " + std::to_string(numel * DTypeSize(info.dtype)) +
                     " bytes but data_offsets span " + std::to_string(info.end - info.begin));
    }
    if (info.end > info.begin) ranges.emplace_back(info.begin, info.end);
    f.infos_.emplace(std::move(name), std::move(info));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) {
      return corrupt("tensors overlap at data offset " + std::to_string(ranges[i].first));
    }
  }
  f.data_ = mf.bytes().data() + 8 + header_len;
  f.file_ = std::move(mf);
  return f;
}

Result<TensorView> SafetensorsFile::Get(const std::string& name) const {
  auto it = infos_.find(name);
  if (it == infos_.end()) return NotFound(path() + ": no tensor '" + name + "'");
  const Info& info = it->second;
  TensorView v;
  v.name = name;
  v.dtype = info.dtype;
  v.quant = info.dtype == DType::kBF16 ? QuantType::kBF16 : info.dtype == DType::kF16 ? QuantType::kF16 : QuantType::kF32;
  v.shape = info.shape;
  v.bytes = {data_ + info.begin, static_cast<size_t>(info.end - info.begin)};
  return v;
}

std::vector<std::string> SafetensorsFile::Names() const {
  std::vector<std::string> out;
  for (const auto& kv : infos_) out.push_back(kv.first);
  return out;
}

WeightFiles::WeightFiles() = default;
WeightFiles::~WeightFiles() = default;
WeightFiles::WeightFiles(WeightFiles&&) noexcept = default;
WeightFiles& WeightFiles::operator=(WeightFiles&&) noexcept = default;

Result<WeightFiles> WeightFiles::Open(const std::string& dir) {
  ASSIGN_OR_RETURN(auto gguf, FindGgufModel(dir));
  if (gguf) return OpenGguf(*gguf);
  WeightFiles w;
  std::vector<std::string> files;
  std::string index = JoinPath(dir, "model.safetensors.index.json");
  std::map<std::string, std::string> weight_map;
  if (FileExists(index)) {
    ASSIGN_OR_RETURN(json::value root, ReadJsonFile(index));
    JsonReader r(root, index);
    const json::value* wm = r.Object("weight_map", /*optional=*/false);
    RETURN_IF_ERROR(r.status());
    for (const auto& kv : wm->get_object()) {
      if (!kv.value().is_string()) return InvalidArgument(index + ": weight_map entry '" + std::string(kv.key()) + "' is not a file name");
      std::string file(kv.value().get_string());
      if (file.find('/') != std::string::npos) return InvalidArgument(index + ": shard name '" + file + "' must be a plain file name");
      weight_map[std::string(kv.key())] = file;
      if (std::find(files.begin(), files.end(), file) == files.end()) files.push_back(file);
    }
  } else {
    std::string single = JoinPath(dir, "model.safetensors");
    if (!FileExists(single)) return NotFound(dir + ": no model.safetensors or model.safetensors.index.json");
    files.push_back("model.safetensors");
  }
  std::map<std::string, const SafetensorsFile*> by_file;
  for (const std::string& file : files) {
    ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(JoinPath(dir, file)));
    w.paths_.push_back(JoinPath(dir, file));
    w.files_.push_back(std::make_unique<SafetensorsFile>(std::move(f)));
    by_file[file] = w.files_.back().get();
  }
  for (const auto& f : w.files_) {
    for (const std::string& name : f->Names()) {
      auto v = f->Get(name);
      w.total_bytes_ += v->bytes.size();
      if (!weight_map.empty()) {
        auto it = weight_map.find(name);
        if (it == weight_map.end() || by_file[it->second] != f.get()) continue;  // not indexed here
      }
      if (w.where_.count(name)) return InvalidArgument(dir + ": tensor '" + name + "' appears in two shards");
      w.where_[name] = f.get();
    }
  }
  for (const auto& [name, file] : weight_map) {
    if (!w.where_.count(name)) return DataLoss(index + ": tensor '" + name + "' is listed for " + file + " but not stored there");
  }
  return w;
}

std::vector<std::string> WeightFiles::Names() const {
  std::vector<std::string> out;
  for (const auto& kv : where_) out.push_back(kv.first);
  for (const auto& kv : views_) out.push_back(kv.first);
  return out;
}

Result<TensorView> WeightFiles::Get(const std::string& name) const {
  if (auto v = views_.find(name); v != views_.end()) return v->second;
  auto it = where_.find(name);
  if (it == where_.end()) return NotFound("missing tensor '" + name + "'");
  return it->second->Get(name);
}

}  // namespace crescent::model
