// Raw memory on a device. The CPU side is 64-byte aligned host memory; the CUDA side is
// defined by the CUDA backend (kernels/cuda/) or throws where it is not built.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>

#include "core/device.h"

namespace cn {

void* device_alloc(Device d, size_t bytes);
void device_free(Device d, void* p) noexcept;
// Copies between any two devices (host<->host, host<->cuda, cuda<->cuda).
void device_copy(Device dst_dev, void* dst, Device src_dev, const void* src, size_t bytes);
void device_zero(Device d, void* p, size_t bytes);

// An owning array of T on one device. resize() reallocates only when growing past the
// capacity, so a training step that resizes to the same or a smaller batch never allocates.
template <class T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(int64_t n, Device d = Device::cpu) : device_(d) { resize(n); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~Buffer() { release(); }

  void set_device(Device d) {
    if (d == device_) return;
    release();
    device_ = d;
  }
  void resize(int64_t n) {
    if (n > capacity_) {
      void* p = device_alloc(device_, static_cast<size_t>(n) * sizeof(T));
      if (size_ > 0) device_copy(device_, p, device_, data_, static_cast<size_t>(size_) * sizeof(T));
      release();
      data_ = static_cast<T*>(p);
      capacity_ = n;
    }
    size_ = n;
  }
  void zero() {
    if (size_ > 0) device_zero(device_, data_, static_cast<size_t>(size_) * sizeof(T));
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return size_; }
  int64_t capacity() const { return capacity_; }
  Device device() const { return device_; }
  bool empty() const { return size_ == 0; }
  // Host access (CPU buffers only).
  T& operator[](int64_t i) { return data_[i]; }
  const T& operator[](int64_t i) const { return data_[i]; }

 private:
  void release() noexcept {
    if (data_) device_free(device_, data_);
    data_ = nullptr;
    size_ = capacity_ = 0;
  }
  void swap(Buffer& o) noexcept {
    std::swap(device_, o.device_);
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(capacity_, o.capacity_);
  }
  Device device_ = Device::cpu;
  T* data_ = nullptr;
  int64_t size_ = 0, capacity_ = 0;
};

// Counts host allocations made through device_alloc (for the "no allocation inside the
// training step" check).
int64_t host_allocation_count();

}  // namespace cn
