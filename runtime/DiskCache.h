//===- DiskCache.h - compiled kernels on disk, shared by processes -*- C++ -*-===//
//
// Layout (FlashInfer-style readable names):
//   <root>/<flashjit version>/<arch>/<variant>-<hash12>/{kernel.ptx, kernel.cubin, meta.json}
// Entries are written to a temporary directory and renamed into place; a
// per-entry lock file serialises producers (lock, check again, then compile),
// so N processes starting at once compile a variant once. Every load verifies
// the SHA-256 checksums in meta.json; a damaged entry is reported once and
// rebuilt. The root is created 0700; a root (or entry) owned by another user
// or writable by group/others is refused: a shared writable cache would let
// anyone inject code into every process that uses it.
//
#ifndef FLASHJIT_RUNTIME_DISKCACHE_H
#define FLASHJIT_RUNTIME_DISKCACHE_H

#include "runtime/Status.h"

#include <functional>
#include <memory>
#include <set>
#include <string>

namespace flashjit {

struct CacheKey {
  std::string variant;   // readable variant name (also the kernel symbol)
  std::string arch;      // sm_XX[a]
  std::string canonical; // canonical spec text
  std::string hash;      // SHA-256 hex over everything that changes the output

  /// `compilerIdentity` names the flashjit and LLVM versions and the code
  /// generation options; `environment` holds NAME=VALUE of each cache-relevant
  /// environment variable.
  static CacheKey make(const std::string &variant, const std::string &arch,
                       const std::string &canonical, const std::string &compilerIdentity,
                       const std::string &environment);
};

struct CachedKernel {
  std::string name;
  std::string ptx;
  std::string cubin; // may be empty (entry made without a GPU)
  int64_t threads = 0;
  int64_t sharedMemoryBytes = 0;
};

class DiskCache {
public:
  using WarningSink = std::function<void(const std::string &)>;

  /// Opens (creating 0700 where missing) the cache root: `root` if not empty,
  /// else $FLASHJIT_CACHE_DIR, $XDG_CACHE_HOME/flashjit, ~/.cache/flashjit.
  static Status open(const std::string &root, const std::string &version,
                     std::unique_ptr<DiskCache> &out, WarningSink warn = nullptr);
  static std::string defaultRoot();

  /// Looks `key` up. A damaged entry counts as a miss (and is warned about once).
  Status load(const CacheKey &key, CachedKernel &out, bool &hit);
  /// Writes the entry atomically (temporary directory + rename).
  Status store(const CacheKey &key, const CachedKernel &kernel);
  /// Load, else lock, load again, produce, store, unlock. `produced` tells
  /// whether this call ran `produce`.
  Status getOrProduce(const CacheKey &key, const std::function<Status(CachedKernel &)> &produce,
                      CachedKernel &out, bool &produced);

  const std::string &root() const { return root_; }
  std::string entryDir(const CacheKey &key) const;

private:
  DiskCache(std::string root, std::string versionDir, WarningSink warn)
      : root_(std::move(root)), versionDir_(std::move(versionDir)), warn_(std::move(warn)) {}
  Status loadEntry(const std::string &dir, const CacheKey &key, CachedKernel &out,
                   std::string &damage);
  void warnOnce(const std::string &dir, const std::string &message);

  std::string root_;
  std::string versionDir_;
  WarningSink warn_;
  std::set<std::string> warned_;
};

/// Checks that `path` is a directory owned by this user and not writable by
/// group or others; the message says how to fix it.
Status checkPrivateDirectory(const std::string &path);

} // namespace flashjit

#endif
