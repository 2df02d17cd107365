#include "core/device.h"

#include "core/error.h"

namespace cn {

Device resolve_device(const std::string& requested) {
  if (requested == "cpu") return Device::cpu;
  if (requested == "cuda") {
    if (!cuda_available())
      throw InputError("--device cuda: no CUDA device is usable (" + cuda_device_description() + ")");
    return Device::cuda;
  }
  if (requested == "auto") return cuda_available() ? Device::cuda : Device::cpu;
  throw InputError("device '" + requested + "': expected auto, cpu or cuda");
}

}  // namespace cn
