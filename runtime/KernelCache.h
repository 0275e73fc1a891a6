//===- KernelCache.h - memory cache over disk cache over the JIT -*- C++ -*-===//
//
// get(spec): an in-memory hit costs a map lookup; a miss loads the disk entry
// (or, if there is none, compiles it once across threads and processes) and
// keeps the loaded kernel. FLASHJIT_DISABLE_JIT turns a miss into an error
// that names the variant.
//
#ifndef FLASHJIT_RUNTIME_KERNELCACHE_H
#define FLASHJIT_RUNTIME_KERNELCACHE_H

#include "compiler/AttentionSpec.h"
#include "compiler/Compiler.h"
#include "runtime/DiskCache.h"
#include "runtime/LoadedKernel.h"

#include <map>
#include <memory>
#include <mutex>

namespace flashjit {

struct KernelCacheOptions {
  std::string cacheDir;    // "" = default location
  bool useDiskCache = true;
  bool disableJit = false; // a miss is an error (production mode)
  CompileOptions compile;
  DiskCache::WarningSink warn;
};

/// The environment variables that change generated code; their values are
/// part of every cache key.
const std::vector<std::string> &cacheRelevantEnvironment();
/// Reads FLASHJIT_CACHE_DIR (via DiskCache), FLASHJIT_DISABLE_JIT,
/// FLASHJIT_DUMP_DIR and FLASHJIT_OPT_LEVEL.
KernelCacheOptions kernelCacheOptionsFromEnvironment();

class KernelCache {
public:
  /// `driver` may be null (no GPU): then resolve() works, get() does not, and
  /// entries carry PTX only.
  KernelCache(const CudaDriver *driver, KernelCacheOptions options);

  /// The loaded kernel for `spec`; `event` (optional) says where it came from:
  /// "memory", "disk" or "compiled".
  Status get(const AttentionSpec &spec, const LoadedKernel *&kernel, const char **event = nullptr);
  /// The compiled kernel for `spec` from the disk cache, or compiled (and
  /// stored) now; `compiled` tells which. Needs no GPU.
  Status resolve(const AttentionSpec &spec, CachedKernel &out, bool &compiled);
  CacheKey keyFor(const AttentionSpec &spec) const;
  /// Why the disk cache is off ("" when it is on).
  const std::string &diskCacheProblem() const { return diskProblem_; }

private:
  struct Slot {
    std::mutex mutex;
    std::unique_ptr<LoadedKernel> kernel;
  };
  Status produce(const AttentionSpec &spec, CachedKernel &out);

  const CudaDriver *driver_;
  KernelCacheOptions options_;
  std::string identity_, environment_;
  std::string ptxas_; // assembles the cubins; "" = the driver compiles the PTX
  std::unique_ptr<DiskCache> disk_;
  std::string diskProblem_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Slot>> slots_;
};

} // namespace flashjit

#endif
