#include "base/sys_info.h"

#include <fstream>
#include <string>

namespace crescent {

int64_t AvailableMemory() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb;
  std::string unit;
  while (f >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

}  // namespace crescent
