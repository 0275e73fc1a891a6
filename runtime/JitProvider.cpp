//===- JitProvider.cpp - the JIT and its caches as a kernel provider ------===//
// Linked into the full flashjit library only.
#include "runtime/KernelCache.h"
#include "runtime/KernelProvider.h"

namespace flashjit {

namespace {

class JitProvider : public KernelProvider {
public:
  JitProvider(const CudaDriver &driver, KernelCacheOptions options)
      : cache_(&driver, std::move(options)) {}
  Status find(const AttentionSpec &spec, bool, const std::string &, ProvidedKernel &out,
              bool &found, std::string &) override {
    found = false;
    if (Status s = cache_.get(spec, out.kernel, &out.source); !s)
      return s;
    out.tile = spec.tile;
    found = true;
    return Status::ok();
  }
  const std::string &diskProblem() const { return cache_.diskCacheProblem(); }

private:
  KernelCache cache_;
};

} // namespace

Status makeJitProvider(const CudaDriver &driver, const RuntimeOptions &options,
                       std::unique_ptr<KernelProvider> &out, std::string &why) {
  KernelCacheOptions cacheOptions = kernelCacheOptionsFromEnvironment();
  cacheOptions.cacheDir = options.cacheDir;
  cacheOptions.useDiskCache = options.useDiskCache;
  cacheOptions.disableJit = options.disableJit;
  cacheOptions.warn = options.warn;
  auto jit = std::make_unique<JitProvider>(driver, std::move(cacheOptions));
  why = jit->diskProblem();
  out = std::move(jit);
  return Status::ok();
}

} // namespace flashjit
