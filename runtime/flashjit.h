//===- flashjit.h - public C++ API ------------------------------*- C++ -*-===//
//
//   flashjit::Runtime *rt;
//   if (auto s = flashjit::Runtime::create(rt); !s) { puts(s.message().c_str()); ... }
//   flashjit::AttentionParams p;  // pointers, shapes, strides, dtype, mask, scale
//   ...
//   flashjit::Status s = rt->attention(p, stream);
//
#ifndef FLASHJIT_RUNTIME_FLASHJIT_H
#define FLASHJIT_RUNTIME_FLASHJIT_H

#include "compiler/AttentionSpec.h"
#include "runtime/Autotuner.h"
#include "runtime/Status.h"

#include <cuda.h>

extern "C" struct flashjit_embedded_bundle;

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace flashjit {

/// A block mask given at run time (FlexAttention's BlockMask): the score
/// matrix in blocks of blockQ queries x blockK keys; query block r of batch
/// b, query head h visits only the kvCounts[b][h][r] key blocks listed, in
/// ascending order, in kvIndices[b][h][r][0 ..]; every other block is
/// skipped (neither loaded nor computed). Elements of listed blocks still get
/// the causal / window / mask_mod masks. Arrays are device int32,
/// contiguous: kvCounts [batches, heads, ceil(seqQ / blockQ)], kvIndices
/// [batches, heads, ceil(seqQ / blockQ), ceil(seqK / blockK)], batches 1
/// (shared) or the batch, heads 1 or headsQ. The backward also needs the
/// transpose, qCounts [batches, heads, key blocks] and qIndices [batches,
/// heads, key blocks, query blocks] (query blocks listing key blocks and key
/// blocks listing query blocks must describe the same blocks). The kernel
/// tiles must divide the blocks (multiples of 128 suit every default tile).
/// Not with packed sequences.
struct BlockMask {
  const int32_t *kvCounts = nullptr, *kvIndices = nullptr;
  const int32_t *qCounts = nullptr, *qIndices = nullptr;
  int64_t blockQ = 128, blockK = 128;
  int64_t batches = 1, heads = 1;
  /// The runtime checks the lists (counts in range, indices ascending and in
  /// range, for the backward the transpose) with a copy to the host (one
  /// stream synchronization) unless this is set, when the caller vouches for
  /// them (wrong ones are then undefined).
  bool trusted = false;
  bool present() const { return kvCounts != nullptr || kvIndices != nullptr; }
  int64_t queryBlocks(int64_t seqQ) const { return (seqQ + blockQ - 1) / blockQ; }
  int64_t keyBlocks(int64_t seqK) const { return (seqK + blockK - 1) / blockK; }
};

/// Forward attention on tensors in [batch, seq, heads, head_dim] layout.
/// Strides are in elements for (batch, seq, head); the head dim is contiguous.
/// A stride left at 0 means the contiguous layout's stride.
struct AttentionParams {
  DType dtype = DType::BF16;
  const void *q = nullptr, *k = nullptr, *v = nullptr;
  void *o = nullptr;
  float *lse = nullptr; // optional [batch, heads_q, seq_q] fp32, natural log
  int64_t batch = 0, seqQ = 0, seqK = 0, headsQ = 0, headsK = 0;
  int64_t headDimQK = 0, headDimV = 0; // headDimV 0 = headDimQK
  int64_t qStride[3] = {0, 0, 0}, kStride[3] = {0, 0, 0}, vStride[3] = {0, 0, 0},
          oStride[3] = {0, 0, 0};
  bool causal = false;        // bottom-right aligned (FlashAttention-2)
  float softmaxScale = 0.0f;  // 0 = 1/sqrt(headDimQK)
  /// Sliding window, FlashAttention-2's window_size: query i sees keys j with
  /// i + seq_k - seq_q - windowLeft <= j <= i + seq_k - seq_q + windowRight;
  /// negative = unbounded on that side; causal forces windowRight = 0. Key
  /// blocks outside every row's window are skipped.
  int64_t windowLeft = -1, windowRight = -1;
  /// > 0: scores s = scale q·k become softcap · tanh(s / softcap) (Gemma 2).
  float softcap = 0.0f;
  /// ALiBi: the logit of query i, key j gains −slope · |i + seq_k − seq_q − j|;
  /// fp32 slopes [heads_q], or [batch, heads_q] with alibiBatchStride = heads_q
  /// (floats between batches; 0 = one set for every batch).
  const float *alibiSlopes = nullptr;
  int64_t alibiBatchStride = 0;
  /// User modifiers, C expressions compiled into the kernel (FlexAttention's
  /// score_mod / mask_mod; grammar in compiler/ModifierExpression.h and the
  /// README). scoreMod maps `score` (the logit: scale · q·k after softcap and
  /// ALiBi) and b, h, q_idx, kv_idx to a new logit, e.g. "score - 0.1 *
  /// abs(q_idx - kv_idx)"; maskMod keeps a key where it is true, e.g.
  /// "q_idx / 256 == kv_idx / 256", on top of causal / window. Null or empty:
  /// none. Each distinct expression is its own kernel variant (compiled once,
  /// then cached); the backward differentiates scoreMod itself.
  const char *scoreMod = nullptr;
  const char *maskMod = nullptr;
  /// Dropout on the attention probabilities (FlashAttention-2's dropout_p):
  /// each probability is dropped with probability dropoutP, quantized to
  /// 1/65536, and the kept ones are scaled by 1 / (1 − that quantized p), so
  /// O is unbiased; the LSE is that of the whole softmax. Which ones are
  /// dropped is a function of (dropoutSeed, dropoutOffset, batch, head,
  /// query, key) only (Philox-4x32-10, compiler/Dropout.cpp): the backward,
  /// given the same three, drops the same ones; a training step passes a new
  /// offset (or seed). 0 = off; 1 drops everything (O = 0).
  float dropoutP = 0.0f;
  uint64_t dropoutSeed = 0;
  uint32_t dropoutOffset = 0;
  /// Packed variable-length sequences (flash_attn_varlen_func): with the
  /// device int32 prefix sums cuSeqlensQ / cuSeqlensK ([batch + 1]), sequence
  /// b's queries are rows [cuSeqlensQ[b], cuSeqlensQ[b + 1]) of q and o, now
  /// [totalQ, heads_q, dim] (keys likewise in k and v, [totalK, heads_k,
  /// dim]); the strides' batch entries are unused, seqQ / seqK are the
  /// longest lengths and lse is [heads_q, totalQ]. Masks, window and ALiBi
  /// apply per sequence.
  const int32_t *cuSeqlensQ = nullptr, *cuSeqlensK = nullptr;
  int64_t totalQ = 0, totalK = 0;
  /// The prefix sums must start at >= 0, not decrease, end at most at the
  /// totals and give lengths up to seqQ / seqK. The runtime checks that with
  /// one small copy to the host (a stream synchronization) unless this is
  /// set, when the caller vouches for them (wrong ones are then undefined).
  bool seqlensTrusted = false;
  BlockMask blockMask; // none unless its lists are given
  /// GQA head packing (forward): the query heads of a key/value head's group
  /// share a tile's rows, so few queries (decoding) fill a tile per group
  /// instead of one per head and K/V are read once per group. Auto packs when
  /// that needs fewer tiles (seq_q < the tile's rows, group > 1); Always
  /// insists (an error where it cannot: ALiBi, user modifiers, dropout,
  /// varlen, a block mask, or a group larger than the tile's rows).
  enum class PackGQA { Auto, Never, Always };
  PackGQA packGQA = PackGQA::Auto;
  /// With a maskMod (and no blockMask), a small kernel first lists the key
  /// blocks the mask may keep for each query tile (Runtime::listMaskModBlocks)
  /// and the forward visits only those: empty blocks anywhere in a row are
  /// skipped (sink + window, dilated masks), not only at its ends. Off saves
  /// that launch where the kept blocks of every row are contiguous anyway.
  /// Not with varlen; lists over 256 MiB (per-batch / per-head masks at very
  /// long sequences) are not made. The backward skips empty blocks anywhere
  /// without lists.
  bool maskModBlockLists = true;
  std::optional<TileConfig> tile; // override the default tile configuration
  bool varlen() const { return cuSeqlensQ != nullptr || cuSeqlensK != nullptr; }
};

/// The mask variant of normalized params: None, Causal (a window of (-1, 0)
/// is causal) or Window.
Mask attentionMask(const AttentionParams &params);

/// Gradients of `attention` for training: dQ, dK and dV from the output
/// gradient dO, the forward's output O and its LSE. `forward` describes the
/// forward call exactly (shapes, strides, mask, scale; `o` its output and
/// `lse` its LSE, both required; its `tile` is ignored). dK and dV have the
/// key/value heads' shape: with GQA they sum the group's query heads.
/// dQ is summed one of two ways. Deterministic: the dQ kernel recomputes S
/// and dP (seven products a block pair) and the same inputs give
/// bit-identical gradients. Atomic (sm_90a, wgmma key-block tile): the
/// key-block kernel also forms each step's dQ over its keys and adds it to
/// an fp32 accumulator by bulk reductions (five products); dQ's last bits
/// vary from run to run. By default (`deterministic` false) the runtime
/// takes the atomic form where it was measured faster — sm_90a, the larger
/// head dim 64..128 (both multiples of 16), at least 512 queries and keys
/// (1024 causal), no mask but causal, no softcap, ALiBi, dropout, score_mod, mask_mod, block
/// mask or varlen, no backward tile given (H200 forward+backward: 1.00-1.13x
/// the deterministic form, bench/results/h200-backward-atomic-whole-step.md)
/// — else the deterministic one. The atomic form's fp32 accumulator (a
/// stream-ordered workspace, rows x heads_q x d_qk x 4 bytes) is twice dQ's
/// size. Workspaces come from a memory pool of the runtime that keeps what it
/// mapped (the largest workspace so far stays reserved while the runtime
/// lives), so calls between synchronizations do not map them again.
/// `deterministic` asks for bit-identical gradients;
/// `atomicQueryGradient` for the atomic form wherever it exists.
struct AttentionBackwardParams {
  AttentionParams forward;
  const void *dO = nullptr; // [batch, seq_q, heads_q, head_dim_v]
  void *dQ = nullptr;       // [batch, seq_q, heads_q, head_dim_qk]
  void *dK = nullptr;       // [batch, seq_k, heads_k, head_dim_qk]
  void *dV = nullptr;       // [batch, seq_k, heads_k, head_dim_v]
  int64_t dOStride[3] = {0, 0, 0}, dQStride[3] = {0, 0, 0}, dKStride[3] = {0, 0, 0},
          dVStride[3] = {0, 0, 0}; // 0 = contiguous
  /// Workspace for rowsum(dO∘O), [batch, heads_q, seq_q] fp32 ([heads_q,
  /// totalQ] when varlen); null = the
  /// runtime allocates it on the stream (from its workspace pool).
  float *delta = nullptr;
  /// Override the tiles of the dQ kernel and of the key-block kernel(s)
  /// (with atomicQueryGradient there is no dQ kernel: tileDQ must be empty).
  std::optional<TileConfig> tileDQ, tileDKV;
  bool deterministic = false;       // bit-identical gradients run to run
  bool atomicQueryGradient = false; // the atomic dQ (an error where there is none)
};

/// What the runtime read off the device it is bound to.
struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int ccMajor = 0, ccMinor = 0;
  std::string arch; // sm_80, sm_90a, ...
  int smCount = 0;
  int64_t maxSharedMemoryPerBlock = 0; // opt-in limit for dynamic shared memory
};

