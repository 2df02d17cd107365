// Built when the CUDA backend is not: every CUDA query says "not built", and any attempt
// to use CUDA memory is a clear error.
#include <cstddef>

#include "core/device.h"
#include "core/error.h"

namespace cn {
bool cuda_available() { return false; }
std::string cuda_device_description() { return "curvnet was built without the CUDA backend"; }

namespace cuda_memory {
[[noreturn]] static void not_built() {
  throw Error("CUDA memory requested, but curvnet was built without the CUDA backend");
}
void* alloc(size_t) { not_built(); }
void free(void*) noexcept {}
void copy(void*, bool, const void*, bool, size_t) { not_built(); }
void zero(void*, size_t) { not_built(); }
}  // namespace cuda_memory
}  // namespace cn
