// Built when the CUDA backend is not: every CUDA query says "not built".
#include "core/device.h"

namespace cn {
bool cuda_available() { return false; }
std::string cuda_device_description() { return "curvnet was built without the CUDA backend"; }
}  // namespace cn
