//===- BundleWriter.h - write bundles and embedded sources ------*- C++ -*-===//
#ifndef FLASHJIT_TOOLS_FLASHGEN_BUNDLEWRITER_H
#define FLASHJIT_TOOLS_FLASHGEN_BUNDLEWRITER_H

#include "runtime/Bundle.h"

#include <functional>
#include <string>
#include <vector>

namespace flashjit {

struct BundleRequest {
  std::vector<AttentionSpec> specs;
  json::Value tuning;   // arch -> {tuning key -> [m, n, warps, stages]}, shipped as is
  std::string ptxas;    // assemble cubins with this ptxas; "" = PTX only
  unsigned jobs = 1;    // compile this many variants at once
  std::function<void(size_t done, size_t total, const std::string &variant, double ms,
                     const std::string &error)>
      progress;
};

/// Compiles every spec (in parallel), writes <dir>/<arch>/<variant>.ptx (and
/// .cubin) and <dir>/manifest.json. Fails, naming each variant that failed.
Status writeBundle(const std::string &dir, const BundleRequest &request,
                   std::vector<BundleVariant> &written);

/// Writes <outDir>/<name>.h and <name>.c embedding the bundle in `bundleDir`
/// (manifest and files as byte arrays); `<name>()` returns it for
/// flashjit_runtime_create_from_embedded.
Status writeEmbeddedSource(const std::string &bundleDir, const std::string &outDir,
                           const std::string &name);

/// Reads a tuning database (flash-tune --export) into the manifest's tuning
/// form and adds the tuned tiles' variants for the requested problems.
Status addTunedVariants(const std::string &databasePath, BundleRequest &request);

} // namespace flashjit

#endif
