#include "core/memory.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"

namespace cn {

namespace cuda_memory {  // defined by the CUDA backend, or by the stub
void* alloc(size_t bytes);
void free(void* p) noexcept;
void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t bytes);
void zero(void* p, size_t bytes);
}  // namespace cuda_memory

namespace {
std::atomic<int64_t> g_host_allocs{0};
}

int64_t host_allocation_count() { return g_host_allocs.load(); }

void* device_alloc(Device d, size_t bytes) {
  if (d == Device::cuda) return cuda_memory::alloc(bytes);
  ++g_host_allocs;
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) throw std::bad_alloc();
  return p;
}

void device_free(Device d, void* p) noexcept {
  if (d == Device::cuda)
    cuda_memory::free(p);
  else
    std::free(p);
}

void device_copy(Device dst_dev, void* dst, Device src_dev, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (dst_dev == Device::cpu && src_dev == Device::cpu) {
    std::memcpy(dst, src, bytes);
    return;
  }
  cuda_memory::copy(dst, dst_dev == Device::cuda, src, src_dev == Device::cuda, bytes);
}

void device_zero(Device d, void* p, size_t bytes) {
  if (d == Device::cuda)
    cuda_memory::zero(p, bytes);
  else
    std::memset(p, 0, bytes);
}

}  // namespace cn
