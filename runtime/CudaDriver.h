//===- CudaDriver.h - the CUDA Driver API, loaded at run time ---*- C++ -*-===//
//
// libcuda is opened with dlopen, so flashjit loads (and reports a clear error)
// on machines without a GPU driver, and links no CUDA library at build time.
//
#ifndef FLASHJIT_RUNTIME_CUDADRIVER_H
#define FLASHJIT_RUNTIME_CUDADRIVER_H

#include "runtime/Status.h"

#include <cuda.h>

namespace flashjit {

#define FLASHJIT_CUDA_FUNCTIONS(X)                                                           \
  X(cuInit) X(cuDriverGetVersion) X(cuDeviceGet) X(cuDeviceGetCount) X(cuDeviceGetAttribute)  \
  X(cuDeviceGetName) X(cuDevicePrimaryCtxRetain) X(cuCtxGetCurrent) X(cuCtxSetCurrent)       \
  X(cuCtxGetDevice) X(cuCtxSynchronize) X(cuModuleLoadDataEx) X(cuModuleUnload)               \
  X(cuModuleGetFunction) X(cuFuncSetAttribute) X(cuFuncGetAttribute) X(cuLaunchKernel)        \
  X(cuGetErrorName) X(cuGetErrorString) X(cuMemAlloc) X(cuMemFree) X(cuMemcpyHtoD)            \
  X(cuMemcpyDtoH) X(cuMemsetD8) X(cuStreamSynchronize) X(cuEventCreate) X(cuEventRecord)      \
  X(cuEventSynchronize) X(cuEventElapsedTime) X(cuEventDestroy) X(cuPointerGetAttribute)          \
  X(cuTensorMapEncodeTiled) X(cuMemAllocAsync) X(cuMemFreeAsync) X(cuMemsetD32Async)          \
  X(cuOccupancyMaxActiveBlocksPerMultiprocessor) X(cuMemPoolCreate) X(cuMemPoolDestroy)        \
  X(cuMemPoolSetAttribute) X(cuMemAllocFromPoolAsync)

struct CudaDriver {
#define FLASHJIT_DECLARE(name) decltype(&::name) name = nullptr;
  FLASHJIT_CUDA_FUNCTIONS(FLASHJIT_DECLARE)
#undef FLASHJIT_DECLARE

  /// The process-wide driver table, loaded and cuInit-ed once. Fails with a
  /// readable message when libcuda.so.1 or a GPU is missing.
  static Status get(const CudaDriver *&driver);

  /// "cuLaunchKernel: CUDA_ERROR_INVALID_VALUE (invalid argument)".
  std::string describe(const char *what, CUresult r) const;
  Status check(const char *what, CUresult r) const {
    return r == CUDA_SUCCESS ? Status::ok() : Status::error(describe(what, r));
  }
};

} // namespace flashjit

#endif
