#include "model/safetensors_writer.h"

#include <boost/json.hpp>

#include <cstdio>
#include <cstring>

namespace crescent::model {

Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors) {
  boost::json::object header;
  uint64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    int64_t numel = 1;
    boost::json::array shape;
    for (int64_t d : t.shape) {
      numel *= d;
      shape.push_back(d);
    }
    CHECK_EQ(static_cast<size_t>(numel) * DTypeSize(t.dtype), t.bytes.size()) << t.name;
    header[t.name] = boost::json::object{{"dtype", std::string(DTypeName(t.dtype))},
                                         {"shape", shape},
                                         {"data_offsets", boost::json::array{offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  header["__metadata__"] = boost::json::object{{"format", "pt"}};
  std::string h = boost::json::serialize(header);
  while (h.size() % 8) h.push_back(' ');
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return Internal("cannot create " + tmp + ": " + std::strerror(errno));
  uint64_t len = h.size();
  bool ok = std::fwrite(&len, 8, 1, f) == 1 && std::fwrite(h.data(), 1, h.size(), f) == h.size();
  for (const TensorToWrite& t : tensors) {
    if (!ok) break;
    ok = t.bytes.empty() || std::fwrite(t.bytes.data(), 1, t.bytes.size(), f) == t.bytes.size();
  }
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    return Internal("cannot write " + path);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return Internal("cannot rename " + tmp + " to " + path);
  return Status::Ok();
}

}  // namespace crescent::model
