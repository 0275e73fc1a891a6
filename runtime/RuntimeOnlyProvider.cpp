//===- RuntimeOnlyProvider.cpp - no JIT in the runtime-only library -------===//
#include "runtime/KernelProvider.h"

namespace flashjit {

Status makeJitProvider(const CudaDriver &, const RuntimeOptions &,
                       std::unique_ptr<KernelProvider> &out, std::string &why) {
  out.reset();
  why = "this is the runtime-only library (flashjit_runtime), which cannot compile kernels";
  return Status::ok();
}

} // namespace flashjit
