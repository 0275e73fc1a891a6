//===- LoadedKernel.h - a kernel loaded through the Driver API --*- C++ -*-===//
//
// No LLVM or MLIR here: the runtime-only library uses it for pre-generated
// kernels, the JIT for freshly compiled ones.
//
#ifndef FLASHJIT_RUNTIME_LOADEDKERNEL_H
#define FLASHJIT_RUNTIME_LOADEDKERNEL_H

#include "compiler/KernelABI.h"
#include "runtime/CudaDriver.h"

#include <string>

namespace flashjit {

class LoadedKernel {
public:
  /// Loads PTX (JIT-compiled by the driver) or a cubin and looks up `name`;
  /// raises the dynamic shared-memory limit to `sharedMemoryBytes`.
  static Status load(const CudaDriver &driver, const std::string &image, const std::string &name,
                     int64_t threads, int64_t sharedMemoryBytes, LoadedKernel &out);
  LoadedKernel() = default;
  LoadedKernel(LoadedKernel &&other) noexcept;
  LoadedKernel &operator=(LoadedKernel &&other) noexcept;
  LoadedKernel(const LoadedKernel &) = delete;
  ~LoadedKernel();

  /// Launches a generated attention kernel (parameters per compiler/KernelABI.h);
  /// `tensorMaps` (Q, K, V, O) for warp-specialized kernels, else null.
  Status launch(const abi::AttentionKernelParams &params, const abi::TensorMap *tensorMaps,
                unsigned gridX, unsigned gridY, unsigned gridZ, CUstream stream) const;
  /// Launches a generated backward kernel (parameters per abi::bwd);
  /// `tensorMaps` (Q, K, V, dO) for warp-specialized kernels, else null.
  Status launch(const abi::BackwardKernelParams &params, const abi::TensorMap *tensorMaps,
                unsigned gridX, unsigned gridY, unsigned gridZ, CUstream stream) const;
  /// Launches any kernel: `args` holds one pointer per kernel parameter.
  Status launchRaw(void **args, unsigned gridX, unsigned gridY, unsigned gridZ,
                   CUstream stream) const;
  const std::string &name() const { return name_; }
  int registersPerThread() const { return registers_; }
  /// Blocks of this kernel one SM holds at once (the driver's occupancy).
  int residentBlocksPerSM() const { return residentBlocksPerSM_; }

private:
  const CudaDriver *driver_ = nullptr;
  CUmodule module_ = nullptr;
  CUfunction function_ = nullptr;
  std::string name_;
  unsigned threads_ = 0, sharedMemoryBytes_ = 0;
  int registers_ = 0, residentBlocksPerSM_ = 0;
};

} // namespace flashjit

#endif
