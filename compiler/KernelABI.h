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

// Strides are in elements, for [batch, seq, head]; the head dim is contiguous.
struct AttentionKernelParams {
  const void *q, *k, *v;
  void *o;
  float *lse; // [batch, heads_q, seq_q], may be null when the variant has no LSE
  int64_t qStride[3], kStride[3], vStride[3], oStride[3];
  int32_t seqQ, seqK, headsQ, groupSize; // groupSize = heads_q / heads_k
  float scaleLog2;                         // softmax scale * log2(e)
};

enum ParamIndex : int {
  kQ = 0, kK, kV, kO, kLse,
  kQStride0, kKStride0 = kQStride0 + 3, kVStride0 = kKStride0 + 3, kOStride0 = kVStride0 + 3,
  kSeqQ = kOStride0 + 3, kSeqK, kHeadsQ, kGroupSize, kScaleLog2,
  kNumParams
};

// Grid: x = query blocks (heaviest first for causal masks), y = query heads, z = batch.
// Block: tile.warps * 32 threads. Dynamic shared memory: SharedMemoryLayout::totalBytes.

} // namespace flashjit::abi

#endif
