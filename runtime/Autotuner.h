//===- Autotuner.h - configuration space, selection, tuning database -*- C++ -*-===//
//
// The selection logic is independent of the GPU: a ConfigTimer says how long a
// configuration takes (the runtime's times real launches with CUDA events;
// tests use a fake). Configurations that fail to compile or launch time as
// +inf and carry a note; they are never chosen.
//
#ifndef FLASHJIT_RUNTIME_AUTOTUNER_H
#define FLASHJIT_RUNTIME_AUTOTUNER_H

#include "compiler/AttentionSpec.h"
#include "runtime/Json.h"
#include "runtime/Status.h"

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace flashjit {

struct TuningProblem {
  KernelKind kind = KernelKind::Forward; // a backward kind tunes that kernel of the backward
  DType dtype = DType::BF16;
  int64_t headDimQK = 128, headDimV = 128;
  bool causal = false, withLse = false;
  int64_t batch = 1, seqQ = 1, seqK = 1, headsQ = 1, headsK = 1;
  // Score modifiers (AttentionParams' meaning; -1 = unbounded window side):
  // their variants do more work per block, or (window) fewer blocks.
  int64_t windowLeft = -1, windowRight = -1;
  bool softcap = false, alibi = false;
  std::string scoreMod, maskMod; // user modifiers, canonical text (AttentionSpec's)
  bool dropout = false;          // dropout on P (the variant's; p itself does not matter)
  bool hasModifiers() const {
    return windowLeft >= 0 || windowRight >= 0 || softcap || alibi || !scoreMod.empty() ||
           !maskMod.empty() || dropout;
  }
  /// Sets a window as the runtime classifies it (with `causal` its right
  /// side is 0; (-1, 0) is plain causal, (-1, -1) no window).
  void setWindow(int64_t left, int64_t right);
  /// The same shape without score modifiers (a window counts as causal):
  /// whose tuned tile a modifier problem falls back to.
  TuningProblem withoutModifiers() const;
  std::string describe() const;
  /// 4*b*h*sq*sk*d (2*...*(d_qk+d_v)), about half when causal; a backward
  /// kind counts the whole backward pass (2.5x), which is what it times.
  double flops() const;
};

/// Problems that share a key share a tuned configuration: dtype, head dims,
/// mask, LSE and the sequence lengths rounded up to powers of two; then the
/// score modifiers (window sides rounded up likewise), when there are any.
std::string tuningKey(const TuningProblem &p);

struct DeviceLimits {
  int64_t maxSharedMemoryPerBlock = 0;
  int64_t maxRegistersPerBlock = 0;
  int64_t maxThreadsPerBlock = 0;
  std::string arch; // sm_90a adds the wgmma configurations
};

/// Tile configurations the target can hold: for the forward the sm80 tier's
/// and (sm_90a) the Hopper switches; for a backward kind that kernel's tiles.
std::vector<TileConfig> configurationSpace(const TuningProblem &p, const DeviceLimits &limits);

class ConfigTimer {
public:
  virtual ~ConfigTimer() = default;
  /// Milliseconds per call, or +inf with `note` saying why it failed.
  virtual double timeMs(const TileConfig &tile, std::string &note) = 0;
};

struct TimedConfig {
  TileConfig tile;
  double ms;
  std::string note;
};

struct TuningResult {
  TileConfig best;
  double bestMs = 0;
  std::vector<TimedConfig> all;
};

using TuningProgress = std::function<void(size_t done, size_t total, const TimedConfig &)>;

/// Times every configuration and picks the fastest; fails when none ran.
Status tune(const std::vector<TileConfig> &space, ConfigTimer &timer, TuningResult &result,
            const TuningProgress &progress = nullptr);

struct DeviceIdentity {
  std::string gpuName, arch, driverVersion, flashjitVersion;
};

/// <cache>/tune/<arch>.json: the best configuration per tuning key, for one GPU
/// and flashjit version. Entries recorded for another GPU or version are not
/// trusted (dropped on load, with a note).
class TuningDatabase {
public:
  explicit TuningDatabase(DeviceIdentity identity) : identity_(std::move(identity)) {}

  /// Loads `path` if it exists; `notes` receives what was dropped and why.
  Status load(const std::string &path, std::vector<std::string> &notes);
  Status save(const std::string &path) const;
  /// Merges entries of another database file (export/import between machines).
  Status import(const std::string &path, std::vector<std::string> &notes);

  std::optional<TileConfig> lookup(const std::string &key) const;
  void record(const std::string &key, const TileConfig &tile, double ms);
  size_t size() const { return entries_.size(); }
  const DeviceIdentity &identity() const { return identity_; }

private:
  struct Entry {
    TileConfig tile;
    double ms;
  };
  Status merge(const json::Value &doc, const std::string &origin, std::vector<std::string> &notes);
  DeviceIdentity identity_;
  std::map<std::string, Entry> entries_;
};


} // namespace flashjit

#endif
