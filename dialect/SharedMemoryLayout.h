//===- SharedMemoryLayout.h - where a variant's tiles live in shared memory ===//
//
// One definition of the shared-memory layout of the sm80-tier kernel, used by
// the verifier (does it fit the target?) and by the code generator (offsets).
//
#ifndef FLASHJIT_DIALECT_SHAREDMEMORYLAYOUT_H
#define FLASHJIT_DIALECT_SHAREDMEMORYLAYOUT_H

#include <cstdint>

namespace flashjit::flash {

struct SharedMemoryLayout {
  int64_t paddedHeadDimQK; // head dim of Q/K rounded up to the mma k-step (16)
  int64_t paddedHeadDimV;  // head dim of V rounded up to a pair of mma n-tiles (16)
  int64_t pitchQK;         // bytes per Q/K row, padded by 16 bytes against bank conflicts
  int64_t pitchV;          // bytes per V row, likewise
  int64_t queryBytes;      // the Q tile, loaded once
  int64_t keyBytes;        // one K tile
  int64_t valueBytes;      // one V tile
  int64_t stageBytes;      // one K/V ring slot (K tile then V tile)
  int64_t totalBytes;      // Q tile + stages slots

  static SharedMemoryLayout compute(int64_t headDimQK, int64_t headDimV,
                                    int64_t elementBytes, int64_t tileM,
                                    int64_t tileN, int64_t stages);
};

} // namespace flashjit::flash

#endif
