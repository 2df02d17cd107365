// Devices. The CPU backend is always present; CUDA when built with it and a GPU is visible.
#pragma once
#include <string>

namespace cn {

enum class Device { cpu, cuda };

inline const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

// True only when the CUDA backend is built in and cudaGetDeviceCount reports n > 0
// (without a driver it fails with "insufficient driver"; that is "no GPU", not an error).
bool cuda_available();
// One line describing the visible GPU (or why there is none).
std::string cuda_device_description();

// "auto" -> cuda when available, else cpu; "cuda" without a GPU -> InputError (exit 2).
Device resolve_device(const std::string& requested);

}  // namespace cn