struct RuntimeOptions {
  std::string cacheDir;     // "" = $FLASHJIT_CACHE_DIR, $XDG_CACHE_HOME/flashjit, ~/.cache/flashjit
  bool useDiskCache = true;
  bool disableJit = false;  // also set by FLASHJIT_DISABLE_JIT=1
  bool autotune = false;    // tune untuned shapes on first use; also FLASHJIT_AUTOTUNE=1
  std::string bundlePath;   // pre-generated kernels (flash-gen --bundle); also FLASHJIT_BUNDLE
  const struct flashjit_embedded_bundle *embeddedBundle = nullptr; // flash-gen --emit-source
  std::function<void(const std::string &)> warn; // default: stderr
  /// Options from the environment (FLASHJIT_DISABLE_JIT, FLASHJIT_DUMP_DIR, ...).
  static RuntimeOptions fromEnvironment();
};

class Runtime {
public:
  /// Binds to the calling thread's current CUDA context, or to the primary
  /// context of device 0 when there is none.
  static Status create(std::unique_ptr<Runtime> &out,
                       const RuntimeOptions &options = RuntimeOptions::fromEnvironment());
  ~Runtime();

  /// Runs attention on `stream`. Compiles (and caches in memory) the variant
  /// on first use. Never aborts: a bad request returns an error.
  Status attention(const AttentionParams &params, CUstream stream);

