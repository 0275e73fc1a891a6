//===- TensorMaps.h - TMA descriptors of one attention launch ---*- C++ -*-===//
//
// Warp-specialized kernels read Q, K and V with TMA; the descriptors are
// built on the host for each call (cheap, no device work) and passed by value.
//
#ifndef FLASHJIT_RUNTIME_TENSORMAPS_H
#define FLASHJIT_RUNTIME_TENSORMAPS_H

#include "compiler/KernelABI.h"
#include "runtime/CudaDriver.h"
#include "runtime/flashjit.h"

namespace flashjit {

/// Q, K and V as [dim, seq, heads, batch] tensors in boxes of
/// abi::kTensorMapBoxColumns columns by tile.m (Q) or tile.n (K, V) rows,
/// 128-byte swizzled. With `packGQA`, Q is [dim, group, seq, heads_k,
/// batch] in boxes of every head of a group for ⌊m / group⌋ queries (the
/// packed tile's rows). With tile.tmaStore also O, in boxes of a
/// warpgroup's 64 rows (else maps[3] is left as it is). `p` must be
/// normalized (see normalizeAndValidate).
/// Whether O can be written by TMA stores: a 16-byte aligned base and
/// strides of whole 16 bytes (validation asks less of O: 4 bytes, pairs).
bool outputSuitsTmaStores(const AttentionParams &p);

Status encodeTensorMaps(const CudaDriver &driver, const AttentionParams &p,
                        const TileConfig &tile, bool packGQA,
                        abi::TensorMap maps[abi::kNumTensorMaps]);

/// The warp-specialized backward kernels' maps (abi::bwd::kTensorMapQ ..):
/// Q and dO in boxes of tile.m rows, K and V of tile.n (the key-block
/// kernels stream the former, the dQ kernel the latter). `p` must be
/// normalized; an empty side's null pointers are replaced (never read).
Status encodeBackwardTensorMaps(const CudaDriver &driver, const AttentionBackwardParams &p,
                                const TileConfig &tile, abi::TensorMap maps[abi::kNumTensorMaps]);

} // namespace flashjit

#endif
