//===- CudaDriver.cpp -----------------------------------------------------===//
#include "runtime/CudaDriver.h"

#include <dlfcn.h>
#include <mutex>

namespace flashjit {

// cuda.h maps some names to versioned symbols (cuMemAlloc -> cuMemAlloc_v2);
// stringify after macro expansion to look up the versioned one.
#define FLASHJIT_STR2(x) #x
#define FLASHJIT_STR(x) FLASHJIT_STR2(x)

Status CudaDriver::get(const CudaDriver *&out) {
  static CudaDriver driver;
  static Status status = Status::ok();
  static std::once_flag once;
  std::call_once(once, [] {
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      status = Status::error(std::string("the CUDA driver (libcuda.so.1) could not be loaded: ") +
                             dlerror());
      return;
    }
#define FLASHJIT_LOAD(name)                                                                   \
  driver.name = reinterpret_cast<decltype(driver.name)>(dlsym(lib, FLASHJIT_STR(name)));       \
  if (!driver.name) {                                                                         \
    status = Status::error("the CUDA driver lacks " FLASHJIT_STR(name) "; update the driver"); \
    return;                                                                                   \
  }
    FLASHJIT_CUDA_FUNCTIONS(FLASHJIT_LOAD)
#undef FLASHJIT_LOAD
    CUresult r = driver.cuInit(0);
    if (r != CUDA_SUCCESS)
      status = Status::error(driver.describe("cuInit", r));
  });
  out = status.isOk() ? &driver : nullptr;
  return status;
}

std::string CudaDriver::describe(const char *what, CUresult r) const {
  const char *name = nullptr, *text = nullptr;
  if (cuGetErrorName)
    cuGetErrorName(r, &name);
  if (cuGetErrorString)
    cuGetErrorString(r, &text);
  return std::string(what) + ": " + (name ? name : "CUDA error " + std::to_string(int(r))) +
         " (" + (text ? text : "no description") + ")";
}

} // namespace flashjit
