// The extension module curvnet._curvnet (docs/python.md): the engine's models, curvature and
// trainer over numpy arrays. Bad input (cn::InputError, a wrong argument) is a ValueError
// with the engine's one-line message; an index out of range an IndexError.
#include <stdexcept>

#include "bindings.h"
#include "core/device.h"
#include "core/error.h"

namespace nb = nanobind;

NB_MODULE(_curvnet, m) {
  m.doc() = "curvnet's engine (use the curvnet package).";
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const cn::InputError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const std::out_of_range& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    }
  });
  m.def("cuda_available", &cn::cuda_available, "Whether the CUDA backend is built in and a GPU is visible.");
#ifdef CURVNET_HAVE_CUDA
  m.attr("cuda_built") = true;
#else
  m.attr("cuda_built") = false;
#endif
  m.attr("__version__") = CURVNET_VERSION;
  cnpy::register_model(m);
  cnpy::register_train(m);
}
