//===- SharedMemoryLayout.cpp ---------------------------------------------===//
#include "dialect/SharedMemoryLayout.h"

namespace flashjit::flash {

static int64_t roundUp(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

SharedMemoryLayout SharedMemoryLayout::compute(int64_t headDimQK, int64_t headDimV,
                                               int64_t elementBytes, int64_t tileM,
                                               int64_t tileN, int64_t stages, bool swizzledQK,
                                               bool swizzledV, bool warpSpecialized,
                                               int64_t secondQueryTileWithin) {
  SharedMemoryLayout l;
  l.querySlots = 1;
  l.swizzledQK = swizzledQK;
  l.swizzledV = swizzledV;
  l.barrierOffset = 0;
  l.gradScoreOffset = l.gradScoreBytes = l.gradQueryOffset = l.stepStatsOffset = 0;
  l.residentSecondOffset = 0;
  const int64_t blockElements = 128 / elementBytes; // one 128-byte swizzle row
  // Padded rows: a 16-byte pad shifts consecutive rows by four banks, so the
  // eight row addresses of one ldmatrix hit eight distinct bank groups.
  // Swizzled: [rows x 128 B] blocks of 64 head-dim elements.
  auto tile = [&](bool swizzled, int64_t headDim, int64_t rows, int64_t &padded, int64_t &pitch) {
    padded = roundUp(headDim, swizzled ? blockElements : 16);
    pitch = swizzled ? 128 : padded * elementBytes + 16;
    return swizzled ? padded / blockElements * rows * 128 : rows * pitch;
  };
  l.queryBytes = l.queryTileBytes = tile(swizzledQK, headDimQK, tileM, l.paddedHeadDimQK, l.pitchQK);
  l.keyBytes = tile(swizzledQK, headDimQK, tileN, l.paddedHeadDimQK, l.pitchQK);
  l.valueBytes = tile(swizzledV, headDimV, tileN, l.paddedHeadDimV, l.pitchV);
  if (!swizzledQK && !swizzledV) {
    l.alignment = 16;
    l.stageBytes = l.keyBytes + l.valueBytes;
    l.totalBytes = l.queryBytes + stages * l.stageBytes;
    return l;
  }
  // Swizzled tiles start on 1024-byte boundaries (the swizzle pattern's period).
  l.alignment = 1024;
  l.queryBytes = l.queryTileBytes = roundUp(l.queryBytes, 1024);
  l.keyBytes = roundUp(l.keyBytes, 1024);
  l.stageBytes = roundUp(l.keyBytes + l.valueBytes, 1024);
  auto place = [&] {
    // The dynamic shared-memory window is only 16-byte aligned: the kernel
    // rounds its base up to 1024 bytes, so ask for that much more.
    l.totalBytes = l.queryBytes + stages * l.stageBytes + 1024;
    if (warpSpecialized) {
      l.barrierOffset = l.queryBytes + stages * l.stageBytes;
      l.totalBytes += 8 * (kQueryBarriers * l.querySlots + kBarriersPerStage * stages);
    }
  };
  place();
  if (secondQueryTileWithin > 0) {
    const SharedMemoryLayout one = l;
    l.querySlots = 2;
    l.queryBytes = 2 * l.queryTileBytes;
    place();
    if (l.totalBytes > secondQueryTileWithin)
      l = one; // the next tile's Q then waits for this one's last Q Kᵀ
  }
  return l;
}

SharedMemoryLayout SharedMemoryLayout::computeBackward(int64_t headDimQK, int64_t headDimV,
                                                       int64_t elementBytes, int64_t residentRows,
                                                       int64_t streamRows, int64_t stages,
                                                       bool swizzled, bool gradScoreTile,
                                                       bool warpSpecialized, bool stagedRowStats,
                                                       bool persistent) {
  SharedMemoryLayout l = compute(headDimQK, headDimV, elementBytes, residentRows, streamRows,
                                 stages, swizzled, swizzled);
  // The second resident tile (dO or V) is V-wide, placed after the first.
  const int64_t secondBytes =
      swizzled ? roundUp(l.paddedHeadDimV * elementBytes / 128 * residentRows * 128, 1024)
               : residentRows * l.pitchV;
  l.residentSecondOffset = l.queryBytes;
  l.queryBytes += secondBytes;
  l.totalBytes += secondBytes;
  if (gradScoreTile && swizzled) {
    l.gradScoreOffset = l.queryBytes + stages * l.stageBytes;
    l.gradScoreBytes = roundUp(residentRows / 64 * streamRows * 128, 1024);
    l.gradQueryOffset = l.gradScoreOffset + (warpSpecialized ? 2 : 1) * l.gradScoreBytes;
    l.totalBytes += l.gradQueryOffset - l.gradScoreOffset +
                    roundUp(streamRows * headDimQK * 4, 1024);
  }
  if (warpSpecialized && swizzled) { // after everything (totalBytes holds the 1024 slack)
    // (A second K tile for the persistent kernels, so the next tile's K
    // loads early, fits at d 128; it was measured only while ptxas
    // serialized the kernel's wgmma, and removed: bench/results/
    // h200-backward-persistent.md.)
    if (persistent && stagedRowStats) // (the key-block kernels)
      l.querySlots = 2;               // K's and V's own barriers
    if (stagedRowStats) {
      l.stepStatsOffset = l.totalBytes - 1024;
      l.totalBytes += stages * 2 * streamRows * 4;
    }
    l.barrierOffset = l.totalBytes - 1024;
    l.totalBytes += 8 * (kQueryBarriers * l.querySlots + kBarriersPerStage * stages);
  }
  return l;
}

} // namespace flashjit::flash
