//===- AttentionCheck.h - run flashjit against the reference ----*- C++ -*-===//
//
// One verification used by the GPU tests, flash-run and the benchmarks:
// fresh random inputs, poisoned outputs (NaN) with a guard region, the kernel
// under test, the fp32 GPU reference, and an element-by-element comparison.
//
#ifndef FLASHJIT_TOOLS_CHECK_ATTENTIONCHECK_H
#define FLASHJIT_TOOLS_CHECK_ATTENTIONCHECK_H

#include "runtime/flashjit.h"
#include "templates/ReferenceAttention.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flashjit {

struct CheckCase {
  DType dtype = DType::BF16;
  int64_t batch = 1, seqQ = 128, seqK = 128, headsQ = 1, headsK = 1, headDimQK = 64,
          headDimV = 0;
  bool causal = false;
  bool withLse = true;
  bool headMajor = false; // [batch, heads, seq, dim] memory order via strides
  uint64_t seed = 1;
  std::optional<TileConfig> tile; // the runtime's default when empty
  std::string describe() const;
};

struct CheckResult {
  double relativeL2 = 0;     // ||o - ref|| / ||ref||
  double maxAbsError = 0;    // over O
  double maxLseError = 0;    // over LSE (natural log units)
  int64_t unwritten = 0;     // O elements still NaN (poison) after the run
  int64_t guardDamaged = 0;  // poisoned guard elements after O that changed
  std::string variant;
  std::string outputSha256;  // of O's bytes: equal results compare equal
  std::string kernelSource;  // "bundle", "memory", "disk", "compiled"
};

class AttentionChecker {
public:
  static Status create(Runtime &runtime, std::unique_ptr<AttentionChecker> &out);
  Status run(const CheckCase &c, CheckResult &result);

  /// The reference alone on the case's inputs, copied back (for checking the
  /// reference itself against a CPU computation).
  Status referenceOnly(const CheckCase &c, std::vector<float> &q, std::vector<float> &k,
                       std::vector<float> &v, std::vector<float> &o, std::vector<float> &lse);

private:
  struct Prepared;
  Status prepare(const CheckCase &c, Prepared &x);
  Runtime *runtime_ = nullptr;
  const CudaDriver *driver_ = nullptr;
  std::unique_ptr<ReferenceAttention> reference_;
};

} // namespace flashjit

#endif
