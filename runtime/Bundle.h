//===- Bundle.h - pre-generated kernels: manifest, files, selection -*- C++ -*-===//
//
// A bundle is what flash-gen writes for deployments that must not compile:
//   <dir>/manifest.json, <dir>/<arch>/<variant>.ptx and .cubin
// or the same content embedded in a program (flash-gen --emit-source). The
// manifest lists each variant's spec, arch, kernel name, launch configuration,
// shared memory and SHA-256 checksums; loading verifies every checksum.
// Plain C++: part of the runtime-only library.
//
#ifndef FLASHJIT_RUNTIME_BUNDLE_H
#define FLASHJIT_RUNTIME_BUNDLE_H

#include "compiler/AttentionSpec.h"
#include "runtime/Json.h"
#include "runtime/flashjit_c.h"
#include "runtime/Status.h"

#include <map>
#include <optional>
#include <string>
#include <vector>


namespace flashjit {

struct BundleVariant {
  AttentionSpec spec; // tile and arch included
  std::string kernel; // symbol name
  int64_t threads = 0;
  int64_t sharedMemoryBytes = 0;
  std::string ptxPath, cubinPath; // relative to the bundle; cubin may be empty
  std::string ptxSha256, cubinSha256;
};

/// A tile as JSON: [m, n, warps, stages(, qk_wgmma(, pv_wgmma(, warp_specialized(,
/// persistent))))], switches as 0/1.
json::Value tileJson(const TileConfig &t);
bool tileFrom(const json::Value *v, TileConfig &t);

class Bundle {
public:
  static Status loadDirectory(const std::string &dir, Bundle &out);
  static Status loadEmbedded(const flashjit_embedded_bundle &embedded, Bundle &out);

  const std::vector<BundleVariant> &variants() const { return variants_; }
  const std::string &origin() const { return origin_; }
  const std::string &flashjitVersion() const { return version_; }
  /// Tuned tiles shipped with the bundle: tuning key -> tile, per arch.
  std::optional<TileConfig> tunedTile(const std::string &arch, const std::string &key) const;

  /// The variant for `spec`: the exact one when `exactTile`, else the best
  /// match of everything but the tile (the bundle's tuned tile for `tuningKey`
  /// first, then `spec`'s tile, then the first). Returns nullptr when none fits;
  /// `missing` then names the request and the closest variants the bundle has.
  const BundleVariant *select(const AttentionSpec &spec, bool exactTile,
                              const std::string &tuningKey, std::string &missing) const;

  /// The kernel image (cubin when present and `preferCubin`, else PTX), checksum-verified.
  Status image(const BundleVariant &v, bool preferCubin, std::string &bytes) const;

  /// The manifest text for `variants` (used by flash-gen; kept here so reader and
  /// writer share one definition of the format).
  static json::Value manifest(const std::vector<BundleVariant> &variants,
                              const json::Value &tuning);

private:
  Status parse(const std::string &manifestText);
  Status readFile(const std::string &path, std::string &bytes) const;

  std::string origin_, version_, dir_;
  std::vector<BundleVariant> variants_;
  std::map<std::string, std::map<std::string, TileConfig>> tuning_; // arch -> key -> tile
  const flashjit_embedded_bundle *embedded_ = nullptr;
};

} // namespace flashjit

#endif