  /// Runs the backward pass on `stream`: the dQ kernel, then the dK/dV
  /// kernel(s) (KernelKind). Same guarantees as `attention`.
  Status attentionBackward(const AttentionBackwardParams &params, CUstream stream);
  /// The kernels `attentionBackward` would run, in launch order.
  Status selectBackwardVariants(const AttentionBackwardParams &params,
                                std::vector<AttentionSpec> &specs) const;

  /// The variant `attention` would run for these parameters.
  Status selectVariant(const AttentionParams &params, AttentionSpec &spec) const;
  /// The key-block lists attention() derives for a forward with a maskMod:
  /// for each query block of mask.blockQ rows, the key blocks of mask.blockK
  /// keys (both multiples of 16) that params' causal / window bounds and
  /// maskMod may keep, decided per block by interval arithmetic over the
  /// expression (a block it cannot decide is listed). Written to kvCounts
  /// [batches, heads, query blocks] and kvIndices [batches, heads, query
  /// blocks, key blocks] (device int32, the caller's), mask.batches 1 or the
  /// batch and mask.heads 1 or heads_q as allocated (not 1 where maskMod
  /// reads b / h); then `mask` holds them, trusted, ready to be params'
  /// blockMask for forwards with the same maskMod and lengths (the forward
  /// only: no transpose), which saves attention() the listing launch.
  Status listMaskModBlocks(const AttentionParams &params, int32_t *kvCounts, int32_t *kvIndices,
                           BlockMask &mask, CUstream stream);

