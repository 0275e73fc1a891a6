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
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace flashjit {

struct CheckCase {
  DType dtype = DType::BF16;
  int64_t batch = 1, seqQ = 128, seqK = 128, headsQ = 1, headsK = 1, headDimQK = 64,
          headDimV = 0;
  bool causal = false;
  /// Q and K drawn from [-a, a) (V from [-1, 1)): large a gives scores whose
  /// row max moves by more than 2^8 between key blocks, and rows of a few keys.
  float queryKeyAmplitude = 1.0f;
  int64_t windowLeft = -1, windowRight = -1; // sliding window (negative: unbounded)
  float softcap = 0.0f;
  bool alibi = false;         // ALiBi with alibiSlopes(*this)
  bool alibiPerBatch = false; // slopes [batch, heads_q] instead of [heads_q]
  /// User modifier expressions (AttentionParams::scoreMod / maskMod); the
  /// reference compiles the same text as C++.
  std::string scoreMod, maskMod;
  bool maskModBlockLists = true; // AttentionParams::maskModBlockLists
  /// Dropout (AttentionParams::dropoutP, dropoutSeed, dropoutOffset).
  float dropoutP = 0.0f;
  uint64_t dropoutSeed = 0;
  uint32_t dropoutOffset = 0;
  /// A random block mask (AttentionParams::blockMask) when blockMaskKeep >
  /// 0: each blockMaskQ x blockMaskK block visited with that probability
  /// (so some rows visit none), one mask per batch / query head when asked,
  /// else shared. The kernels get the lists (unused entries poisoned), the
  /// reference the dense form.
  double blockMaskKeep = 0;
  int64_t blockMaskQ = 128, blockMaskK = 128;
  bool blockMaskPerBatch = false, blockMaskPerHead = false;
  /// AttentionParams::packGQA: Auto unless set (true = Always, false = Never).
  std::optional<bool> packGQA;
  bool withLse = true;
  bool headMajor = false; // [batch, heads, seq, dim] memory order via strides
  /// O and the gradients start 4 bytes past a 16-byte boundary, the least
  /// alignment their contract allows (the kernels' narrow paths).
  bool outputsOffset4 = false;
  /// Packed variable-length sequences when non-empty (set with setSeqlens):
  /// the tensors are [total, heads, dim] (head-major: [heads, total, dim]).
  std::vector<int64_t> seqlensQ, seqlensK;
  bool varlen() const { return !seqlensQ.empty(); }
  /// Makes the case varlen: batch = the number of sequences, seqQ / seqK the longest.
  void setSeqlens(std::vector<int64_t> q, std::vector<int64_t> k);
  uint64_t seed = 1;
  std::optional<TileConfig> tile; // the runtime's default when empty
  std::optional<TileConfig> tileDQ, tileDKV; // backward tiles (defaults when empty)
  bool atomicQueryGradient = false; // AttentionBackwardParams::atomicQueryGradient
  /// Leave the dQ form to the runtime (AttentionBackwardParams' defaults);
  /// else a case runs the atomic form when it asks for it and the
  /// deterministic one otherwise.
  bool defaultQueryGradient = false;
  std::string describe() const;
};

/// The ALiBi slopes of a case, [batch, heads_q] (equal rows unless
/// alibiPerBatch): the usual geometric 2^(-8 (h + 1) / heads_q), scaled per batch.
std::vector<float> alibiSlopes(const CheckCase &c);

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

struct BackwardCheckResult {
  double relativeL2[3] = {0, 0, 0}; // dQ, dK, dV: ||g - ref|| / ||ref||
  double maxAbsError[3] = {0, 0, 0};
  int64_t unwritten = 0;            // gradient elements still NaN (poison)
  int64_t guardDamaged = 0;         // poisoned guard elements after dQ, dK, dV that changed
  std::string variants;             // the backward kernels, in launch order
  std::string gradientsSha256;      // of dQ, dK and dV's bytes
};

class AttentionChecker {
public:
  static Status create(Runtime &runtime, std::unique_ptr<AttentionChecker> &out);
  Status run(const CheckCase &c, CheckResult &result);
  /// The backward: flashjit's forward (for O and LSE, as in training), a
  /// random dO, flashjit's backward into poisoned gradients, and the fp32
  /// reference gradients (from the reference forward).
  Status runBackward(const CheckCase &c, BackwardCheckResult &result);
  /// The reference gradients alone on the case's inputs (row-major fp32,
  /// contiguous), with the inputs widened, for checking the reference.
  Status referenceBackwardOnly(const CheckCase &c, std::vector<float> &q, std::vector<float> &k,
                               std::vector<float> &v, std::vector<float> &dO,
                               std::vector<float> &dq, std::vector<float> &dk,
                               std::vector<float> &dv);

  /// Philox-4x32-10 on the GPU as the reference draws it: 4 words out per
  /// 6 in (key0, key1, counter 0..3), for the known-answer test.
  Status referencePhilox(const std::vector<uint32_t> &in, std::vector<uint32_t> &out);

  /// The reference alone on the case's inputs, copied back (for checking the
  /// reference itself against a CPU computation).
  Status referenceOnly(const CheckCase &c, std::vector<float> &q, std::vector<float> &k,
                       std::vector<float> &v, std::vector<float> &o, std::vector<float> &lse);

private:
  struct Prepared;
  struct PreparedBackward;
  Status prepare(const CheckCase &c, Prepared &x);
  Status prepareBackward(const CheckCase &c, const Prepared &x, PreparedBackward &y);
  /// The reference with the case's user modifiers compiled in (built once per pair).
  Status referenceFor(const CheckCase &c, const ReferenceAttention *&out);
  Runtime *runtime_ = nullptr;
  const CudaDriver *driver_ = nullptr;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<ReferenceAttention>> references_;
};

} // namespace flashjit

#endif
