//===- SharedMemoryLayout.h - where a variant's tiles live in shared memory ===//
//
// One definition of the shared-memory layout of the forward kernel, used by
// the verifier (does it fit the target?) and by the code generator (offsets).
//
// Q and K are stored either with padded rows (read by ldmatrix for mma.sync)
// or, for wgmma, in the canonical 128-byte-swizzled K-major layout: the head
// dim split into column blocks of 64 elements (128 bytes), each block a
// [rows x 128 B] array whose 16-byte chunks are XOR-swizzled by (row % 8),
// on 1024-byte boundaries (the layout TMA writes with 128-byte swizzling).
// V uses padded rows or the same blocks. The warp-specialized kernel adds its
// mbarriers after the ring.
//
// The backward kernels keep two tiles resident where the forward keeps Q --
// Q and dO (dQ kernel) or K and V (dK/dV kernels), the Q/K-wide one first --
// and stream the other pair through the ring in the same order (K, V or Q,
// dO); all four in padded rows (mma.sync) or all swizzled (wgmma, which
// reads each tile both K-major and N-major). The key-block kernels that add
// dQ atomically keep the step's dS after the ring; the warp-specialized
// key-block kernels add each stage's row statistics and then their mbarriers
// (the same count as the forward's: resident full at barrierOffset, per stage
// full and empty).
//
#ifndef FLASHJIT_DIALECT_SHAREDMEMORYLAYOUT_H
#define FLASHJIT_DIALECT_SHAREDMEMORYLAYOUT_H

#include <cstdint>

namespace flashjit::flash {

struct SharedMemoryLayout {
  bool swizzledQK;         // Q/K in the 128B-swizzled layout (wgmma)
  bool swizzledV;          // V in the same block layout (read N-major by wgmma)
  int64_t paddedHeadDimQK; // Q/K head dim rounded up: to 16 (padded rows) or 64 (swizzled)
  int64_t paddedHeadDimV;  // head dim of V rounded up: to 16 (padded rows) or 64 (swizzled)
  int64_t pitchQK;         // bytes per Q/K row (padded rows), or 128 (swizzled blocks)
  int64_t pitchV;          // bytes per V row (padded by 16 against bank conflicts), or 128
  int64_t queryBytes;      // the Q tile(s), where the ring starts (backward: both resident tiles)
  int64_t queryTileBytes;  // one Q tile (the persistent forward may keep two)
  int64_t querySlots;      // Q tiles: 2 lets a persistent forward load the next tile's Q early
  int64_t residentSecondOffset; // backward: where the resident dO or V tile starts (else 0)
  int64_t keyBytes;        // one K tile
  int64_t valueBytes;      // one V tile
  int64_t stageBytes;      // one K/V ring slot (K tile then V tile)
  int64_t alignment;       // of every tile's base: 16, or 1024 for swizzled tiles
  int64_t barrierOffset;   // warp-specialized: the mbarriers, after everything else (else 0)
  int64_t gradScoreOffset; // atomic-dQ key-block kernels: dSᵀ of the step, after the ring (else 0)
  int64_t gradScoreBytes;  // one such dS buffer (warp-specialized: two, alternating by step)
  int64_t gradQueryOffset; // and the step's dQ, [streamRows x d_qk] f32 rows (else 0)
  int64_t stepStatsOffset; // warp-specialized key-block kernels: per stage the step's
                           // −lse·log2e and Δ, streamRows f32 each, before the mbarriers
                           // (else 0)
  int64_t totalBytes;      // Q tile + stages slots (+ mbarriers) (+ alignment slack)

  // The mbarriers of the warp-specialized kernel, 8 bytes each: per Q slot q
  // at barrierOffset + 32 q Q full, Q empty and 16 bytes of the forward's
  // tile words (persistent: the producer's word to the consumers on which
  // tile comes, its query block, head and batch), then per stage s at
  // stageBarriersOffset() + 32 s: K full, V full, K empty, V empty. The
  // backward's resident pair: one full barrier (word 0); persistent
  // key-block kernels, two slots' words: K full and K empty at words (0, 0)
  // and (0, 1), V full at (0, 2), V empty at (1, 2).
  static constexpr int64_t kQueryBarriers = 4;
  static constexpr int64_t kBarriersPerStage = 4;
  int64_t stageBarriersOffset() const { return barrierOffset + 8 * kQueryBarriers * querySlots; }

  /// secondQueryTileWithin (the persistent warp-specialized forward: the
  /// target's limit): a second Q tile where the layout still fits in that
  /// many bytes, so the producer loads tile i + 1's Q while tile i runs.
  static SharedMemoryLayout compute(int64_t headDimQK, int64_t headDimV, int64_t elementBytes,
                                    int64_t tileM, int64_t tileN, int64_t stages,
                                    bool swizzledQK = false, bool swizzledV = false,
                                    bool warpSpecialized = false,
                                    int64_t secondQueryTileWithin = 0);
  /// The forward kernel of a tile: a persistent warp-specialized one keeps
  /// a second Q tile where the layout still fits `maxSharedMemory` (the
  /// target's limit); one rule for the verifier, the generator and the
  /// runtime's tile choices.
  static SharedMemoryLayout computeForward(int64_t headDimQK, int64_t headDimV,
                                           int64_t elementBytes, int64_t tileM, int64_t tileN,
                                           int64_t stages, bool qkWgmma, bool pvWgmma,
                                           bool warpSpecialized, bool persistent,
                                           int64_t maxSharedMemory) {
    return compute(headDimQK, headDimV, elementBytes, tileM, tileN, stages, qkWgmma, pvWgmma,
                   warpSpecialized, warpSpecialized && persistent ? maxSharedMemory : 0);
  }
  /// The backward kernels: `residentRows` rows of both resident tiles,
  /// (`warpSpecialized`: the mbarriers; `stagedRowStats`, the key-block
  /// kernels', each stage's LSE and Δ of the streamed rows)
  /// `streamRows` rows of each ring slot's pair; with `gradScoreTile` (the
  /// key-block kernels that add dQ, swizzled only) also the step's dS as
  /// the B operand of dQᵀ = Kᵀ dSᵀ: per warpgroup a [streamRows x 64 keys]
  /// K-major swizzled block (warp-specialized: two such buffers, so a step's
  /// dS never waits for the other warpgroups' reads of the last one); then
  /// the step's dQ in plain f32 rows, the source of one bulk reduction into
  /// the accumulator. `persistent` (warp-specialized key-block kernels
  /// walking many tiles): two slots' barrier words (K and V each get full
  /// and empty barriers).
  static SharedMemoryLayout computeBackward(int64_t headDimQK, int64_t headDimV,
                                            int64_t elementBytes, int64_t residentRows,
                                            int64_t streamRows, int64_t stages,
                                            bool swizzled = false, bool gradScoreTile = false,
                                            bool warpSpecialized = false,
                                            bool stagedRowStats = false, bool persistent = false);
};

} // namespace flashjit::flash

#endif
