//===- ReferenceAttention.h - the GPU reference (NVRTC) ---------*- C++ -*-===//
//
// CUTLASS-style reference next to the kernel: a plain fp32 attention compiled
// from templates/reference_attention.cu with NVRTC, used to verify generated
// kernels on the GPU at sizes a CPU reference cannot reach quickly; and its
// gradients, for the backward kernels.
//
#ifndef FLASHJIT_TEMPLATES_REFERENCEATTENTION_H
#define FLASHJIT_TEMPLATES_REFERENCEATTENTION_H

#include "runtime/LoadedKernel.h"
#include "runtime/flashjit.h"

namespace flashjit {

class ReferenceAttention {
public:
  /// Compiles the reference for the device of the current context (cc
  /// major.minor), with the user modifier expressions `scoreMod` / `maskMod`
  /// (empty: none) compiled in as the C++ they are.
  static Status create(const CudaDriver &driver, int ccMajor, int ccMinor,
                       std::unique_ptr<ReferenceAttention> &out,
                       const std::string &scoreMod = "", const std::string &maskMod = "");
  /// O (fp32, [batch, seq_q, heads_q, d_v] contiguous) and optional LSE
  /// ([batch, heads_q, seq_q]) for normalized `params` (q/k/v as given).
  /// `batchBase`: the batch index the modifiers see for batch 0 (the
  /// sequence of a packed batch run alone). `denseBlockMask` (device, with
  /// params.blockMask's geometry): the block mask as [batches, heads, query
  /// blocks, key blocks] bytes, nonzero = visited; null = none. (The
  /// reference reads this dense form, not the kernels' lists.)
  Status run(const AttentionParams &params, CUdeviceptr outF32, CUdeviceptr lseF32,
             CUstream stream, int batchBase = 0, const uint8_t *denseBlockMask = nullptr) const;

  /// fp32 gradients (contiguous [batch, seq, heads, dim]) of the same
  /// attention for output gradient `dO` (strides `dOStride`), from the
  /// reference forward's O and LSE; `delta` ([batch, heads_q, seq_q]) is scratch.
  Status runBackward(const AttentionParams &params, const void *dO, const int64_t dOStride[3],
                     CUdeviceptr refO, CUdeviceptr refLse, CUdeviceptr delta, CUdeviceptr dq,
                     CUdeviceptr dk, CUdeviceptr dv, CUstream stream,
                     int batchBase = 0, const uint8_t *denseBlockMask = nullptr) const;

  /// Philox-4x32-10 as the reference's dropout draws it: out[4 i..] from
  /// in[6 i..] = (key0, key1, counter 0..3), for n entries (device buffers).
  Status runPhilox(CUdeviceptr in, CUdeviceptr out, int n, CUstream stream) const;

private:
  LoadedKernel kernel_, backwardDQ_, backwardDKV_, philox_;
};

} // namespace flashjit

#endif
