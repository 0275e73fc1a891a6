//===- SharedMemoryLayout.cpp ---------------------------------------------===//
#include "dialect/SharedMemoryLayout.h"

namespace flashjit::flash {

static int64_t roundUp(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

SharedMemoryLayout SharedMemoryLayout::compute(int64_t headDimQK, int64_t headDimV,
                                               int64_t elementBytes, int64_t tileM,
                                               int64_t tileN, int64_t stages, bool swizzledQK) {
  SharedMemoryLayout l;
  l.swizzledQK = swizzledQK;
  l.paddedHeadDimV = roundUp(headDimV, 16);
  // A 16-byte pad shifts consecutive rows by four banks, so the eight row
  // addresses of one ldmatrix hit eight distinct bank groups.
  l.pitchV = l.paddedHeadDimV * elementBytes + 16;
  l.valueBytes = tileN * l.pitchV;
  if (swizzledQK) {
    const int64_t blockElements = 128 / elementBytes;
    l.paddedHeadDimQK = roundUp(headDimQK, blockElements);
    l.pitchQK = 128;
    const int64_t blocks = l.paddedHeadDimQK / blockElements;
    l.alignment = 1024;
    l.queryBytes = roundUp(blocks * tileM * 128, 1024);
    l.keyBytes = roundUp(blocks * tileN * 128, 1024);
    l.stageBytes = roundUp(l.keyBytes + l.valueBytes, 1024);
    // The dynamic shared-memory window is only 16-byte aligned: the kernel
    // rounds its base up to 1024 bytes, so ask for that much more.
    l.totalBytes = l.queryBytes + stages * l.stageBytes + 1024;
    return l;
  }
  l.paddedHeadDimQK = roundUp(headDimQK, 16);
  l.pitchQK = l.paddedHeadDimQK * elementBytes + 16;
  l.alignment = 16;
  l.queryBytes = tileM * l.pitchQK;
  l.keyBytes = tileN * l.pitchQK;
  l.stageBytes = l.keyBytes + l.valueBytes;
  l.totalBytes = l.queryBytes + stages * l.stageBytes;
  return l;
}

} // namespace flashjit::flash
