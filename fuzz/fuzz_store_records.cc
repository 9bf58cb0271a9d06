// The store's on-disk records (store/record.h) as an SSD tier finds them at
// restart: the input becomes up to three record files in the tier's
// directory (the first byte says how many, and which get a header whose
// checksum is made to match, so the fuzzer reaches past the header check),
// then SsdTier::Open rescans the directory and every object it holds again
// is read and its checksum verified. Bad headers, torn files and bytes that
// do not match are skipped or an error; never a crash, never served.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "store/record.h"
#include "store/ssd_tier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace crescent::store;
  static const std::string dir = [] {
    // tmpfs where there is one: the target is about the parsing, not the disk.
    const std::string base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    std::string tmpl = base + "/fuzz_store_records.XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    return std::string(mkdtemp(buf.data()));
  }();
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) std::filesystem::remove(e.path(), ec);
  if (size < 1) return 0;
  const int files = 1 + data[0] % 3;
  const bool seal[3] = {(data[0] & 4) != 0, (data[0] & 8) != 0, (data[0] & 16) != 0};
  const bool tmp_file = (data[0] & 32) != 0;
  const size_t part = (size - 1) / static_cast<size_t>(files);
  for (int i = 0; i < files; ++i) {
    std::string bytes(reinterpret_cast<const char*>(data) + 1 + part * static_cast<size_t>(i), part);
    if (seal[i] && bytes.size() >= sizeof(RecordHeader)) {
      RecordHeader h;
      std::memcpy(&h, bytes.data(), sizeof(h));
      h.magic = kRecordMagic;
      h.generation = static_cast<uint64_t>(i + 1);  // the location its name says
      h.Seal();
      std::memcpy(bytes.data(), &h, sizeof(h));
    }
    std::ofstream(dir + "/" + std::to_string(i + 1) + (tmp_file && i == files - 1 ? ".tmp" : ".rec"), std::ios::binary)
        << bytes;
  }
  SsdTierOptions o;
  o.dir = dir;
  o.capacity = uint64_t{1} << 30;
  o.direct = false;
  o.queue_depth = 2;
  auto tier = SsdTier::Open(o);
  if (!tier.ok()) return 0;
  for (const SsdObject& obj : (*tier)->Objects()) {
    if (obj.size > (uint64_t{1} << 20)) continue;
    std::vector<std::byte> out(obj.size);
    (void)(*tier)->Read(obj.location, obj.key, out);
    (void)(*tier)->Read(obj.location, obj.key, out, obj.checksum + 1);
  }
  return 0;
}
