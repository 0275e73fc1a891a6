//===- SharedMemoryLayout.cpp ---------------------------------------------===//
#include "dialect/SharedMemoryLayout.h"

namespace flashjit::flash {

static int64_t roundUp(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

SharedMemoryLayout SharedMemoryLayout::compute(int64_t headDimQK, int64_t headDimV,
                                               int64_t elementBytes, int64_t tileM,
                                               int64_t tileN, int64_t stages) {
  SharedMemoryLayout l;
  l.paddedHeadDimQK = roundUp(headDimQK, 16);
  l.paddedHeadDimV = roundUp(headDimV, 16);
  // A 16-byte pad shifts consecutive rows by four banks, so the eight row
  // addresses of one ldmatrix hit eight distinct bank groups.
  l.pitchQK = l.paddedHeadDimQK * elementBytes + 16;
  l.pitchV = l.paddedHeadDimV * elementBytes + 16;
  l.queryBytes = tileM * l.pitchQK;
  l.keyBytes = tileN * l.pitchQK;
  l.valueBytes = tileN * l.pitchV;
  l.stageBytes = l.keyBytes + l.valueBytes;
  l.totalBytes = l.queryBytes + stages * l.stageBytes;
  return l;
}

} // namespace flashjit::flash
