// Facts about the machine this process runs on.
#pragma once

#include <cstdint>

namespace crescent {

// Bytes of memory the kernel reports as available (MemAvailable), or 0.
int64_t AvailableMemory();

}  // namespace crescent
