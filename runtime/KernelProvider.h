//===- KernelProvider.h - where a runtime gets its kernels ------*- C++ -*-===//
//
// A runtime asks its providers in order: the bundle (pre-generated kernels)
// first, then, in the full library only, the JIT with its caches. The
// runtime-only library links no JIT provider, and so no LLVM or MLIR.
//
#ifndef FLASHJIT_RUNTIME_KERNELPROVIDER_H
#define FLASHJIT_RUNTIME_KERNELPROVIDER_H

#include "runtime/Bundle.h"
#include "runtime/LoadedKernel.h"
#include "runtime/flashjit.h"

#include <map>
#include <memory>
#include <mutex>

namespace flashjit {

struct ProvidedKernel {
  const LoadedKernel *kernel = nullptr;
  TileConfig tile;            // the tile of the kernel found (sets the grid)
  const char *source = "";    // "bundle", "memory", "disk", "compiled"
};

class KernelProvider {
public:
  virtual ~KernelProvider() = default;
  /// Finds a kernel for `spec` (any tile unless `exactTile`). `found` false
  /// with `missing` saying why when this provider has none; an error Status
  /// only when something is broken.
  virtual Status find(const AttentionSpec &spec, bool exactTile, const std::string &tuningKey,
                      ProvidedKernel &out, bool &found, std::string &missing) = 0;
};

class BundleProvider : public KernelProvider {
public:
  BundleProvider(const CudaDriver &driver, Bundle bundle)
      : driver_(driver), bundle_(std::move(bundle)) {}
  Status find(const AttentionSpec &spec, bool exactTile, const std::string &tuningKey,
              ProvidedKernel &out, bool &found, std::string &missing) override;
  const Bundle &bundle() const { return bundle_; }

private:
  const CudaDriver &driver_;
  Bundle bundle_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<LoadedKernel>> loaded_;
};

/// The JIT provider of the full library; in the runtime-only library this
/// returns no provider and says so in `why`.
Status makeJitProvider(const CudaDriver &driver, const RuntimeOptions &options,
                       std::unique_ptr<KernelProvider> &out, std::string &why);

} // namespace flashjit

#endif