  const DeviceInfo &device() const;

  /// Where the kernel of this thread's last successful call came from:
  /// "bundle", "memory", "disk" or "compiled" (for tools that report it).
  const char *lastKernelSource() const;
  /// Why the disk cache is not in use ("" when it is), or that this is the
  /// runtime-only library, which has no JIT.
  const std::string &diskCacheProblem() const;

  /// Tunes the tile configuration for `problem` on this GPU (timing every
  /// configuration that fits), records the best in the tuning database and
  /// saves it. `progress` sees each configuration as it is timed.
  Status tune(const TuningProblem &problem, TuningResult &result,
              const TuningProgress &progress = nullptr);
  TuningDatabase &tuningDatabase();
  /// <cache>/tune/<arch>.json
  const std::string &tuningDatabasePath() const;
  Status saveTuningDatabase();
  DeviceLimits deviceLimits() const;

  struct Impl;

private:
  explicit Runtime(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Fills defaults (strides, headDimV, scale) and checks every field; the
/// message names the offending field. Needs no GPU (the varlen prefix sums,
/// which live on the device, are checked at launch unless seqlensTrusted).
Status normalizeAndValidate(AttentionParams &params);
Status normalizeAndValidate(AttentionBackwardParams &params);

} // namespace flashjit

#endif
