//===- KernelABI.h - parameters of the generated attention kernels ---*- C++ -*-===//
//
// The contract between the code generator (which declares the gpu.func
// parameters in this order) and the runtime (which packs them for
// cuLaunchKernel). Plain C++: the runtime-only library includes it without
// LLVM or MLIR.
//
#ifndef FLASHJIT_COMPILER_KERNELABI_H
#define FLASHJIT_COMPILER_KERNELABI_H

#include <cstdint>

namespace flashjit::abi {

// Bumped whenever a kernel's parameter list, or what the runtime leaves to a
// kernel, changes: part of the disk cache's compiler identity and checked in
// bundle manifests, so no kernel compiled for another contract is ever
// launched with this one.
// (8: BackwardDelta zeroes dQAccum, which the runtime no longer does.)
constexpr int kVersion = 8;

// The run-time values of the score modifiers, the last parameters of every
// kernel (forward and backward); variants without a modifier ignore its value.
// Window bounds: keys a query sees left / right of its diagonal, clamped by
// the runtime to seq_k / seq_q (which mean unbounded), so no sum overflows.
// The softmax's scaleLog2 is softcap · log2(e) for softcap variants, which
// take tanh(s · softcapInputScale), softcapInputScale = scale / softcap.
struct ScoreModifierParams {
  int32_t windowLeft = 0, windowRight = 0;
  float softcapInputScale = 0.0f;
  const float *alibiSlopes = nullptr; // [batch or 1, heads_q] fp32
  int64_t alibiBatchStride = 0;       // floats between batches' slopes; 0 = shared
};
enum ScoreModifierParam : int {
  kWindowLeftParam = 0, kWindowRightParam, kSoftcapInputScaleParam, kAlibiSlopesParam,
  kAlibiBatchStrideParam, kNumScoreModifierParams
};

// Packed variable-length sequences, the parameters after the score
// modifiers (ignored by other variants): batch b owns rows [cuSeqlensQ[b],
// cuSeqlensQ[b + 1]) of q and o, and likewise on the key side; the kernels'
// seqQ / seqK are then the longest lengths (which size the grid), the batch
// strides are unused and lse / delta are [heads_q, totalQ].
struct VarlenParams {
  const int32_t *cuSeqlensQ = nullptr, *cuSeqlensK = nullptr; // [batch + 1], device
  int32_t totalQ = 0;
};
enum VarlenParam : int { kCuSeqlensQParam = 0, kCuSeqlensKParam, kTotalQParam, kNumVarlenParams };

// Dropout on the probabilities that multiply V (after the softmax's sum),
// the last parameters (ignored by other variants). Element (b, h, i, j)'s 16
// random bits come from Philox-4x32-10 with key `seed` and a counter of the
// element's position (compiler/Dropout.cpp); it is dropped when they are
// below `threshold` (round(p · 65536)), and the kept ones are scaled by
// keepScale = 65536 / (65536 − threshold), which makes E[kept · scale] = 1.
struct DropoutParams {
  uint64_t seed = 0;
  uint32_t offset = 0, threshold = 0;
  float keepScale = 1.0f;
};
enum DropoutParam : int {
  kDropoutSeedParam = 0, kDropoutOffsetParam, kDropoutThresholdParam, kDropoutKeepScaleParam,
  kNumDropoutParams
};

// A user-given block mask (FlexAttention's BlockMask), the last parameters
// (ignored by other variants). The score matrix is cut into blockQ x blockK
// blocks; query block r (of batch b, query head h) visits only the
// kvCounts[row] key blocks kvIndices[row * keyBlocks + 0 ..] (ascending),
// row = ((b % batches) * heads + h % heads) * queryBlocks + r. The key-block
// kernels of the backward read the transpose: key block c visits the
// qCounts[row'] query blocks qIndices[row' * queryBlocks + 0 ..], row' =
// ((b % batches) * heads + h % heads) * keyBlocks + c. batches is 1 or the
// batch, heads 1 or heads_q; the tiles divide the blocks (m | blockQ,
// n | blockK), so a tile's rows lie in one block row.
struct BlockMaskParams {
  const int32_t *kvCounts = nullptr, *kvIndices = nullptr; // query-block rows
  const int32_t *qCounts = nullptr, *qIndices = nullptr;   // key-block rows (backward)
  int32_t blockQ = 0, blockK = 0, queryBlocks = 0, keyBlocks = 0, batches = 1, heads = 1;
};
enum BlockMaskParam : int {
  kKvCountsParam = 0, kKvIndicesParam, kQCountsParam, kQIndicesParam, kBlockQParam, kBlockKParam,
  kQueryBlocksParam, kKeyBlocksParam, kMaskBatchesParam, kMaskHeadsParam, kNumBlockMaskParams
};

// Strides are in elements, for [batch, seq, head]; the head dim is contiguous.
struct AttentionKernelParams {
  const void *q, *k, *v;
  void *o;
  float *lse; // [batch, heads_q, seq_q], may be null when the variant has no LSE
  int64_t qStride[3], kStride[3], vStride[3], oStride[3];
  int32_t seqQ, seqK, headsQ, groupSize; // groupSize = heads_q / heads_k
  float scaleLog2;                         // softmax scale * log2(e)
  int32_t batch;
  ScoreModifierParams modifiers;
  VarlenParams varlen;
  DropoutParams dropout;
  BlockMaskParams blockMask;
  // Persistent causal warp-specialized kernels: a zeroed counter the blocks
  // take their tiles from after their first (blockIdx.x); null for others.
  int32_t *tileCounter;
};

enum ParamIndex : int {
  kQ = 0, kK, kV, kO, kLse,
  kQStride0, kKStride0 = kQStride0 + 3, kVStride0 = kKStride0 + 3, kOStride0 = kVStride0 + 3,
  kSeqQ = kOStride0 + 3, kSeqK, kHeadsQ, kGroupSize, kScaleLog2, kBatch,
  kScoreModifiers0, // ScoreModifierParam order
  kVarlen0 = kScoreModifiers0 + kNumScoreModifierParams, // VarlenParam order
  kDropout0 = kVarlen0 + kNumVarlenParams,                // DropoutParam order
  kBlockMask0 = kDropout0 + kNumDropoutParams,            // BlockMaskParam order
  kNumParams = kBlockMask0 + kNumBlockMaskParams,
  // Warp-specialized (TMA) kernels only: the Q, K and V tensor maps, passed
  // by value as __grid_constant__ parameters (128 bytes, 64-byte aligned),
  // and O's (for TMA stores; unused, all zero, without the tma_store switch).
  kTensorMapQ = kNumParams, kTensorMapK, kTensorMapV, kTensorMapO,
  kTileCounter, // AttentionKernelParams::tileCounter
  kNumParamsWarpSpecialized
};

constexpr int kNumTensorMaps = kTileCounter - kTensorMapQ;
// O's box: one consumer warpgroup's rows, each stores its own.
constexpr int64_t kTensorMapOutputRows = 64;

// The register split of a warp-specialized block (setmaxnreg): the producer
// warpgroup keeps a few registers a thread for addresses, the consumer warps
// take the rest of the block's share of the SM's 64K: one block an SM with
// two consumer warpgroups (128 x 24 + 256 x 240), two with one (each
// 128 x 24 + 128 x 232 = 32K) up to head dim 128, one with three (128 x 24 +
// 384 x 160: small head dims, where softmax takes as long as the GEMMs). (ptxas allocates the
// consumers' code up to their setmaxnreg count, but rejects any single
// instruction that needs more registers than the entry share, 128 a thread
// at two blocks: a 64 x 256 wgmma accumulator does, so wider heads keep one
// block an SM.) setmaxnreg.inc only takes what the block's other warps gave
// back: the split never exceeds the registers the block starts with
// (blockStartRegisters; a consumer would wait forever).
// The persistent key-block kernels' producer roles keep a tile's
// coordinates beside their loops: 32 registers there where two blocks share
// an SM (with 24 they spilled 20-50 bytes), the consumers 8 fewer; with two
// consumer warpgroups these keep 240 (at 232 ptxas serializes the d 128
// atomic kernel's wgmma, 7-9% slower on an H200), the producer 24 (it
// spills 8-12 bytes there, off the consumers' path).
struct WarpSpecializedRegisters {
  int64_t producer, consumer, blocksPerSM;
};
inline WarpSpecializedRegisters warpSpecializedRegisters(int64_t consumerWarps, int64_t headDim,
                                                         bool walksKeyBlocks = false) {
  if (consumerWarps == 4 && headDim <= 128) // 2 x 256 threads x 128 at the start
    return walksKeyBlocks ? WarpSpecializedRegisters{32, 224, 2}
                          : WarpSpecializedRegisters{24, 232, 2};
  if (consumerWarps == 12) // 128 x 24 + 384 x 160 of the 64K
    return {24, 160, 1};
  if (consumerWarps == 8) // 384 threads x 168 at the start
    return {24, 240, 1};
  return {walksKeyBlocks ? 40 : 24, 240, 1};
}

// The registers a thread of a block of `threads` starts with where
// `blocksPerSM` share the SM's 64K (ptxas: a multiple of 8, at most 255).
inline int64_t blockStartRegisters(int64_t threads, int64_t blocksPerSM) {
  const int64_t perThread = 65536 / (threads * blocksPerSM) / 8 * 8;
  return perThread < 255 ? perThread : 255;
}

// A CUtensorMap as the kernel receives it (opaque; built by cuTensorMapEncodeTiled).
struct alignas(64) TensorMap {
  uint64_t opaque[16];
};

// The tensor maps describe Q, K and V as 4-D [dim, seq, heads, batch]
// tensors (varlen: [dim, total, heads, 1], rows offset by cu_seqlens) (innermost first) read in boxes of 64 head-dim columns (128 bytes,
// 128-byte swizzled) by (tile m or n) rows; rows past the sequence and
// columns past the head dim arrive as zeros.
constexpr int64_t kTensorMapBoxColumns = 64;

// Grid: x = query blocks (heaviest first for causal masks), y = query heads, z = batch;
// causal blocks take their tiles in CausalTileOrder.cpp's order.
// Warp-specialized kernels: grid x = the (query block, head, batch) tiles, or
// with the persistent switch min(tiles, blocks the SMs hold at once); each
// block then walks the tiles x, x + gridDim.x, ..., or (causal) takes each
// next one from the tile counter (AttentionKernelParams::tileCounter).
// Block: TileConfig::threads(). Dynamic shared memory: SharedMemoryLayout::totalBytes.
inline int64_t persistentGridSize(int64_t tiles, int64_t residentBlocks) {
  return tiles < residentBlocks ? tiles : residentBlocks;
}

// Persistent key-block kernels of the backward: grid x =
// persistentGridSize(units, ...) with units = keyBlockUnitsPerHead x heads_k
// x batch; a unit is one key block, or with a causal mask the pair j,
// key blocks - 1 - j of a head (the kernel: BackwardGenerator::eachKeyTile).
inline int64_t keyBlockUnitsPerHead(int64_t keyBlocks, bool causal) {
  return causal ? (keyBlocks + 1) / 2 : keyBlocks;
}

// GQA-packed forward tiles (AttentionSpec::packGQA) hold whole queries of
// every head of a group: this many a tile of m rows (0: the group does not
// fit); the grid's x walks ceil(seq_q / that) blocks, its y the key/value
// heads. The generator's tileRows() is group times this.
inline int64_t packedTileQueries(int64_t m, int64_t group) { return m / group; }
// Whether packing a GQA group into tiles of m rows needs fewer tiles than one
// head a tile (the runtime's Auto choice, where nothing else rules it out).
inline bool packingSavesTiles(int64_t m, int64_t seqQ, int64_t headsQ, int64_t headsK) {
  const int64_t queries = packedTileQueries(m, headsQ / headsK);
  return headsQ > headsK && queries > 0 &&
         (seqQ + queries - 1) / queries * headsK < (seqQ + m - 1) / m * headsQ;
}

// The backward kernels (every KernelKind but Forward) share one parameter
// list; each reads or writes the tensors its kind needs. `delta` ([batch,
// heads_q, seq_q] fp32) is rowsum(dO∘O): written by BackwardDQ or
// BackwardDelta, read by the key-block kernels launched after it. lse is the
// forward's (natural log). dQAccum (fp32, dQ's shape, zeroed by BackwardDelta)
// receives the bulk-reduction adds of BackwardDKVQ / BackwardDKQ, each row
// rotated by 8 · (row / 2 % 4) columns (gradQueryColumn), which
// BackwardConvertDQ undoes as it scales the rows into dQ.
struct BackwardKernelParams {
  const void *q, *k, *v, *o, *dO;
  const float *lse;
  float *delta;
  void *dQ, *dK, *dV;
  float *dQAccum;
  int64_t qStride[3], kStride[3], vStride[3], oStride[3], dOStride[3], dQStride[3],
      dKStride[3], dVStride[3], dQAccumStride[3];
  int32_t seqQ, seqK, headsQ, groupSize;
  float scaleLog2; // softmax scale * log2(e)
  float scale;     // softmax scale (dS -> dQ, dK)
  int32_t batch;
  ScoreModifierParams modifiers;
  VarlenParams varlen;
  DropoutParams dropout;
  BlockMaskParams blockMask;
};

namespace bwd {
enum ParamIndex : int {
  kQ = 0, kK, kV, kO, kDO, kLse, kDelta, kDQ, kDK, kDV, kDQAccum,
  kQStride0, kKStride0 = kQStride0 + 3, kVStride0 = kKStride0 + 3, kOStride0 = kVStride0 + 3,
  kDOStride0 = kOStride0 + 3, kDQStride0 = kDOStride0 + 3, kDKStride0 = kDQStride0 + 3,
  kDVStride0 = kDKStride0 + 3, kDQAccumStride0 = kDVStride0 + 3,
  kSeqQ = kDQAccumStride0 + 3, kSeqK, kHeadsQ, kGroupSize, kScaleLog2, kScale, kBatch,
  kScoreModifiers0, // ScoreModifierParam order
  kVarlen0 = kScoreModifiers0 + kNumScoreModifierParams, // VarlenParam order
  kDropout0 = kVarlen0 + kNumVarlenParams,                // DropoutParam order
  kBlockMask0 = kDropout0 + kNumDropoutParams,            // BlockMaskParam order
  kNumParams = kBlockMask0 + kNumBlockMaskParams,
  // Warp-specialized kernels only: tensor maps (as the forward's) of Q and dO
  // in boxes of tile.m rows, K and V of tile.n (resident or streamed by kind).
  kTensorMapQ = kNumParams, kTensorMapK, kTensorMapV, kTensorMapDO,
  kNumParamsWarpSpecialized
};
static_assert(kNumParamsWarpSpecialized - kTensorMapQ == kNumTensorMaps,
              "the backward passes as many tensor maps as the forward");
} // namespace bwd

// Backward grids. BackwardDQ (and BackwardDelta, BackwardConvertDQ): x =
// query blocks (heaviest first), y = query heads, z = batch. Key-block
// kernels: x = key blocks, y = key/value heads, z = batch; each block walks
// the query heads of its group. Causal blocks take their tiles in
// CausalTileOrder.cpp's order.

} // namespace flashjit::abi

#endif
