// Counts every heap allocation of a test executable, for "this call allocates nothing"
// checks. Include it from exactly one .cpp per test executable: it replaces the global
// operator new/delete (every form, so sanitizers see matching pairs).
#pragma once
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace cn::test {
inline std::atomic<int64_t> g_heap_allocations{0};
inline int64_t heap_allocations() { return g_heap_allocations.load(std::memory_order_relaxed); }
}  // namespace cn::test

void* operator new(std::size_t n) {
  cn::test::g_heap_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  cn::test::g_heap_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
